/**
 * clipkit: CLIP-family image–text models natively from Node.js.
 * This entry point exposes the native core: tensors, the kernels and the runtime settings.
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
export { readClipConfig, readPreprocessConfig, MODEL_TYPES } from './models/config';
export type { ClipConfig, ModelType } from './models/config';
export { loadClipWeights } from './models/weights';
export { loadModel, ClipModel } from './models';
export type { LoadModelOptions, EncodeOptions, ModelInfo, ImageSource, ClassifyOptions, LabelScore, TemplateSet, HiddenStates } from './models';
export { TEMPLATES, EN_TEMPLATES, ZH_TEMPLATES } from './models';
export { convertCheckpoint, CONVERT_DTYPES } from './models';
export type { ConvertOptions, ConvertResult, ConvertedFile, ConvertDType } from './models';
export * from './image';
export * from './search';
