/**
 * What every model command shares: the model options (--model, --threads, --batch-size, --dtype,
 * --json), opening the model, a progress bar on a terminal, and errors printed without a stack.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { SingleBar } from 'cli-progress';
import { ClipModel, loadModel } from '../models';

/** The model a command uses when --model is not given; fetched from the hub on first use. */
export const DEFAULT_MODEL = 'OFA-Sys/chinese-clip-vit-base-patch16';

export interface ModelOptions {
  model: string;
  threads?: number;
  batchSize?: number;
  dtype: 'fp32' | 'bf16';
  json?: boolean;
}

export function positiveInt(name: string, min = 1) {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

/** Adds the options every model command reads. */
export function withModelOptions(cmd: Command): Command {
  return cmd
    .option('-m, --model <id|dir>', 'a Hugging Face hub id (org/name[@revision]) or a model folder', DEFAULT_MODEL)
    .option('--threads <n>', 'kernel threads (default: one per physical core)', positiveInt('--threads'))
    .option('--batch-size <n>', 'inputs per forward pass', positiveInt('--batch-size'))
    .addOption(new Option('--dtype <dtype>', 'weights in the GEMMs').choices(['fp32', 'bf16']).default('fp32'))
    .option('--json', 'print JSON lines instead of a table');
}

/** Loads the model the options name (a hub id is resolved through the cache, downloading on first use). */
export async function openModel(o: ModelOptions): Promise<ClipModel> {
  return loadModel(o.model, { threads: o.threads, batchSize: o.batchSize, dtype: o.dtype, progress: process.stderr.isTTY === true });
}

/** A progress bar on stderr when it is a terminal (items/s, ETA); silent otherwise. */
export interface Progress {
  tick(n?: number): void;
  stop(): void;
}

export function progressBar(total: number, what: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY || total <= 0) return { tick: () => undefined, stop: () => undefined };
  const bar = new SingleBar({
    stream,
    format: `${what} [{bar}] {value}/{total} | {speed} ${what}/s | ETA {eta_formatted}`,
    hideCursor: true,
    clearOnComplete: true,
  });
  const start = Date.now();
  let done = 0;
  bar.start(total, 0, { speed: '0.0' });
  return {
    tick(n = 1) {
      done += n;
      bar.update(done, { speed: (done / Math.max(1e-3, (Date.now() - start) / 1000)).toFixed(1) });
    },
    stop: () => bar.stop(),
  };
}

/** Terminal columns of a string: East Asian wide and full-width characters take two. */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    const wide =
      (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) || (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
      (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) || (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1faff) || c >= 0x20000;
    w += wide ? 2 : 1;
  }
  return w;
}

/** Right-pads cells into an aligned text table. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, j) => Math.max(...cells.map((r) => displayWidth(r[j] ?? ''))));
  return cells.map((r) => r.map((c, j) => c + ' '.repeat(widths[j] - displayWidth(c))).join('  ').trimEnd()).join('\n');
}
