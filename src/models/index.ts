/** CLIP-family models: loadModel and ClipModel, the prompt templates, and convertCheckpoint. */
export { loadModel, ClipModel } from './model';
export type { LoadModelOptions, EncodeOptions, ModelInfo, ImageSource, ClassifyOptions, LabelScore } from './model';
export type { HiddenStates } from './blocks';
export { TEMPLATES, EN_TEMPLATES, ZH_TEMPLATES } from './templates';
export type { TemplateSet } from './templates';
export { convertCheckpoint, CONVERT_DTYPES } from './convert';
export type { ConvertOptions, ConvertResult, ConvertedFile, ConvertDType } from './convert';
