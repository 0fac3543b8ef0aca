/**
 * A direct transcription of Chinese-CLIP's retrieval evaluation (cn_clip/eval/), for checking the
 * scorers: make_topk_predictions*.py rank candidates with Python's stable
 * sorted(pairs, key=score, reverse=True)[:10]; evaluation*.py count a query as correct at k when any
 * of its ground truth is in the first k; transform_ir_annotation_to_tr.py inverts the annotation.
 */

/** sorted(..., reverse=True) is stable, so JS's stable sort on (b - a) gives the same order. */
export function pythonTopK(scores: readonly number[], k: number): number[] {
  return scores
    .map((s, i) => [i, s] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(([i]) => i);
}

/** [R@1, R@5, R@10] in percent for each direction, from the [images × texts] matrix S. */
export function chineseClipRecall(S: ArrayLike<number>, nImages: number, textImages: readonly (readonly number[])[]) {
  const nTexts = textImages.length;
  const recall = (predictions: [number, number[]][], truth: readonly (readonly number[])[]) =>
    [1, 5, 10].map((k) => (predictions.filter(([q, top]) => truth[q].some((c) => top.slice(0, k).includes(c))).length / predictions.length) * 100);
  const column = (t: number) => Array.from({ length: nImages }, (_, i) => S[i * nTexts + t]);
  const row = (i: number) => Array.from({ length: nTexts }, (_, t) => S[i * nTexts + t]);
  const t2i = recall(textImages.map((_, t) => [t, pythonTopK(column(t), 10)]), textImages);
  // Only images that some text lists are image → text queries.
  const imageTexts = Array.from({ length: nImages }, (_, i) => textImages.flatMap((list, t) => (list.includes(i) ? [t] : [])));
  const queries = imageTexts.flatMap((list, i) => (list.length ? [i] : []));
  const i2t = recall(queries.map((i) => [i, pythonTopK(row(i), 10)]), imageTexts);
  return { t2i, i2t };
}
