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

/**
 * Every prefix of `bytes` shorter than `length`: where Pillow decodes it (`decodes`), clipkit
 * decodes it to the whole file's pixels; elsewhere it refuses it with E_FORMAT. With
 * `mayRefuseDecodable`, clipkit may also refuse (E_FORMAT) a prefix Pillow decodes: a PNG frame
 * goes through libvips, which refuses a PNG cut inside its last IDAT chunk.
 */
export async function matchesPillowPrefixes(
  name: string,
  bytes: Uint8Array,
  t: { length: number; decodes: number[] },
  mayRefuseDecodable = false,
): Promise<void> {
  const whole = await decodeImage(bytes);
  const decodes = new Set(t.decodes);
  for (let n = 0; n < t.length; n++) {
    const got = await outcome(bytes.subarray(0, n));
    if (decodes.has(n) && mayRefuseDecodable && got instanceof ClipkitError) assert.is(got.code, 'E_FORMAT', got.message);
    else if (decodes.has(n)) {
      assert.not.instance(got, ClipkitError, `${name}[:${n}]: Pillow decodes it, clipkit says ${(got as Error).message}`);
      assert.equal(Array.from((got as DecodedImage).data), Array.from(whole.data), `${name}[:${n}] pixels`);
    } else {
      assert.instance(got, ClipkitError, `${name}[:${n}]: Pillow refuses it, clipkit decodes it`);
      assert.is((got as ClipkitError).code, 'E_FORMAT', `${name}[:${n}]: ${(got as Error).message}`);
    }
  }
}
