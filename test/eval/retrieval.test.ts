/**
 * The evaluation metrics on small similarity matrices whose answers are worked out by hand below:
 * TopK's order (score, then lower index), retrieval recall in both directions with several captions
 * per image, several images per text and ties, the mean recall, and zero-shot top-1/top-5. A
 * randomised check compares the scorers with a direct transcription of Chinese-CLIP's scripts
 * (stable sort descending, first 10, "any ground truth in the first k").
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RetrievalScorer, retrievalMetrics } from '../../src/eval/retrieval';
import { TopK } from '../../src/eval/topk';
import { zeroshotMetrics, ZeroshotScorer } from '../../src/eval/zeroshot';
import { rng, throwsCode } from '../helpers';
import { chineseClipRecall, pythonTopK } from '../ref/retrieval';

const close = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) < 1e-9, `${what}: got ${got}, want ${want}`);

const Top = suite('TopK');

Top('higher score first, the lower index first among equal scores; a later equal score never displaces', () => {
  // scores 0.5 0.9 0.5 0.9 0.1 at indices 0..4: the two 0.9s (1 then 3), then the 0.5s (0 then 2), then 4.
  const scores = [0.5, 0.9, 0.5, 0.9, 0.1];
  const top3 = new TopK(1, 3), top5 = new TopK(1, 5), top9 = new TopK(1, 9);
  scores.forEach((s, i) => [top3, top5, top9].forEach((t) => t.offer(0, i, s)));
  assert.equal(top3.top(0), [1, 3, 0]); // index 2 (0.5) ties the kept 0.5 at index 0 and comes later: out
  assert.equal(top5.top(0), [1, 3, 0, 2, 4]);
  assert.equal(top9.top(0), [1, 3, 0, 2, 4]); // fewer candidates than k
});

Top('matches a stable descending sort on random scores with many ties', () => {
  const r = rng(7);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(r() * 30), k = 1 + Math.floor(r() * 12);
    const scores = Array.from({ length: n }, () => Math.floor(r() * 5) / 4); // 5 distinct values
    const top = new TopK(1, k);
    scores.forEach((s, i) => top.offer(0, i, s));
    assert.equal(top.top(0), pythonTopK(scores, k), `scores ${scores}, k ${k}`);
  }
});

Top.run();

const Retrieval = suite('retrieval recall');

Retrieval('several captions per image, several images per text, ties (worked by hand)', () => {
  // 3 images, 4 texts. Ground truth: t0 → I0, t1 → I0 (I0 has two captions), t2 → I1, t3 → I1 and I2.
  // Inverted: I0 ← {t0, t1}, I1 ← {t2, t3}, I2 ← {t3}.
  //            t0   t1   t2   t3
  const S = [0.9, 0.2, 0.1, 0.3, //  I0
             0.8, 0.6, 0.5, 0.7, //  I1
             0.1, 0.6, 0.4, 0.7]; // I2
  // text → image (columns):
  //   t0: I0 .9 > I1 .8 > I2 .1                → I0 first: hit@1
  //   t1: I1 .6 = I2 .6 (I1 first) > I0 .2     → its I0 third: miss@1, hit@5
  //   t2: I1 .5 > I2 .4 > I0 .1                → hit@1
  //   t3: I1 .7 = I2 .7 (I1 first) > I0 .3     → I1 is one of its two: hit@1
  //   R@1 = 3/4 = 75, R@5 = R@10 = 100
  // image → text (rows):
  //   I0: t0 .9 > t3 .3 > t1 .2 > t2 .1         → t0 is its caption: hit@1
  //   I1: t0 .8 > t3 .7 > t1 .6 > t2 .5         → t0 is not; t3 second: miss@1, hit@5
  //   I2: t3 .7 > t1 .6 > t2 .4 > t0 .1         → hit@1
  //   R@1 = 2/3, R@5 = R@10 = 100
  const m = retrievalMetrics(Float64Array.from(S), 3, [[0], [0], [1], [1, 2]]);
  assert.is(m.images, 3);
  assert.is(m.texts, 4);
  assert.is(m.textToImage.queries, 4);
  close(m.textToImage.r1, 75, 't2i R@1');
  close(m.textToImage.r5, 100, 't2i R@5');
  close(m.textToImage.r10, 100, 't2i R@10');
  close(m.textToImage.mean, 275 / 3, 't2i mean');
  assert.is(m.imageToText.queries, 3);
  close(m.imageToText.r1, 200 / 3, 'i2t R@1');
  close(m.imageToText.r5, 100, 'i2t R@5');
  close(m.imageToText.r10, 100, 'i2t R@10');
  close(m.meanRecall, (75 + 100 + 100 + 200 / 3 + 100 + 100) / 6, 'mean recall');
});

Retrieval('R@5 and R@10 boundaries; an all-tie row ranks texts by index (worked by hand)', () => {
  // 12 images, 4 texts: t0 → I0, t1 → I4, t2 → I5, t3 → I10. Every text scores image i as (12 - i)/12,
  // so each text ranks the images by index and image i sits at rank i (0-based):
  //   t0 rank 0: hit@1, @5, @10;  t1 rank 4: hit@5, @10;  t2 rank 5: hit@10 only;  t3 rank 10: none.
  //   text → image: R@1 = 1/4 = 25, R@5 = 2/4 = 50, R@10 = 3/4 = 75.
  // Each image's row is constant, so its texts all tie and rank by index: text t at rank t.
  //   I0 ← t0 rank 0: hit@1;  I4 ← t1, I5 ← t2, I10 ← t3 at ranks 1, 2, 3: hit@5 and @10 only.
  //   Images 1-3, 6-9 and 11 have no caption: candidates, not queries.
  //   image → text: R@1 = 1/4 = 25, R@5 = R@10 = 100.
  // Mean of the six: (25 + 50 + 75 + 25 + 100 + 100) / 6 = 62.5.
  const S = new Float64Array(12 * 4);
  for (let i = 0; i < 12; i++) for (let t = 0; t < 4; t++) S[i * 4 + t] = (12 - i) / 12;
  const m = retrievalMetrics(S, 12, [[0], [4], [5], [10]]);
  assert.equal([m.textToImage.r1, m.textToImage.r5, m.textToImage.r10], [25, 50, 75]);
  assert.is(m.imageToText.queries, 4);
  assert.equal([m.imageToText.r1, m.imageToText.r5, m.imageToText.r10], [25, 100, 100]);
  close(m.meanRecall, 62.5, 'mean recall');
});

Retrieval('ties go to the lower index, in both directions (worked by hand)', () => {
  // 3 images, 3 texts, every score 0.5; t0 → I0 and I1, t1 → I2, t2 → I2. Inverted: I0 ← t0, I1 ← t0, I2 ← {t1, t2}.
  //   text → image: every text ranks I0, I1, I2. t0 has I0 first (hit@1); t1 and t2 have their I2 third.
  //     R@1 = 1/3. (Were ties to go to the higher index, I2 would lead: R@1 = 2/3.)
  //   image → text: every image ranks t0, t1, t2. I0 and I1 have their t0 first (hit@1); I2 has t1 second.
  //     R@1 = 2/3. (Higher index first: only I2 hits, R@1 = 1/3.)
  const m = retrievalMetrics(new Float32Array(9).fill(0.5), 3, [[0, 1], [2], [2]]);
  close(m.textToImage.r1, 100 / 3, 't2i R@1');
  close(m.imageToText.r1, 200 / 3, 'i2t R@1');
  assert.equal([m.textToImage.r5, m.imageToText.r5], [100, 100]);
});

Retrieval('random matrices with ties: the scorer, fed in blocks, matches the transcription of Chinese-CLIP', () => {
  const r = rng(11);
  for (let trial = 0; trial < 40; trial++) {
    const nImages = 1 + Math.floor(r() * 25), nTexts = 1 + Math.floor(r() * 40);
    const S = Float32Array.from({ length: nImages * nTexts }, () => Math.floor(r() * 8) / 8);
    const textImages = Array.from({ length: nTexts }, () => {
      const list = [Math.floor(r() * nImages)];
      if (r() < 0.3) list.push(Math.floor(r() * nImages));
      return list;
    });
    const want = chineseClipRecall(S, nImages, textImages);
    const scorer = new RetrievalScorer(nImages, textImages);
    for (let i = 0; i < nImages; ) {
      const rows = Math.min(nImages - i, 1 + Math.floor(r() * 4));
      scorer.addImageRows(i, S.subarray(i * nTexts, (i + rows) * nTexts));
      i += rows;
    }
    const m = scorer.metrics();
    assert.equal([m.textToImage.r1, m.textToImage.r5, m.textToImage.r10], want.t2i, `trial ${trial} text→image`);
    assert.equal([m.imageToText.r1, m.imageToText.r5, m.imageToText.r10], want.i2t, `trial ${trial} image→text`);
  }
});

Retrieval('bad ground truth and bad blocks are refused', () => {
  throwsCode(() => new RetrievalScorer(2, [[0], []]), 'E_ARG', /textImages\[1\] to list at least one image index/, RangeError);
  throwsCode(() => new RetrievalScorer(2, [[2]]), 'E_ARG', /image indices in \[0, 2\) in textImages\[0\] but received 2/, RangeError);
  const s = new RetrievalScorer(3, [[0], [1]]);
  throwsCode(() => s.addImageRows(1, new Float32Array(2)), 'E_ARG', /starting at 0 but received one starting at 1/, RangeError);
  throwsCode(() => s.addImageRows(0, new Float32Array(3)), 'E_SHAPE', /whole rows of 2 scores/, RangeError);
  throwsCode(() => s.addImageRows(0, new Float32Array(8)), 'E_SHAPE', /at most 3 rows/, RangeError);
  s.addImageRows(0, new Float32Array(4));
  throwsCode(() => s.metrics(), 'E_SHAPE', /all 3 images but received 2 rows/, RangeError);
});

Retrieval.run();

const Zeroshot = suite('zero-shot accuracy');

Zeroshot('top-1, top-5, per class and ties (worked by hand)', () => {
  // 4 images, 6 classes.
  //   image 0, class 0: [.9 .1 .1 .1 .1 .1]        class 0 first: top-1 and top-5
  //   image 1, class 5: all .3 (ties by index)     class 5 sixth: neither
  //   image 2, class 2: [.5 .6 .4 .7 .8 .1]        order 4 3 1 0 2 5, class 2 fifth: top-5 only
  //   image 3, class 0: [.2 .2 .1 .1 .1 .1]        classes 0 and 1 tie, 0 first: top-1 and top-5
  // All: top-1 2/4 = 50, top-5 3/4 = 75. Class 0: 100/100; class 2: 0/100; class 5: 0/0; 1, 3, 4: no images.
  const S = Float64Array.from([
    0.9, 0.1, 0.1, 0.1, 0.1, 0.1,
    0.3, 0.3, 0.3, 0.3, 0.3, 0.3,
    0.5, 0.6, 0.4, 0.7, 0.8, 0.1,
    0.2, 0.2, 0.1, 0.1, 0.1, 0.1,
  ]);
  const m = zeroshotMetrics(S, 6, [0, 5, 2, 0]);
  assert.equal([m.images, m.classes, m.top1, m.top5], [4, 6, 50, 75]);
  assert.equal(m.perClass[0], { images: 2, top1: 100, top5: 100 });
  assert.equal(m.perClass[2], { images: 1, top1: 0, top5: 100 });
  assert.equal(m.perClass[5], { images: 1, top1: 0, top5: 0 });
  assert.is(m.perClass[1].images, 0);
  assert.ok(Number.isNaN(m.perClass[1].top1));
  // The same matrix in blocks of one and three rows.
  const scorer = new ZeroshotScorer(6, [0, 5, 2, 0]);
  scorer.addImageRows(0, S.subarray(0, 6));
  scorer.addImageRows(1, S.subarray(6));
  assert.equal(scorer.metrics(), m);
});

Zeroshot('bad targets and blocks are refused', () => {
  throwsCode(() => new ZeroshotScorer(3, [0, 3]), 'E_ARG', /class indices in \[0, 3\) but targets\[1\] is 3/, RangeError);
  const s = new ZeroshotScorer(3, [0, 1]);
  throwsCode(() => s.addImageRows(0, new Float32Array(4)), 'E_SHAPE', /whole rows of 3 scores/, RangeError);
  s.addImageRows(0, new Float32Array(3));
  throwsCode(() => s.metrics(), 'E_SHAPE', /all 2 images but received 1 rows/, RangeError);
});

Zeroshot.run();
