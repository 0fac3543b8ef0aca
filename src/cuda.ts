/**
 * The CUDA backend: a GPU, tensors in its memory, and the ops that run there.
 *
 *   const gpu = await CudaDevice.open();                       // E_CUDA when there is none, saying why
 *   const x = await gpu.upload(xs, [m, k], 'bf16');            // Float32Array, rounded on the GPU
 *   const y = await gpu.gemm(x, w, { bias, epilogue: 'gelu' }); // y = gelu(x·wᵀ + bias), fp32
 *   const out = await gpu.download(y);                         // Float32Array
 *
 * The kernels live in a library of their own (kernels/, libclipkit_cuda.so) that the addon opens the
 * first time CUDA is asked for, so a CPU-only install never loads a CUDA library. Each device keeps
 * one stream; calls on it run in order, off the JS thread, and their promises settle when the GPU
 * is done. Without a usable GPU every call fails with ClipkitError E_CUDA naming what is missing
 * (the library, the driver, a GPU, a new enough driver or GPU); the CPU ops are unaffected.
 */
import { ClipkitError } from './errors';
import { native } from './native';

export type CudaDtype = 'fp32' | 'bf16' | 'fp16';

export interface CudaInfo {
  device: number;
  name: string;
  computeCapability: string;
  smCount: number;
  totalMemory: number;
  freeMemory: number;
  /** CUDA versions as 1000·major + 10·minor: what the driver supports, what the library was built with. */
  driverVersion: number;
  runtimeVersion: number;
  /** Which GEMM kernels run here: 'sm_90a wgmma' (H100/H200) or 'sm_80 mma.sync'. */
  gemmPath: string;
  /** The library file that was opened. */
  library: string;
}

export interface CudaOpenOptions {
  /** GPU ordinal (default 0). */
  device?: number;
  /** The library to open instead of $CLIPKIT_CUDA_LIBRARY or libclipkit_cuda.so beside the addon. */
  library?: string;
}

type Handle = { readonly __cuda: unique symbol };

const BYTES: Record<CudaDtype, number> = { fp32: 4, bf16: 2, fp16: 2 };

/** A tensor in GPU memory: row-major, dense. */
export class CudaTensor {
  constructor(
    readonly device: CudaDevice,
    /** @internal the device buffer */
    readonly buffer: Handle,
    readonly shape: readonly number[],
    readonly dtype: CudaDtype,
  ) {}
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
}

/** The addon's E_CUDA errors as ClipkitErrors; other errors (E_SHAPE, E_ARG ...) as they are. */
function asClipkit(err: unknown): unknown {
  const e = err as Error & { code?: string };
  return e?.code === 'E_CUDA' ? new ClipkitError('E_CUDA', e.message) : err;
}
async function cudaCall<T>(run: () => Promise<T> | T): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw asClipkit(err);
  }
}
function cudaSync<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw asClipkit(err);
  }
}

function checkedShape(shape: readonly number[], what: string): number {
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isSafeInteger(d) && d > 0))
    throw new ClipkitError('E_SHAPE', `${what}: a shape is a non-empty list of positive integers, not ${JSON.stringify(shape)}`);
  return shape.reduce((a, b) => a * b, 1);
}

function dims2(t: CudaTensor, what: string): [number, number] {
  if (t.shape.length !== 2) throw new ClipkitError('E_SHAPE', `${what}: expected a 2-D tensor, got shape [${t.shape.join(', ')}]`);
  return [t.shape[0], t.shape[1]];
}

export interface CudaGemmOptions {
  bias?: CudaTensor; // [n] fp32
  epilogue?: 'none' | 'gelu' | 'quick_gelu' | 'residual';
  residual?: CudaTensor; // [m, n] in the output dtype
  /** x is read through this activation. */
  xAct?: 'none' | 'gelu' | 'quick_gelu';
  alpha?: number;
  /** Output dtype (default fp32). */
  dtype?: CudaDtype;
  /** 'exact': fp32 inputs with FFMA products, within the CPU path's tolerance of float64. */
  precision?: 'default' | 'exact';
}

export interface CudaAttentionOptions {
  heads: number;
  causal?: boolean;
  /** [batch, seq] Int32Array-like on the GPU (int32 uploaded with uploadInt32), nonzero keeps the key. */
  keyMask?: CudaTensor;
  /** Only the first qRows query rows (1: the class row). */
  qRows?: number;
  scale?: number;
  precision?: 'default' | 'exact';
}

export class CudaDevice {
  private constructor(
    readonly info: CudaInfo,
    private readonly stream: unknown,
  ) {}

  /** Opens the GPU: loads the CUDA library and checks the driver and the device. */
  static async open(opts: CudaOpenOptions = {}): Promise<CudaDevice> {
    return cudaCall(async () => {
      const info = (await native().cudaInit({ device: opts.device ?? 0, library: opts.library ?? '' })) as CudaInfo;
      return new CudaDevice(info, native().cudaStream({}));
    });
  }

  /** An uninitialised tensor. */
  empty(shape: readonly number[], dtype: CudaDtype = 'fp32'): CudaTensor {
    const n = checkedShape(shape, 'CudaDevice.empty');
    return cudaSync(() => new CudaTensor(this, native().cudaAlloc({ stream: this.stream, bytes: n * BYTES[dtype] }) as Handle, [...shape], dtype));
  }

  /** Copies data to the GPU as `dtype` (bf16 / fp16 rounded to nearest even on the GPU). */
  async upload(data: Float32Array, shape: readonly number[], dtype: CudaDtype = 'fp32'): Promise<CudaTensor> {
    const n = checkedShape(shape, 'CudaDevice.upload');
    if (!(data instanceof Float32Array) || data.length !== n)
      throw new ClipkitError('E_SHAPE', `CudaDevice.upload: expected a Float32Array of ${n} elements for shape [${shape.join(', ')}]`);
    return cudaCall(async () => {
      const staged = new CudaTensor(this, native().cudaAlloc({ stream: this.stream, bytes: n * 4 }) as Handle, [...shape], 'fp32');
      await native().cudaUpload({ stream: this.stream, buffer: staged.buffer, data });
      if (dtype === 'fp32') return staged;
      const out = this.empty(shape, dtype);
      await native().cudaConvert({ stream: this.stream, x: staged.buffer, xType: 'fp32', y: out.buffer, yType: dtype, n });
      return out;
    });
  }

  /** Copies an int32 tensor (ids, key masks, sequence starts) to the GPU. */
  async uploadInt32(data: Int32Array, shape: readonly number[]): Promise<CudaTensor> {
    const n = checkedShape(shape, 'CudaDevice.uploadInt32');
    if (!(data instanceof Int32Array) || data.length !== n) throw new ClipkitError('E_SHAPE', `CudaDevice.uploadInt32: expected an Int32Array of ${n} elements`);
    return cudaCall(async () => {
      const t = new CudaTensor(this, native().cudaAlloc({ stream: this.stream, bytes: n * 4 }) as Handle, [...shape], 'fp32');
      await native().cudaUpload({ stream: this.stream, buffer: t.buffer, data });
      return t;
    });
  }

  /** The tensor's values as float32 (bf16 / fp16 widened exactly). */
  async download(t: CudaTensor): Promise<Float32Array> {
    return cudaCall(async () => {
      let src = t;
      if (t.dtype !== 'fp32') {
        src = this.empty(t.shape, 'fp32');
        await native().cudaConvert({ stream: this.stream, x: t.buffer, xType: t.dtype, y: src.buffer, yType: 'fp32', n: t.size });
      }
      const out = new Float32Array(t.size);
      await native().cudaDownload({ stream: this.stream, buffer: src.buffer, data: out });
      return out;
    });
  }

  /** y[m, n] = epilogue(alpha · act(x)[m, k] · w[n, k]ᵀ + bias); x and w share a dtype. */
  async gemm(x: CudaTensor, w: CudaTensor, opts: CudaGemmOptions = {}): Promise<CudaTensor> {
    const [m, k] = dims2(x, 'CudaDevice.gemm x'), [n, kw] = dims2(w, 'CudaDevice.gemm w');
    if (k !== kw) throw new ClipkitError('E_SHAPE', `CudaDevice.gemm: x is [${m}, ${k}] but w is [${n}, ${kw}]`);
    if (x.dtype !== w.dtype) throw new ClipkitError('E_DTYPE', `CudaDevice.gemm: x is ${x.dtype} but w is ${w.dtype}; they must match`);
    const dtype = opts.dtype ?? 'fp32';
    const y = this.empty([m, n], dtype);
    await cudaCall(() =>
      native().cudaGemm({
        stream: this.stream, x: x.buffer, w: w.buffer, y: y.buffer, m, n, k, inType: x.dtype, yType: dtype,
        bias: opts.bias?.buffer, residual: opts.residual?.buffer, epilogue: opts.epilogue ?? 'none', xAct: opts.xAct ?? 'none',
        alpha: opts.alpha ?? 1, precision: opts.precision ?? 'default',
      }),
    );
    return y;
  }

  /** LayerNorm of x (+ residual) over its last axis; `sum` is x + residual when a residual is given. */
  async layerNorm(
    x: CudaTensor,
    gamma: CudaTensor,
    beta: CudaTensor | null,
    opts: { eps: number; residual?: CudaTensor; dtype?: CudaDtype },
  ): Promise<{ y: CudaTensor; sum?: CudaTensor }> {
    const dim = x.shape[x.shape.length - 1], rows = x.size / dim;
    const y = this.empty(x.shape, opts.dtype ?? x.dtype);
    const sum = opts.residual ? this.empty(x.shape, x.dtype) : undefined;
    await cudaCall(() =>
      native().cudaLayerNorm({
        stream: this.stream, x: x.buffer, residual: opts.residual?.buffer, sum: sum?.buffer, gamma: gamma.buffer, beta: beta?.buffer,
        y: y.buffer, rows, dim, eps: opts.eps, xType: x.dtype, yType: y.dtype,
      }),
    );
    return { y, sum };
  }

  /** Multi-head attention over q, k, v [batch, seq, heads·D] in one dtype; out [batch, qRows, heads·D]. */
  async attention(q: CudaTensor, k: CudaTensor, v: CudaTensor, opts: CudaAttentionOptions): Promise<CudaTensor> {
    if (q.shape.length !== 3) throw new ClipkitError('E_SHAPE', `CudaDevice.attention: q must be [batch, seq, width]`);
    const [batch, seq, width] = q.shape;
    if (width % opts.heads !== 0) throw new ClipkitError('E_SHAPE', `CudaDevice.attention: width ${width} is not a multiple of ${opts.heads} heads`);
    const qRows = opts.qRows ?? seq;
    const out = this.empty([batch, qRows, width], q.dtype);
    await cudaCall(() =>
      native().cudaAttention({
        stream: this.stream, q: q.buffer, k: k.buffer, v: v.buffer, out: out.buffer, batch, seq, heads: opts.heads,
        headDim: width / opts.heads, qRows, dtype: q.dtype, causal: !!opts.causal, keyMask: opts.keyMask?.buffer,
        scale: opts.scale, precision: opts.precision ?? 'default',
      }),
    );
    return out;
  }
}
