/**
 * The best k candidates of each query, kept while scores stream in.
 *
 * Order: a higher score first; among equal scores the candidate offered first (the lower index)
 * first. That is Python's `sorted(pairs, key=score, reverse=True)[:k]` over candidates in index
 * order (a stable sort: `reverse=True` keeps equal keys in their original order), which is how
 * Chinese-CLIP's make_topk_predictions*.py rank. Candidates of a query must be offered in
 * increasing index order; a later candidate never displaces an equal earlier one.
 */
import { expectInt } from '../check';

export class TopK {
  private readonly index: Int32Array; //   [queries, k] candidate indices, best first
  private readonly score: Float64Array; // [queries, k] their scores
  private readonly count: Int32Array; //   [queries] how many slots are filled

  constructor(
    readonly queries: number,
    readonly k: number,
  ) {
    expectInt('queries', queries, 0);
    expectInt('k', k, 1);
    this.index = new Int32Array(queries * k);
    this.score = new Float64Array(queries * k);
    this.count = new Int32Array(queries);
  }

  /** Offers `candidate` with `score` to `query` (candidates in increasing index order). */
  offer(query: number, candidate: number, score: number): void {
    const k = this.k, base = query * k, n = this.count[query];
    if (n === k && !(score > this.score[base + k - 1])) return;
    // Shift the strictly worse entries down one slot; equal scores stay ahead.
    let p = n === k ? k - 1 : n;
    while (p > 0 && score > this.score[base + p - 1]) {
      this.score[base + p] = this.score[base + p - 1];
      this.index[base + p] = this.index[base + p - 1];
      p--;
    }
    this.score[base + p] = score;
    this.index[base + p] = candidate;
    if (n < k) this.count[query] = n + 1;
  }

  /** The candidates kept for `query`, best first (fewer than k when fewer were offered). */
  top(query: number): number[] {
    const base = query * this.k;
    return Array.from(this.index.subarray(base, base + this.count[query]));
  }
}
