export { layerNorm } from './layer_norm';
