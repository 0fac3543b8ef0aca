/**
 * Loads the native addon: a prebuilt binary from prebuilds/<platform>-<arch>/ when one matches,
 * else the source build in build/Release/ (node-gyp-build's order). CLIPKIT_ADDON names a .node file
 * to load instead. If nothing loads, one E_NATIVE_LOAD error lists what was tried and what to do.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClipkitError } from './errors';

export interface CpuInfo {
  isas: string[]; // instruction sets this CPU runs, lowest first, e.g. ['scalar', 'avx2', 'avx512', 'amx']
  best: string;
  isa: string; // the one new work uses
  avx512bf16: boolean;
  amx: boolean; // AMX tiles with bf16, granted to this process by the OS
  physicalCores: number;
  logicalCpus: number;
  threads: number;
  isaEnvError: string | null; // why CLIPKIT_ISA was ignored, if it was
}

/** What JS hands the addon for a packed GEMM weight: an opaque handle. */
export type PackedHandle = { readonly __packed: unique symbol };

type Buffers = Record<string, unknown>;

export interface NativeAddon {
  cpuInfo(): CpuInfo;
  setIsa(isa: string): void;
  setThreads(threads: number): void;
  /** Jobs this thread queues from now on are handed back with a later job (OpQueue), not on their own. */
  setQuiet(quiet: boolean): void;
  /** A job that does nothing: it settles once every job queued before it has run. */
  fence(args: Record<string, never>): Promise<void>;
  /** Bytes [offset, offset + length) of a file, read by `threads` threads into new 64-byte-aligned memory. Synchronous. */
  readFile(args: { path: string; offset: number; length: number; threads?: number }): ArrayBuffer;
  /** An exclusive flock on an open file, without waiting: false when another holder has it. Dropped when the fd closes or the process dies. */
  lockFile(args: { fd: number }): boolean;
  /** glibc's malloc_trim(0) on the native pool: true when pages went back to the system; false elsewhere. */
  trimHeap(args: Record<string, never>): Promise<boolean>;
  /** The columns of a packed weight's panel (ck::kPanelCols). */
  gemmPanelWidth(): number;
  /** A whole file mapped copy-on-write (pages shared with the page cache until written), as long as the ArrayBuffer or a weight adopted from it lives. */
  mapFile(args: { path: string; populate?: boolean }): Promise<ArrayBuffer>;
  /** The bytes of a packed weight's panels one after another, for a weight or for a shape. */
  packedWeightBytes(w: PackedHandle | { n: number; k: number; dtype?: string }): number;
  /** A packed weight's panels one after another into dst (of exactly packedWeightBytes(w) bytes). */
  copyPackedWeight(args: { w: PackedHandle; dst: Uint8Array }): Promise<void>;
  /** A packed weight over data (64-byte aligned, the packed size of [n, k]) without copying; it holds data's buffer. */
  adoptPackedWeight(args: { data: Uint8Array; n: number; k: number; dtype?: string }): PackedHandle;
  /** W [n, k] packed into dst (4-byte aligned, exactly the packed size), with no memory of the addon's own. */
  packWeightInto(args: { w: Float32Array; n: number; k: number; dtype?: string; dst: Uint8Array }): Promise<void>;
  /** Lets go of the whole pages inside data (bytes of a mapFile mapping); the page cache keeps them. Returns the bytes let go. */
  dropMappedPages(args: { data: Uint8Array }): number;
  /** What the packed bytes depend on (layout version, panel width, element layouts, byte order). */
  packedLayoutId(): string;
  /** A 64-bit hash of the bytes as 16 hex digits, the same whatever the thread count or ISA. */
  hashBytes(args: { data: Uint8Array }): Promise<string>;
  [op: string]: ((args: Buffers) => Promise<unknown>) | ((...a: any[]) => unknown);
}

// The folder holding clipkit's package.json: src/ when run from source, dist/src/ when compiled.
const packageRoot = findPackageRoot(__dirname);

function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    try {
      if (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name === 'clipkit') return dir;
    } catch {
      // not here; keep climbing
    }
    if (path.dirname(dir) === dir) return path.join(start, '..');
  }
}
let cached: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!cached) cached = load();
  return cached;
}

function load(): NativeAddon {
  const tried: string[] = [];
  const override = process.env.CLIPKIT_ADDON;
  if (override) {
    try {
      return require(path.resolve(override)) as NativeAddon;
    } catch (err) {
      tried.push(`CLIPKIT_ADDON=${override}: ${firstLine(err)}`);
    }
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const gypBuild = require('node-gyp-build') as (dir: string) => NativeAddon;
    return gypBuild(packageRoot);
  } catch (err) {
    const prebuildDir = path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`);
    const buildDir = path.join(packageRoot, 'build', 'Release');
    tried.push(`prebuilds/${process.platform}-${process.arch}/: ${describeDir(prebuildDir)}`);
    tried.push(`build/Release/: ${describeDir(buildDir)}`);
    tried.push(`node-gyp-build: ${firstLine(err)}`);
  }
  throw new ClipkitError(
    'E_NATIVE_LOAD',
    [
      `clipkit could not load its native addon for ${process.platform}-${process.arch} (Node ${process.version}, N-API ${process.versions.napi}).`,
      'Tried:',
      ...tried.map((t) => `  - ${t}`),
      'Possible solutions:',
      '  - Build it from source: `npm rebuild clipkit` (needs cmake >= 3.15 and a C++17 compiler; in a clone: `npm install`).',
      `  - Use a platform clipkit ships a prebuilt binary for (this package has: ${shippedPlatforms()}).`,
      '  - Check that npm did not skip install scripts (--ignore-scripts) and that Node was not started with --no-addons.',
    ].join('\n'),
  );
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}

function describeDir(dir: string): string {
  try {
    const nodes = fs.readdirSync(dir).filter((f) => f.endsWith('.node'));
    return nodes.length ? `has ${nodes.join(', ')} but none loaded` : 'no .node file';
  } catch {
    return 'not present';
  }
}

function shippedPlatforms(): string {
  try {
    const dirs = fs.readdirSync(path.join(packageRoot, 'prebuilds'));
    return dirs.length ? dirs.join(', ') : 'none';
  } catch {
    return 'none';
  }
}
