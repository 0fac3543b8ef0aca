/** Row gathers: a text tower's input embeddings, and picking rows out of a hidden state. */
import { describe, expectInt, expectShape, expectTensor, overlaps, expectOptions, OptionKeys, OUT_ONLY } from '../check';
import { rangeError, typeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';

export interface EmbeddingTables {
  tokens: Tensor; // [vocab, D]
  positions?: Tensor; // [maxPositions, D]
  types?: Tensor; // [nTypes, D] (BERT token types)
}

export interface EmbeddingOptions {
  /** Explicit position ids [B, S] (RoBERTa-style offsets past padding); default offset + 0..S-1. */
  positionIds?: Tensor<'int32'>;
  positionOffset?: number;
  /** Token-type ids [B, S]; default type 0. */
  typeIds?: Tensor<'int32'>;
  /** Writes y here ([B, S, D]) instead of a new tensor. */
  out?: Tensor;
}

/** y[b,s] = tokens[ids[b,s]] (+ types[type]) + positions[pos].      ids: [B, S] int32 → [B, S, D] */
const EMBEDDING_OPTIONS: OptionKeys<EmbeddingOptions> = { positionIds: true, positionOffset: true, typeIds: true, out: true };

export async function embedding(ids: Tensor<'int32'>, tables: EmbeddingTables, opts: EmbeddingOptions = {}): Promise<Tensor> {
  expectOptions('embedding', opts, EMBEDDING_OPTIONS);
  expectTensor('ids', ids, 'int32');
  const [batch, seq] = expectShape('ids', ids, [-1, -1]);
  const [vocab, dim] = expectShape('tables.tokens', expectTensor('tables.tokens', tables.tokens, 'float32'), [-1, -1]);
  const args: Record<string, unknown> = { ids: ids.data, tokens: tables.tokens.data, vocab, batch, seq, dim };
  if (tables.positions) {
    const [maxPositions] = expectShape('tables.positions', expectTensor('tables.positions', tables.positions, 'float32'), [-1, dim]);
    Object.assign(args, { positions: tables.positions.data, maxPositions });
    if (opts.positionIds) {
      expectShape('positionIds', expectTensor('positionIds', opts.positionIds, 'int32'), [batch, seq]);
      args.positionIds = opts.positionIds.data;
    } else args.positionOffset = expectInt('positionOffset', opts.positionOffset ?? 0, 0);
  }
  if (tables.types) {
    const [nTypes] = expectShape('tables.types', expectTensor('tables.types', tables.types, 'float32'), [-1, dim]);
    Object.assign(args, { types: tables.types.data, nTypes });
    if (opts.typeIds) {
      expectShape('typeIds', expectTensor('typeIds', opts.typeIds, 'int32'), [batch, seq]);
      args.typeIds = opts.typeIds.data;
    }
  }
  let y: Tensor;
  if (opts.out !== undefined) {
    expectShape('out', expectTensor('out', opts.out, 'float32'), [batch, seq, dim]);
    y = opts.out;
  } else {
    y = new Tensor(new Float32Array(batch * seq * dim), [batch, seq, dim]);
  }
  args.y = y.data;
  await native().embedding(args);
  return y;
}

/**
 * y[i] = x[index[i]] over the rows of x [R, D] (e.g. each text's end-of-text row).  → [n, D]
 * `out` ([n, D], not sharing storage with x) receives y instead of a new tensor.
 */
export async function gatherRows(x: Tensor, index: ArrayLike<number>, opts: { out?: Tensor } = {}): Promise<Tensor> {
  expectOptions('gatherRows', opts, OUT_ONLY);
  expectTensor('x', x, 'float32');
  const [rows, dim] = expectShape('x', x, [-1, -1]);
  if (index === null || typeof index !== 'object') throw typeError('E_ARG', `Expected an array of row indices for index but received ${describe(index)}`);
  expectInt('index.length', (index as ArrayLike<number>).length, 0, 2 ** 31 - 1);
  const idx = Int32Array.from({ length: index.length }, (_, i) => expectInt(`index[${i}]`, index[i], 0, Math.max(0, rows - 1)));
  let y: Tensor;
  if (opts.out !== undefined) {
    expectShape('out', expectTensor('out', opts.out, 'float32'), [idx.length, dim]);
    y = opts.out;
    if (overlaps(y.data, x.data)) throw rangeError('E_ARG', 'Expected out not to share storage with x');
  } else {
    y = new Tensor(new Float32Array(idx.length * dim), [idx.length, dim]);
  }
  await native().gatherRows({ x: x.data, rows, dim, index: idx, y: y.data });
  return y;
}
