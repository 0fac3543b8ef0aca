/** Argument checks at the edge: every message names the argument, what was expected and what came. */
import { rangeError, typeError } from './errors';
import { DType, Tensor } from './tensor';

export function expectTensor<D extends DType>(name: string, t: unknown, dtype: D): Tensor<D> {
  if (!(t instanceof Tensor))
    throw typeError('E_ARG', `Expected a Tensor for ${name} but received ${describe(t)}`);
  if (t.dtype !== dtype) throw typeError('E_DTYPE', `Expected ${dtype} for ${name} but received ${t.dtype}`);
  return t as Tensor<D>;
}

/** `want` may hold -1 for "any size" on an axis. Returns the actual shape. */
export function expectShape(name: string, t: Tensor<DType>, want: readonly number[]): readonly number[] {
  const ok = t.shape.length === want.length && want.every((w, i) => w === -1 || w === t.shape[i]);
  if (!ok)
    throw rangeError(
      'E_SHAPE',
      `Expected ${name} of shape [${want.map((w) => (w === -1 ? '*' : w)).join(', ')}] but received [${t.shape.join(', ')}]`,
    );
  return t.shape;
}

export function expectRankAtLeast(name: string, t: Tensor<DType>, rank: number): void {
  if (t.shape.length < rank)
    throw rangeError('E_SHAPE', `Expected ${name} with at least ${rank} dimensions but received [${t.shape.join(', ')}]`);
}

export function expectFinite(name: string, v: unknown): number {
  if (typeof v !== 'number') throw typeError('E_ARG', `Expected a finite number for ${name} but received ${describe(v)}`);
  if (!Number.isFinite(v)) throw rangeError('E_ARG', `Expected a finite number for ${name} but received ${v}`);
  return v;
}

export function expectPositive(name: string, v: unknown): number {
  const n = expectFinite(name, v);
  if (!(n > 0)) throw rangeError('E_ARG', `Expected a positive number for ${name} but received ${n}`);
  return n;
}

export function expectInt(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number') throw typeError('E_ARG', `Expected an integer for ${name} but received ${describe(v)}`);
  if (!Number.isInteger(v) || v < min || v > max)
    throw rangeError('E_ARG', `Expected an integer in [${min}, ${max}] for ${name} but received ${v}`);
  return v;
}

export function expectOneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T))
    throw rangeError('E_ARG', `Expected one of ${allowed.join(', ')} for ${name} but received ${describe(v)}`);
  return v as T;
}

/**
 * obj[key] = value as an own property even when key is `__proto__` (a plain assignment would
 * replace obj's prototype instead, and the entry would be lost): for names that come from files.
 */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The options of ops whose one option is where to write. */
export const OUT_ONLY = { out: true } as const;

/** Every option an options type has, each `true`: the compiler checks the list is complete and exact. */
export type OptionKeys<T> = { readonly [K in keyof Required<T>]: true };

/**
 * An options argument: undefined, or a plain object whose every key is one of `known`. A typo
 * (`{ devcie: ... }`) or an option clipkit does not have (`{ device: 'cuda' }`) was once ignored
 * silently; it is refused with the list of the options there are.
 */
export function expectOptions(where: string, opts: unknown, known: OptionKeys<object> | Record<string, true>): void {
  if (opts === undefined) return;
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts) || ArrayBuffer.isView(opts))
    throw typeError('E_ARG', `Expected an options object for ${where} but received ${describe(opts)}`);
  let unknown: string[] | undefined;
  for (const key in opts) if (Object.prototype.hasOwnProperty.call(opts, key) && (known as Record<string, true>)[key] !== true) (unknown ??= []).push(key);
  if (unknown)
    throw typeError(
      'E_ARG',
      `Unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} for ${where}; the options are: ${Object.keys(known).join(', ') || 'none'}`,
    );
}

/**
 * A file or folder path: a non-empty string without NUL. A number is refused here rather than
 * reaching fs, which takes it as a file descriptor (readClipConfig(0) once read stdin, and -0
 * aborted the process).
 */
export function expectPath(name: string, v: unknown): string {
  if (typeof v !== 'string') throw typeError('E_ARG', `Expected a path string for ${name} but received ${describe(v)}`);
  if (v === '') throw typeError('E_ARG', `Expected a path string for ${name} but received an empty string`);
  if (v.includes('\0')) throw typeError('E_ARG', `Expected a path string for ${name} but received one with a NUL character`);
  return v;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (ArrayBuffer.isView(v)) return `${v.constructor.name} of length ${(v as unknown as { length: number }).length}`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v} ${String(v)}`;
}

/** Product of a shape's leading axes (all but the last): the number of rows. */
export function rowsOf(shape: readonly number[]): number {
  return shape.slice(0, -1).reduce((a, b) => a * b, 1);
}

/** Whether two typed arrays share any bytes. */
export function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}
