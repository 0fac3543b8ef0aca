/**
 * Whole-tower throughput of one model (`clipkit bench --model`): images/s through the image tower
 * and texts/s through the text tower at batch 1 and at the model's batch size, on random pixels and
 * on captions of real lengths (10–30 tokens). Each figure is the median of several timed runs
 * after a warm-up run; preprocessing and tokenizing are not timed.
 */
import { ClipModel } from '../src/models';

export interface ThroughputRow {
  tower: 'image' | 'text';
  batch: number;
  /** Median milliseconds per batch. */
  median_ms: number;
  items_per_s: number;
  /** Mean real tokens per text (text rows). */
  tokens?: number;
}

const CAPTION_WORDS = ['一只', '橘猫', '趴在', '窗台上', '晒太阳', 'a', 'photo', 'of', 'the', 'small', 'dog', 'on', 'grass', '红色', '连衣裙'];

function captions(n: number, seed = 1): string[] {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) >>> 0) % 1000) / 1000;
  return Array.from({ length: n }, () => Array.from({ length: 4 + Math.floor(next() * 10) }, () => CAPTION_WORDS[Math.floor(next() * CAPTION_WORDS.length)]).join(' '));
}

async function median(samples: number, run: () => Promise<unknown>): Promise<number> {
  await run();
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export async function towerThroughput(model: ClipModel, samples = 5): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  const s = model.config.imageSize, per = 3 * s * s;
  const batches = [...new Set([1, model.batchSize])];
  for (const batch of batches) {
    const pixels = Float32Array.from({ length: batch * per }, (_, i) => Math.sin(i * 0.37));
    const ms = await median(samples, () => model.encodePixels(pixels, batch));
    rows.push({ tower: 'image', batch, median_ms: ms, items_per_s: (1000 * batch) / ms });
  }
  for (const batch of batches) {
    const texts = captions(batch);
    const ids = model.tokenize(texts);
    const { lengths } = model.tokenizer.encode(texts);
    const ms = await median(samples, () => model.encodeTokens(ids, batch));
    rows.push({ tower: 'text', batch, median_ms: ms, items_per_s: (1000 * batch) / ms, tokens: lengths.reduce((a, b) => a + b, 0) / batch });
  }
  return rows;
}
