/**
 * One progress bar for a model's download (cli-progress): bytes on disk over the bytes the model's
 * missing files hold, the speed of this run and the time left, and the file being fetched.
 *
 *   openai/clip-vit-base-patch32 |████████░░░░░░░░| 52% | 313.4 MB/605.2 MB | 41.3 MB/s | ETA 7s | model.safetensors
 *
 * Drawn only on a terminal (a stream whose isTTY is true); elsewhere every call is a no-op, so logs
 * and pipes get no control characters. Bytes resumed from an earlier attempt count as done but not
 * towards the speed.
 */
import { SingleBar } from 'cli-progress';

/** 1234567 → "1.2 MB" (decimal units, as the hub shows sizes). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--';
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Where a bar goes for the `progress` option: true → stderr; a stream → it; false → none;
 * undefined → stderr unless HF_HUB_DISABLE_PROGRESS_BARS is set (as Python reads it).
 */
export function progressStream(option: boolean | NodeJS.WriteStream | undefined): NodeJS.WriteStream | null {
  if (option === undefined && ['1', 'ON', 'YES', 'TRUE'].includes((process.env.HF_HUB_DISABLE_PROGRESS_BARS ?? '').trim().toUpperCase())) return null;
  const stream = option === false ? null : option === undefined || option === true ? process.stderr : option;
  return stream?.isTTY ? stream : null;
}

export class DownloadProgress {
  private readonly bar: SingleBar | null;
  /** Bytes on disk per file, and the count each file started from (resumed bytes). */
  private readonly onDisk = new Map<string, number>();
  private readonly startedAt = new Map<string, number>();
  private readonly t0 = Date.now();

  constructor(stream: NodeJS.WriteStream | null, private readonly label: string, private readonly totalBytes: number) {
    this.bar = stream
      ? new SingleBar({
          stream,
          format: '{label} |{bar}| {percentage}% | {done}/{size} | {speed}/s | ETA {eta_text} | {file}',
          barCompleteChar: '\u2588',
          barIncompleteChar: '\u2591',
          barsize: 24,
          hideCursor: true,
          linewrap: false,
          fps: 8,
        })
      : null;
    this.bar?.start(totalBytes, 0, this.payload(''));
  }

  /** `file` now has `bytes` on disk. */
  update(file: string, bytes: number): void {
    if (!this.bar) return;
    if (!this.startedAt.has(file)) this.startedAt.set(file, bytes);
    this.onDisk.set(file, bytes);
    let done = 0;
    for (const b of this.onDisk.values()) done += b;
    this.bar.update(Math.min(done, this.totalBytes), this.payload(file));
  }

  stop(): void {
    this.bar?.stop();
  }

  private payload(file: string) {
    let done = 0, fetched = 0;
    for (const [f, b] of this.onDisk) {
      done += b;
      fetched += b - this.startedAt.get(f)!;
    }
    const speed = fetched / Math.max((Date.now() - this.t0) / 1000, 1e-3);
    return {
      label: this.label,
      file,
      done: formatBytes(done),
      size: formatBytes(this.totalBytes),
      speed: formatBytes(speed),
      eta_text: speed > 0 ? formatSeconds((this.totalBytes - done) / speed) : '--',
    };
  }
}
