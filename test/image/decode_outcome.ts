/** What the decode suites of clipkit's own readers ask of decodeImage on broken and hostile bytes. */
import { ClipkitError, decodeImage } from '../../src';
import type { DecodedImage, DecodeOptions, ErrorCode } from '../../src';
import * as assert from 'uvu/assert';
import { rejectsCode, rng } from '../helpers';

/** decodeImage(input, opts) must reject with a ClipkitError of this code whose message matches. */
export function rejectsWith(input: Uint8Array, code: ErrorCode, match: RegExp, opts: DecodeOptions = {}): Promise<ClipkitError> {
  return rejectsCode(decodeImage(input, opts), code, match);
}

/** Resolves to the image, or to the error when it is a ClipkitError; any other error fails the test. */
export async function outcome(input: Uint8Array): Promise<DecodedImage | ClipkitError> {
  try {
    return await decodeImage(input);
  } catch (err) {
    if (err instanceof ClipkitError) return err;
    throw new Error(`not a ClipkitError: ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
  }
}

/**
 * 150 random corruptions of each file (1-4 bytes, mostly in its first `headerBytes`, where one
 * byte changes the most): each must decode to a consistent image or be refused with a
 * ClipkitError, and the run must see both.
 */
export async function survivesCorruption(files: ReadonlyMap<string, Uint8Array>, seed: number, headerBytes: number): Promise<void> {
  const r = rng(seed);
  let refused = 0, decoded = 0;
  for (const [name, base] of files) {
    for (let k = 0; k < 150; k++) {
      const bytes = base.slice();
      for (let m = 0, n = 1 + Math.floor(r() * 4); m < n; m++) {
        const at = r() < 0.7 ? Math.floor(r() * Math.min(bytes.length, headerBytes)) : Math.floor(r() * bytes.length);
        bytes[at] = r() < 0.3 ? 0xff : Math.floor(r() * 256);
      }
      const got = await outcome(bytes);
      if (got instanceof ClipkitError) refused++;
      else {
        decoded++;
        assert.is(got.data.length, got.width * got.height * got.channels, `${name} mutation ${k}`);
      }
    }
  }
  assert.ok(refused > 0 && decoded > 0, `refused ${refused}, decoded ${decoded}`);
}
