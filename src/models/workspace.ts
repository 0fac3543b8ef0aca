/** Where a tower's activations live: reused scratch buffers, and fresh tensors for what leaves it. */
import { Tensor } from '../tensor';

/**
 * The buffers of a Workspace, by what they hold within one layer. Two tensors that are live at the
 * same time must be in two buffers; one name is reused from layer to layer.
 * - x, x2: the residual stream (BERT's post-LN layers write it to the other of the two);
 * - emb, tokens: the embeddings before their LayerNorm (text) / the patch embeddings (ViT);
 * - norm: a LayerNorm's output; qkv: q | k | v per row; query: the last layer's picked q rows
 *   (pickedQkv: their whole q | k | v, where the q columns cannot be projected alone);
 * - attn: attention's output; mlp: the MLP's intermediate activations.
 */
export type WorkspaceBuffer = 'x' | 'x2' | 'emb' | 'tokens' | 'norm' | 'qkv' | 'query' | 'pickedQkv' | 'attn' | 'mlp';

/** A new [rows, width] tensor (results that leave a tower, which a workspace would overwrite). */
export function fresh(rows: number, width: number): Tensor {
  return new Tensor(new Float32Array(rows * width), [rows, width]);
}

/**
 * Scratch activations reused from layer to layer and from call to call. A fresh multi-megabyte
 * output per op costs page faults and zeroing on every first touch, a large share of a GEMM's
 * time; a tower instead writes its activations into these buffers, which grow to
 * the largest batch seen and stay. One workspace serves one forward pass at a time (WorkspacePool).
 */
export class Workspace {
  private readonly buffers = new Map<WorkspaceBuffer, Float32Array>();

  /** A tensor of `shape` over the buffer called `name` (its previous contents are garbage). */
  tensor(name: WorkspaceBuffer, shape: readonly number[]): Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    let buffer = this.buffers.get(name);
    if (!buffer || buffer.length < size) {
      buffer = new Float32Array(size);
      this.buffers.set(name, buffer);
    }
    return new Tensor(buffer.subarray(0, size), [...shape]);
  }

  /** Whether t lies in the buffer called `name`. */
  holds(name: WorkspaceBuffer, t: Tensor): boolean {
    return this.buffers.get(name)?.buffer === t.data.buffer;
  }
}

/** Workspaces for concurrent forward passes: each pass borrows one and gives it back. */
export class WorkspacePool {
  private readonly free: Workspace[] = [];

  async use<T>(run: (ws: Workspace) => Promise<T>): Promise<T> {
    const ws = this.free.pop() ?? new Workspace();
    try {
      return await run(ws);
    } finally {
      this.free.push(ws);
    }
  }
}
