/**
 * Giving the C heap's free pages back every DECODES_PER_TRIM decodes. libvips decodes on its own
 * threads and glibc keeps what they free in per-thread arenas, between blocks still in use, so a
 * long job's RSS creeps up with the JS heap and external memory flat, although nothing leaks; a
 * trim gives those pages back. It runs on the native pool, costs nothing on the JS thread and is
 * short next to the decodes between two trims; where the C library is not glibc it does nothing.
 */
import { native } from '../native';

export const DECODES_PER_TRIM = 500;

let since = 0;
let trimming = false;

/** Counts a decode; every DECODES_PER_TRIM of them, queues a trim (never two at once). */
export function noteDecode(): void {
  if (++since < DECODES_PER_TRIM || trimming) return;
  since = 0;
  trimming = true;
  native()
    .trimHeap({})
    .catch(() => false) // a trim that fails costs only the memory it would have returned
    .finally(() => {
      trimming = false;
    });
}
