/** Runtime settings of the native core: which instruction set the kernels use and how many threads. */
import { expectInt, expectOneOf } from './check';
import { rangeError } from './errors';
import { CpuInfo, native } from './native';

/** `amx` is AVX-512 plus the AMX tile unit: every op runs its AVX-512 kernel, and bf16 GEMMs run on AMX tiles. */
export type Isa = 'scalar' | 'avx2' | 'avx512' | 'amx' | 'neon';
export const ISAS: readonly Isa[] = ['scalar', 'avx2', 'avx512', 'amx', 'neon'];

/** The CPU's instruction sets, the one in use, and the thread count. */
export function cpuInfo(): CpuInfo {
  return native().cpuInfo();
}

/** Instruction sets this machine can run, lowest first. */
export function availableIsas(): Isa[] {
  return cpuInfo().isas as Isa[];
}

/**
 * Forces the kernels onto one instruction set for work submitted from now on (tests, benchmarks).
 * CLIPKIT_ISA does the same at start-up. Throws a RangeError (E_ISA) if the CPU lacks it.
 */
export function setIsa(isa: Isa): void {
  expectOneOf('isa', isa, ISAS);
  if (!availableIsas().includes(isa))
    throw rangeError('E_ISA', `This CPU does not support ${isa}; it supports ${availableIsas().join(', ')}`);
  native().setIsa(isa);
}

/** Threads for work submitted from now on; 0 means one per physical core (the default). */
export function setThreads(threads: number): void {
  native().setThreads(expectInt('threads', threads, 0, 1024));
}
