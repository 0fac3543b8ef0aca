/** Shared test helpers: seeded random inputs, float64 comparisons, and one test per ISA. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { availableIsas, setIsa, Isa, ClipkitError } from '../src';
import type { ErrorCode } from '../src';

/** mulberry32: a small seeded PRNG so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0 || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in [lo, hi); never all zeros. */
export function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** Standard normal (Box–Muller) times `scale`, plus `shift`. */
export function normal(n: number, seed: number, scale = 1, shift = 0): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - r(), v = r();
    out[i] = shift + scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

export interface CloseOptions {
  atol: number;
  rtol: number;
  name: string;
}

/**
 * |got - want| <= atol + rtol·|want| elementwise. On failure reports the first mismatches (up to 10)
 * with their index and both values, and the worst relative error.
 */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, o: CloseOptions): void {
  assert.is(got.length, want.length, `${o.name}: length ${got.length} != ${want.length}`);
  const bad: string[] = [];
  let nbad = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    const ok = Number.isNaN(w) ? Number.isNaN(g) : Math.abs(g - w) <= o.atol + o.rtol * Math.abs(w);
    if (!ok) {
      if (bad.length < 10) bad.push(`  [${i}] got ${g} want ${w} (diff ${Math.abs(g - w).toExponential(2)})`);
      nbad++;
    }
  }
  if (nbad) assert.unreachable(`${o.name}: ${nbad} of ${want.length} values off by more than atol ${o.atol} + rtol ${o.rtol}·|want|\n${bad.join('\n')}`);
}

/** Largest |got-want| / (|want| + floor) — for stating measured error. */
export function maxRelError(got: ArrayLike<number>, want: ArrayLike<number>, floor = 1e-6): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + floor));
  return m;
}

export const isas: Isa[] = availableIsas();

/** Runs fn with the kernels forced onto `isa`, restoring the best ISA afterwards. */
export async function onIsa<T>(isa: Isa, fn: () => Promise<T>): Promise<T> {
  setIsa(isa);
  try {
    return await fn();
  } finally {
    setIsa(isas[isas.length - 1]);
  }
}

/** Awkward sizes: 1, primes, one past and one short of vector widths, and real CLIP sizes. */
export const AWKWARD = [1, 7, 15, 17, 63, 197, 769];

/** Asserts that the promise rejects with an error of the given class whose message matches. */
export async function rejects(p: Promise<unknown> | (() => unknown), kind: Function, match: RegExp): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    assert.instance(err, kind, `expected ${kind.name} but got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    assert.match((err as Error).message, match);
    return;
  }
  assert.unreachable(`expected a ${kind.name} matching ${match}`);
}

/** One pattern or several, all of which a message must match. */
export type Matches = RegExp | readonly RegExp[];

/**
 * Checks that `err` is a `kind` (ClipkitError unless told: the argument checks throw a TypeError or
 * RangeError that carries a code) with this code and a message matching every pattern.
 */
function assertCoded(err: unknown, code: ErrorCode, match: Matches | undefined, kind: Function): void {
  assert.instance(err, kind, `expected ${kind.name} ${code} but got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
  assert.is((err as { code?: unknown }).code, code, `code of: ${(err as Error).message}`);
  for (const m of match === undefined ? [] : match instanceof RegExp ? [match] : match) assert.match((err as Error).message, m);
}

/** Runs fn, which must throw a ClipkitError (or `kind`) with this code and a message matching `match`; returns it. */
export function throwsCode(fn: () => unknown, code: ErrorCode, match?: Matches): ClipkitError;
export function throwsCode(fn: () => unknown, code: ErrorCode, match: Matches | undefined, kind: Function): Error & { code: ErrorCode };
export function throwsCode(fn: () => unknown, code: ErrorCode, match?: Matches, kind: Function = ClipkitError): ClipkitError {
  try {
    fn();
  } catch (err) {
    assertCoded(err, code, match, kind);
    return err as ClipkitError;
  }
  return assert.unreachable(`expected ${code}${match ? ` matching ${match}` : ''}`) as never;
}

/**
 * Awaits `p` (a promise, or a function that is called and awaited: a throw counts as a rejection),
 * which must reject with a ClipkitError (or `kind`) with this code and a message matching `match`
 * (one pattern or all of several); returns the error.
 */
export function rejectsCode(p: Promise<unknown> | (() => unknown), code: ErrorCode, match?: Matches): Promise<ClipkitError>;
export function rejectsCode(p: Promise<unknown> | (() => unknown), code: ErrorCode, match: Matches | undefined, kind: Function): Promise<Error & { code: ErrorCode }>;
export async function rejectsCode(p: Promise<unknown> | (() => unknown), code: ErrorCode, match?: Matches, kind: Function = ClipkitError): Promise<ClipkitError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    assertCoded(err, code, match, kind);
    return err as ClipkitError;
  }
  return assert.unreachable(`expected ${code}${match ? ` matching ${match}` : ''}`) as never;
}

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A new folder under the OS temp dir (name starts with `prefix`), removed when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/**
 * Whether a program from the system's packages is on PATH (`command --version` starts). A test that
 * needs one is registered with `.skip` where it is missing, and says so once, so that `npm test` on
 * a machine without it passes and reports the skip; .ci/run installs every such program, so CI runs
 * these tests, and a program that is there but fails makes them fail.
 */
export function hasProgram(command: string, needed: string): boolean {
  const r = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    console.log(`  (skipped: ${needed} needs ${command}, which is not installed; .ci/run installs it)`);
    return false;
  }
  return true;
}
