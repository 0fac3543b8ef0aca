export { layerNorm } from './layer_norm';
export { gelu, quickGelu, add } from './elementwise';
export { softmax } from './softmax';
export { l2Normalize } from './l2_normalize';
export { embedding, gatherRows } from './embedding';
export { attention, attentionPacked } from './attention';
