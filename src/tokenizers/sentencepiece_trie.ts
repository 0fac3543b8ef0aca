/** The trie of a SentencePiece model's pieces, which piece lookup and the Viterbi lattice walk. */
import { ClipkitError } from '../errors';
import { ModelPiece, PieceType, quotePiece } from './sentencepiece_model';

/**
 * A byte trie over the pieces, children of a node stored contiguously and sorted by byte. Each
 * node holds the id of the NORMAL / USER_DEFINED / UNUSED piece spelled by its path (SentencePiece's
 * `pieces_`) and of the CONTROL / UNKNOWN / BYTE piece (`reserved_id_map_`), or -1.
 */
export class PieceTrie {
  private constructor(
    private readonly label: Uint8Array, // node -> byte on the edge into it
    private readonly firstChild: Int32Array,
    private readonly childCount: Uint16Array,
    readonly normalId: Int32Array,
    readonly reservedId: Int32Array,
  ) {}

  /**
   * Breadth-first, so that each node's children get consecutive numbers. Node k spans
   * order[lo[k], hi[k]), the pieces sharing its first depth[k] bytes; partitioning that span by
   * the next byte (a radix sort) gives the children in byte order. Throws E_FORMAT naming the
   * piece when two pieces of the same kind share a string.
   */
  static build(pieces: readonly ModelPiece[], types: Uint8Array, source: string): PieceTrie {
    // All pieces in one buffer: piece i is text[start[i], start[i + 1]).
    const start = new Int32Array(pieces.length + 1);
    pieces.forEach((p, i) => (start[i + 1] = start[i] + p.bytes.length));
    const text = new Uint8Array(start[pieces.length]);
    pieces.forEach((p, i) => text.set(p.bytes, start[i]));
    const maxNodes = text.length + 1; // at most one node per byte
    const label = new Uint8Array(maxNodes), firstChild = new Int32Array(maxNodes), childCount = new Uint16Array(maxNodes);
    const normalId = new Int32Array(maxNodes).fill(-1), reservedId = new Int32Array(maxNodes).fill(-1);
    const lo = new Int32Array(maxNodes), hi = new Int32Array(maxNodes), depth = new Int32Array(maxNodes);
    const order = Int32Array.from(pieces, (_, i) => i), scratch = new Int32Array(pieces.length);
    const next = new Int32Array(pieces.length); // byte at the current depth, -1 past the end
    const count = new Int32Array(257);
    hi[0] = pieces.length;
    let nodes = 1;
    for (let node = 0; node < nodes; node++) {
      const d = depth[node], end = hi[node];
      for (let i = lo[node]; i < end; i++) {
        const id = order[i], at = start[id] + d;
        next[id] = at < start[id + 1] ? text[at] : -1;
      }
      if (end - lo[node] > SMALL_SPAN) countingSort(order, lo[node], end, next, count, scratch);
      else insertionSort(order, lo[node], end, next);
      let i = lo[node];
      for (; i < end && next[order[i]] === -1; i++) {
        const id = order[i];
        const ids = isReserved(types[id]) ? reservedId : normalId;
        if (ids[node] !== -1) throw new ClipkitError('E_FORMAT', `Expected unique pieces in ${source} but ${quotePiece(pieces[id])} is defined twice (pieces[${ids[node]}] and pieces[${id}])`);
        ids[node] = id;
      }
      firstChild[node] = nodes;
      while (i < end) {
        const b = next[order[i]];
        const start = i;
        while (i < end && next[order[i]] === b) i++;
        label[nodes] = b;
        lo[nodes] = start;
        hi[nodes] = i;
        depth[nodes] = d + 1;
        nodes++;
        childCount[node]++;
      }
    }
    return new PieceTrie(label.slice(0, nodes), firstChild.slice(0, nodes), childCount.slice(0, nodes), normalId.slice(0, nodes), reservedId.slice(0, nodes));
  }

  /** The child of `node` along byte `b`, or -1. */
  child(node: number, b: number): number {
    let lo = this.firstChild[node], hi = lo + this.childCount[node];
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const l = this.label[mid];
      if (l === b) return mid;
      if (l < b) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  /** The node spelled by `bytes`, or -1. */
  find(bytes: Uint8Array): number {
    let node = 0;
    for (let i = 0; i < bytes.length && node >= 0; i++) node = this.child(node, bytes[i]);
    return node;
  }
}

/** Spans up to this long are sorted by insertion, longer ones by counting. */
const SMALL_SPAN = 32;

/** Sorts order[lo, hi) by key[order[i]] (-1..255), stably. */
function countingSort(order: Int32Array, lo: number, hi: number, key: Int32Array, count: Int32Array, scratch: Int32Array): void {
  count.fill(0);
  for (let i = lo; i < hi; i++) count[key[order[i]] + 1]++;
  for (let k = 0, at = lo; k < 257; k++) {
    const n = count[k];
    count[k] = at;
    at += n;
  }
  for (let i = lo; i < hi; i++) scratch[count[key[order[i]] + 1]++] = order[i];
  order.set(scratch.subarray(lo, hi), lo);
}

function insertionSort(order: Int32Array, lo: number, hi: number, key: Int32Array): void {
  for (let i = lo + 1; i < hi; i++) {
    const v = order[i];
    let j = i - 1;
    for (; j >= lo && key[order[j]] > key[v]; j--) order[j + 1] = order[j];
    order[j + 1] = v;
  }
}

const isReserved = (t: PieceType) => t === PieceType.Control || t === PieceType.Unknown || t === PieceType.Byte;
