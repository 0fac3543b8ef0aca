/**
 * clipkit: CLIP-family image–text models natively from Node.js. The package's entry point exports:
 * - models: loadModel and ClipModel (embed texts and images, similarity, classify, infoNCE), the
 *   prompt templates, and convertCheckpoint (an original checkpoint → a Hugging Face folder);
 * - images: decodeImage, preprocessing (Pillow's resize as resizeU8) and the decode pixel budget;
 * - tokenizers: loadTokenizer, the CLIP BPE, BERT WordPiece and XLM-R tokenizers, fixText (ftfy);
 * - search: ImageStore (LanceDB), indexFolder and the HTML results page;
 * - files: readSafetensors / readSafetensorsIndex, readClipConfig / readPreprocessConfig, loadClipWeights;
 * - the native core: Tensor, every op (linear, attention, layerNorm, ...) and the runtime settings
 *   (cpuInfo, setIsa, setThreads); and ClipkitError with its codes;
 * - the GPU: CudaDevice (opens the CUDA library and a GPU, tensors in its memory, gemm / layerNorm /
 *   attention on them) and CudaTensor.
 */
export { Tensor, zeros, fromArray } from './tensor';
export type { DType } from './tensor';
export { ClipkitError } from './errors';
export type { ErrorCode } from './errors';
export { cpuInfo, availableIsas, setIsa, setThreads, ISAS } from './runtime';
export type { Isa } from './runtime';
export * from './ops';
export { loadTokenizer, BertWordPieceTokenizer, ClipBpeTokenizer, XlmRobertaTokenizer, fixText } from './tokenizers';
export type { Encoded, Tokenizer, LoadTokenizerOptions } from './tokenizers';
export { readSafetensors, readSafetensorsIndex } from './io/safetensors';
export type { SafetensorsFile, SafetensorsTensor, SafetensorsCheckpoint } from './io/safetensors';
export { readClipConfig, readPreprocessConfig, MODEL_TYPES } from './loading/config';
export type { ClipConfig, ModelType } from './loading/config';
export { loadClipWeights } from './loading/weights';
export { loadModel, ClipModel } from './models';
export type { LoadModelOptions, EncodeOptions, ModelInfo, ImageSource, ClassifyOptions, LabelScore, TemplateSet, HiddenStates, WeightCacheInfo } from './models';
export { TEMPLATES, EN_TEMPLATES, ZH_TEMPLATES } from './models';
export { convertCheckpoint, CONVERT_DTYPES } from './loading/convert';
export type { ConvertOptions, ConvertResult, ConvertedFile, ConvertDType } from './loading/convert';
export * from './image';
export * from './search';
export { CudaDevice, CudaTensor } from './cuda';
export type { CudaDtype, CudaInfo, CudaOpenOptions, CudaGemmOptions, CudaAttentionOptions } from './cuda';
