/**
 * Image–text retrieval recall as Chinese-CLIP's evaluation computes it (cn_clip/eval/):
 *
 *   text → image: make_topk_predictions.py ranks every image for each text by the inner product of
 *     the unit features and keeps the top 10; evaluation.py counts a text as correct at k when any
 *     of its ground-truth images is among the first k.
 *   image → text: transform_ir_annotation_to_tr.py inverts the annotation (an image's texts are the
 *     texts that list it), make_topk_predictions_tr.py ranks every text for each image, and
 *     evaluation_tr.py counts an image as correct at k when any of its texts is among the first k.
 *     Only images that some text lists are queries; every image is a candidate for text → image.
 *
 * Recall@k = correct queries / queries · 100, for k = 1, 5, 10; a direction's mean is
 * (R@1 + R@5 + R@10) / 3 (Chinese-CLIP's per-direction "mean_recall") and meanRecall is the mean of
 * all six (the "MR" of its paper).
 *
 * Ties: the ranking is a stable sort by score, so among equal scores the candidate earlier in
 * candidate order ranks first (see TopK). The caller fixes candidate order; datasets.ts gives
 * Chinese-CLIP's own for its format.
 *
 * Scores arrive as blocks of rows of the [images × texts] similarity matrix, so a large set never
 * needs the whole matrix in memory.
 */
import { expectInt } from '../check';
import { rangeError, typeError } from '../errors';
import { TopK } from './topk';

/** The k of Recall@k. */
export const RECALL_AT = [1, 5, 10] as const;

export interface Recall {
  /** Queries scored. */
  queries: number;
  /** Recall@1, @5, @10 in percent. */
  r1: number;
  r5: number;
  r10: number;
  /** (r1 + r5 + r10) / 3. */
  mean: number;
}

export interface RetrievalMetrics {
  images: number;
  texts: number;
  textToImage: Recall;
  imageToText: Recall;
  /** The mean of the six recalls. */
  meanRecall: number;
}

/**
 * Accumulates blocks of the [images × texts] similarity matrix and scores both directions.
 * `textImages[t]` lists the indices of text t's ground-truth images (at least one each).
 */
export class RetrievalScorer {
  private readonly byText: TopK; //  for each text, its best images
  private readonly byImage: TopK; // for each image, its best texts
  private readonly imageTexts: number[][]; // the inverted annotation
  private nextImage = 0;

  constructor(
    readonly images: number,
    private readonly textImages: readonly (readonly number[])[],
  ) {
    expectInt('images', images, 0);
    if (!Array.isArray(textImages)) throw typeError('E_ARG', `Expected an array of image-index arrays for textImages but received ${typeof textImages}`);
    this.imageTexts = Array.from({ length: images }, () => []);
    textImages.forEach((list, t) => {
      if (!Array.isArray(list) || list.length === 0)
        throw rangeError('E_ARG', `Expected textImages[${t}] to list at least one image index but received ${JSON.stringify(list)}`);
      for (const i of list) {
        if (!Number.isInteger(i) || i < 0 || i >= images)
          throw rangeError('E_ARG', `Expected image indices in [0, ${images}) in textImages[${t}] but received ${i}`);
        if (!this.imageTexts[i].includes(t)) this.imageTexts[i].push(t);
      }
    });
    const k = RECALL_AT[RECALL_AT.length - 1];
    this.byText = new TopK(textImages.length, k);
    this.byImage = new TopK(images, k);
  }

  get texts(): number {
    return this.textImages.length;
  }

  /** Rows firstImage… of the similarity matrix, [rows × texts] row-major; blocks in image order. */
  addImageRows(firstImage: number, scores: Float32Array | Float64Array): void {
    const T = this.texts;
    if (firstImage !== this.nextImage)
      throw rangeError('E_ARG', `Expected the block of image rows starting at ${this.nextImage} but received one starting at ${firstImage}`);
    if (T === 0 ? scores.length !== 0 : scores.length % T !== 0 || firstImage + scores.length / T > this.images)
      throw rangeError('E_SHAPE', `Expected a block of whole rows of ${T} scores, at most ${this.images - firstImage} rows, but received ${scores.length} scores`);
    const rows = T === 0 ? 0 : scores.length / T;
    for (let r = 0; r < rows; r++) {
      const i = firstImage + r, row = r * T;
      for (let t = 0; t < T; t++) {
        const s = scores[row + t];
        this.byImage.offer(i, t, s);
        this.byText.offer(t, i, s);
      }
    }
    this.nextImage += rows;
  }

  /** Both directions' recalls; every image row must have been added. */
  metrics(): RetrievalMetrics {
    if (this.nextImage !== this.images)
      throw rangeError('E_SHAPE', `Expected scores for all ${this.images} images but received ${this.nextImage} rows`);
    const textToImage = recall(this.byText, this.textImages);
    const imageToText = recall(this.byImage, this.imageTexts);
    return {
      images: this.images,
      texts: this.texts,
      textToImage,
      imageToText,
      meanRecall: (textToImage.r1 + textToImage.r5 + textToImage.r10 + imageToText.r1 + imageToText.r5 + imageToText.r10) / 6,
    };
  }
}

/** Both directions' recalls from the whole [images × texts] similarity matrix. */
export function retrievalMetrics(scores: Float32Array | Float64Array, images: number, textImages: readonly (readonly number[])[]): RetrievalMetrics {
  const scorer = new RetrievalScorer(images, textImages);
  scorer.addImageRows(0, scores);
  return scorer.metrics();
}

/** Recall@1/5/10 over the queries that have ground truth (a query with an empty list is not scored). */
function recall(top: TopK, truth: readonly (readonly number[])[]): Recall {
  const hits = RECALL_AT.map(() => 0);
  let queries = 0;
  truth.forEach((relevant, q) => {
    if (relevant.length === 0) return;
    queries++;
    const ranked = top.top(q);
    const first = ranked.findIndex((c) => relevant.includes(c)); // the best rank of a relevant candidate
    RECALL_AT.forEach((k, j) => {
      if (first >= 0 && first < k) hits[j]++;
    });
  });
  // As evaluation.py: fractions first, then ×100 (NaN when there are no queries).
  const [f1, f5, f10] = hits.map((h) => h / queries);
  return { queries, r1: f1 * 100, r5: f5 * 100, r10: f10 * 100, mean: ((f1 + f5 + f10) / 3) * 100 };
}
