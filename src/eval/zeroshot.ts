/**
 * Zero-shot classification accuracy: each image's classes ranked by the similarity of the image
 * embedding to the class embeddings; top-k is correct when the image's class is among the first k.
 * Accuracy = correct images / images · 100, over all images and per class.
 *
 * Ties: among equal scores the lower class index ranks first (TopK's rule). Chinese-CLIP's
 * zeroshot_evaluation.py uses torch.topk, whose order among equal values is unspecified; away from
 * ties the two agree.
 *
 * Scores arrive as blocks of rows of the [images × classes] similarity matrix.
 */
import { expectInt } from '../check';
import { rangeError, typeError } from '../errors';
import { TopK } from './topk';

/** The k of top-k accuracy. */
export const ACCURACY_AT = [1, 5] as const;

export interface Accuracy {
  images: number;
  /** Top-1 and top-5 accuracy in percent (NaN for no images). */
  top1: number;
  top5: number;
}

export interface ZeroshotMetrics extends Accuracy {
  classes: number;
  /** Per class index. */
  perClass: Accuracy[];
}

/** Accumulates blocks of the [images × classes] similarity matrix; `targets[i]` is image i's class. */
export class ZeroshotScorer {
  private readonly top: TopK;
  private nextImage = 0;

  constructor(
    readonly classes: number,
    private readonly targets: readonly number[],
  ) {
    expectInt('classes', classes, 1);
    if (!Array.isArray(targets)) throw typeError('E_ARG', `Expected an array of class indices for targets but received ${typeof targets}`);
    const bad = targets.findIndex((c) => !Number.isInteger(c) || c < 0 || c >= classes);
    if (bad >= 0) throw rangeError('E_ARG', `Expected class indices in [0, ${classes}) but targets[${bad}] is ${targets[bad]}`);
    this.top = new TopK(targets.length, ACCURACY_AT[ACCURACY_AT.length - 1]);
  }

  /** Rows firstImage… of the similarity matrix, [rows × classes] row-major; blocks in image order. */
  addImageRows(firstImage: number, scores: Float32Array | Float64Array): void {
    const C = this.classes, n = this.targets.length;
    if (firstImage !== this.nextImage)
      throw rangeError('E_ARG', `Expected the block of image rows starting at ${this.nextImage} but received one starting at ${firstImage}`);
    if (scores.length % C !== 0 || firstImage + scores.length / C > n)
      throw rangeError('E_SHAPE', `Expected a block of whole rows of ${C} scores, at most ${n - firstImage} rows, but received ${scores.length} scores`);
    const rows = scores.length / C;
    for (let r = 0; r < rows; r++) for (let c = 0; c < C; c++) this.top.offer(firstImage + r, c, scores[r * C + c]);
    this.nextImage += rows;
  }

  /** Accuracy over all images and per class; every image row must have been added. */
  metrics(): ZeroshotMetrics {
    const n = this.targets.length;
    if (this.nextImage !== n) throw rangeError('E_SHAPE', `Expected scores for all ${n} images but received ${this.nextImage} rows`);
    const counts = () => new Array<number>(this.classes + 1).fill(0); // per class, then all images
    const images = counts(), hits = ACCURACY_AT.map(counts);
    this.targets.forEach((c, i) => {
      const rank = this.top.top(i).indexOf(c);
      images[c]++;
      images[this.classes]++;
      ACCURACY_AT.forEach((k, j) => {
        if (rank >= 0 && rank < k) {
          hits[j][c]++;
          hits[j][this.classes]++;
        }
      });
    });
    const accuracy = (c: number): Accuracy => ({ images: images[c], top1: (hits[0][c] / images[c]) * 100, top5: (hits[1][c] / images[c]) * 100 });
    return { ...accuracy(this.classes), classes: this.classes, perClass: Array.from({ length: this.classes }, (_, c) => accuracy(c)) };
  }
}

/** Accuracy from the whole [images × classes] similarity matrix. */
export function zeroshotMetrics(scores: Float32Array | Float64Array, classes: number, targets: readonly number[]): ZeroshotMetrics {
  const scorer = new ZeroshotScorer(classes, targets);
  scorer.addImageRows(0, scores);
  return scorer.metrics();
}
