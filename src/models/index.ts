/** CLIP-family models: loadModel and ClipModel, and the prompt templates. */
export { loadModel, ClipModel } from './model';
export type { LoadModelOptions, EncodeOptions, ModelInfo, ImageSource, ClassifyOptions, LabelScore, WeightCacheInfo } from './model';
export type { HiddenStates } from './blocks';
export { TEMPLATES, EN_TEMPLATES, ZH_TEMPLATES } from './templates';
export type { TemplateSet } from './templates';
