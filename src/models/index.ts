/** CLIP-family models: load a folder, embed texts and preprocessed images. */
export { loadModel, ClipModel } from './model';
export type { LoadModelOptions, EncodeOptions, ModelInfo } from './model';
