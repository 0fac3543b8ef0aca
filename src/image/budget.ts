/**
 * A bound on the pixels being decoded at once, across the process. encodeImage and `clipkit embed`
 * decode a batch ahead of the image tower, every image of it at once, and a batch of huge images,
 * each under the per-image limit, adds up to gigabytes. Preprocessing takes an image's pixel count
 * from this budget after reading its header and before decoding it, and gives it back when the
 * image is down to its model-sized pixels; images that do not fit wait, first come first served.
 * An image larger than the whole budget waits until it is alone, then runs.
 */
import { expectInt } from '../check';
import { DEFAULT_MAX_PIXELS } from './decode';

export class PixelBudget {
  private used = 0;
  private readonly waiting: { n: number; grant: () => void }[] = [];
  /** The most pixels held at once since the budget was made (for tests and diagnostics). */
  highWater = 0;

  constructor(private limit: number) {}

  get pixels(): number {
    return this.limit;
  }

  set pixels(limit: number) {
    this.limit = limit;
    this.pump();
  }

  /** Waits until `pixels` (at most the whole budget) are free, takes them, and returns their release. */
  async acquire(pixels: number): Promise<() => void> {
    const n = Math.min(Math.max(0, pixels), this.limit);
    if (this.waiting.length > 0 || this.used + n > this.limit) await new Promise<void>((grant) => this.waiting.push({ n, grant }));
    else this.take(n);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= n;
      this.pump();
    };
  }

  private take(n: number): void {
    this.used += n;
    this.highWater = Math.max(this.highWater, this.used);
  }

  /** Grants waiting requests in order while the first of them fits (or nothing else is held). */
  private pump(): void {
    while (this.waiting.length > 0) {
      const head = this.waiting[0];
      if (this.used > 0 && this.used + head.n > this.limit) return;
      this.waiting.shift();
      this.take(head.n);
      head.grant();
    }
  }
}

/** The process's budget; by default one image at the pixel limit (DEFAULT_MAX_PIXELS) at a time. */
export const decodeBudget = new PixelBudget(DEFAULT_MAX_PIXELS);

/** Sets how many pixels may be decoding at once, across every model and call of this process. */
export function setDecodePixelBudget(pixels: number): void {
  decodeBudget.pixels = expectInt('pixels', pixels, 1);
}
