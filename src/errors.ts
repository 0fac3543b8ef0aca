/** Stable error codes carried by every error clipkit throws (`err.code`). */
export type ErrorCode =
  | 'E_ARG' // an argument of the wrong kind or value
  | 'E_SHAPE' // a tensor or buffer of the wrong shape or length
  | 'E_DTYPE' // a tensor of the wrong element type
  | 'E_ISA' // an instruction set this CPU lacks
  | 'E_NATIVE_LOAD' // the native addon could not be loaded
  | 'E_NATIVE' // a kernel reported a failure
  | 'E_NOMEM' // a kernel could not allocate its scratch memory
  | 'E_IO' // a file could not be opened or read
  | 'E_FORMAT' // a file's contents are malformed (truncated, corrupt, hostile, missing a required field)
  | 'E_UNSUPPORTED' // a well-formed file asks for something clipkit does not implement (model type, activation)
  | 'E_WEIGHTS' // a checkpoint lacks a parameter the model needs
  | 'E_LIMIT' // an input larger than the configured limit (an image's pixel count)
  | 'E_CUDA' // the CUDA backend cannot run: no library, driver or GPU, or the GPU reported an error
  | 'E_BUSY'; // another process is writing the same output (an embed journal, an image index)

export class ClipkitError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'ClipkitError';
    this.code = code;
  }
}

function withCode<E extends Error>(err: E, code: ErrorCode): E & { code: ErrorCode } {
  return Object.assign(err, { code });
}

/** Wrong kind of value (a string where a tensor belongs, a Float64Array where Float32Array belongs). */
export const typeError = (code: ErrorCode, message: string) => withCode(new TypeError(message), code);
/** Right kind, bad value (a length, a shape, a non-finite scale). */
export const rangeError = (code: ErrorCode, message: string) => withCode(new RangeError(message), code);
