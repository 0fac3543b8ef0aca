/** What the decode suites of clipkit's own readers ask of decodeImage on broken and hostile bytes. */
import { ClipkitError, decodeImage } from '../../src';
import type { DecodedImage, DecodeOptions, ErrorCode } from '../../src';
import { rejectsCode } from '../helpers';

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
