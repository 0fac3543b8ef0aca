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
