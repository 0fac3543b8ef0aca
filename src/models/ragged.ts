/** Ragged text batches: texts of similar length grouped, stacked without padding, put back in order. */
import { Tensor } from '../tensor';
import type { TextOutput } from './blocks';

/**
 * Indices of the inputs grouped into batches of at most `batchSize`, by length (sorted, stable),
 * so texts of similar length run together.
 */
export function groupByLength(lengths: ArrayLike<number>, batchSize: number): number[][] {
  const order = Array.from({ length: lengths.length }, (_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const groups: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) groups.push(order.slice(i, i + batchSize));
  return groups;
}

/**
 * Texts of different lengths stacked row after row, without padding: text b is rows
 * [starts[b], starts[b + 1]) of `ids`. The towers run every GEMM over all the rows at once and
 * attention within each text (attentionRagged), so a batch costs the sum of its true lengths.
 */
export interface RaggedBatch {
  ids: Int32Array; // [rows]
  starts: Int32Array; // [B + 1]
  /** Each text's key (true length, or end-of-text position), as given to encodeInGroups. */
  keys: number[];
  /** Each row's position within its text: 0, 1, … */
  positions: Int32Array; // [rows]
}

/** Rows `group` of ids [n, context], each cut to its own `lengths[i]` columns and stacked. */
export function raggedBatch(ids: Int32Array, context: number, group: readonly number[], lengths: readonly number[], keys: number[]): RaggedBatch {
  const starts = new Int32Array(group.length + 1);
  group.forEach((_, b) => (starts[b + 1] = starts[b] + lengths[b]));
  const rows = starts[group.length];
  const out = new Int32Array(rows), positions = new Int32Array(rows);
  group.forEach((g, b) => {
    out.set(ids.subarray(g * context, g * context + lengths[b]), starts[b]);
    for (let j = 0; j < lengths[b]; j++) positions[starts[b] + j] = j;
  });
  return { ids: out, starts, keys, positions };
}

/**
 * The key mask of a batch whose texts may run longer than the keys that count (padded runs): 1 on
 * the first kept(keys[b]) rows of text b, 0 after them; undefined when every text keeps all its rows.
 */
export function keyMaskOf(batch: RaggedBatch, kept: (key: number) => number): Int32Array | undefined {
  const { starts, keys } = batch;
  if (keys.every((key, b) => starts[b + 1] - starts[b] <= kept(key))) return undefined;
  const mask = new Int32Array(batch.ids.length);
  keys.forEach((key, b) => mask.fill(1, starts[b], Math.min(starts[b] + kept(key), starts[b + 1])));
  return mask;
}

/**
 * Runs a text tower over ids [n, context] in ragged batches of at most `batchSize` texts of similar
 * `keys[i]` (true length, or end-of-text position), each text cut to `lengthOf(its key)` rows (or
 * to `padTo` when given: tests compare against padded runs), and puts every text's pooled output
 * and embedding back in input order.
 */
export async function encodeInGroups(
  ids: Int32Array,
  n: number,
  context: number,
  keys: ArrayLike<number>,
  batchSize: number,
  lengthOf: (key: number) => number,
  padTo: number | undefined,
  width: number,
  proj: number,
  runGroup: (batch: RaggedBatch) => Promise<TextOutput>,
): Promise<TextOutput> {
  const pooled = new Float32Array(n * width), embeds = new Float32Array(n * proj);
  for (const group of groupByLength(keys, batchSize)) {
    const groupKeys = group.map((g) => keys[g] as number);
    const lengths = groupKeys.map((k) => padTo ?? lengthOf(k));
    const out = await runGroup(raggedBatch(ids, context, group, lengths, groupKeys));
    group.forEach((g, r) => {
      pooled.set(out.pooled.data.subarray(r * width, (r + 1) * width), g * width);
      embeds.set(out.embeds.data.subarray(r * proj, (r + 1) * proj), g * proj);
    });
  }
  return { pooled: new Tensor(pooled, [n, width]), embeds: new Tensor(embeds, [n, proj]) };
}
