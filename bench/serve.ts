/**
 * The embedding service under load: `clipkit serve` in a child process on a full-size model with
 * random weights (Chinese-CLIP ViT-B/16 + RoBERTa-base, bench/model.ts's folder), driven over HTTP
 * on 127.0.0.1, against the in-process API on the same inputs.
 *
 *   node dist/bench/serve.js [--quick] [--tower image|text] [--soak-minutes N] [--json]
 *
 * Per tower (images: one JPEG per request as a raw body; texts: one short caption per request):
 *   saturation   autocannon, closed loop, enough connections to keep the queue full: served
 *                inputs/s over in-process encodeImage / encodeText at the server's mean batch size
 *                (read off /metrics), the same inputs (image bytes in, decoding included)
 *   idle         one request at a time, alternating with in-process batch-1 calls: the p50 difference
 *   70 %         open loop (requests sent on a fixed schedule whatever the answers, so a slow
 *                server is not given time to catch up): p50 / p99 latency
 *   2x overload  open loop at twice the capacity: goodput over capacity, 429s and their latency,
 *                5xx (must be none), the server's RSS before and after, and the time until an idle
 *                request is answered at idle latency again once the load stops
 *   soak         (--soak-minutes) open loop at 70 %: p99 and RSS per minute
 *
 * The server and the load generator share this machine's cores; the generator's work (a few
 * hundred requests/s at most here) is small next to the towers'.
 */
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { loadModel } from '../src/models/model';
import { SPECS, writeFolder } from './model';

type Tower = 'image' | 'text';

interface Target {
  tower: Tower;
  path: string;
  headers: Record<string, string>;
  body: () => Buffer;
}

const ROOT = path.join(__dirname, '..');
const CLI = fs.existsSync(path.join(ROOT, 'dist', 'src', 'cli.js')) ? path.join(ROOT, 'dist', 'src', 'cli.js') : path.join(ROOT, 'src', 'cli.js');
const log = (s: string) => process.stderr.write(s + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs: number[], q: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** The server's resident set in MiB (Linux). */
function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

// No socket limit: an open loop must not wait for a free connection (that would close the loop).
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

/** One request; its status and latency in ms (status 0: the connection failed). */
function send(port: number, t: Target): Promise<{ status: number; ms: number }> {
  const body = t.body();
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: t.path, method: 'POST', agent, headers: { ...t.headers, 'content-length': String(body.length) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
      },
    );
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t0 }));
    req.end(body);
  });
}

/**
 * Open loop: `rate` requests/s for `seconds`, each sent on schedule whatever the answers. Resolves
 * once the last is sent, with the answers still to come (`answered`).
 */
async function openLoopSend(port: number, t: Target, rate: number, seconds: number) {
  const results: Promise<{ status: number; ms: number }>[] = [];
  const t0 = performance.now(), n = Math.max(1, Math.round(rate * seconds));
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    results.push(send(port, t));
  }
  return { n, answered: tally(n, t0, results) };
}

async function openLoop(port: number, t: Target, rate: number, seconds: number) {
  return (await openLoopSend(port, t, rate, seconds)).answered;
}

async function tally(n: number, t0: number, results: Promise<{ status: number; ms: number }>[]) {
  const all = await Promise.all(results);
  const wall = (performance.now() - t0) / 1000;
  const by = (pred: (s: number) => boolean) => all.filter((r) => pred(r.status));
  const ok = by((s) => s === 200), limited = by((s) => s === 429), failed = by((s) => s >= 500 || s === 0);
  return {
    sent: n,
    wall,
    goodput: ok.length / wall,
    ok: ok.length,
    p50: quantile(ok.map((r) => r.ms), 0.5),
    p99: quantile(ok.map((r) => r.ms), 0.99),
    limited: limited.length,
    limitedP99: quantile(limited.map((r) => r.ms), 0.99),
    failed: failed.length,
  };
}

async function metricsOf(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** Mean batch size of a tower since the server started, from /metrics. */
function meanBatch(metrics: string, tower: Tower): { sum: number; count: number } {
  const num = (name: string) => Number(new RegExp(`^${name}\\{tower="${tower}"\\} ([0-9.e+]+)`, 'm').exec(metrics)?.[1] ?? NaN);
  return { sum: num('clipkit_batch_size_sum'), count: num('clipkit_batch_size_count') };
}

async function startServer(dir: string, port: number, cache: string, maxQueue: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--model', dir, '--port', String(port), '--threads', '2', '--max-batch', '16', '--max-queue', String(maxQueue), '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, CLIPKIT_CACHE: cache },
  });
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/ready`)).status === 200) return child;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`clipkit serve exited with ${child.exitCode}`);
    await sleep(100);
  }
  throw new Error('clipkit serve did not become ready in 60 s');
}

async function photoJpeg(width: number, height: number): Promise<Buffer> {
  const px = Buffer.alloc(width * height * 3);
  let seed = 7;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const noise = (seed >>> 24) % 24;
      const i = 3 * (y * width + x);
      px[i] = (x * 255) / width + noise;
      px[i + 1] = (y * 255) / height + noise;
      px[i + 2] = 128 + 100 * Math.sin((x + y) / 40);
    }
  return sharp(px, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick'), json = argv.includes('--json');
  const only = argv.includes('--tower') ? (argv[argv.indexOf('--tower') + 1] as Tower) : undefined;
  const soakMinutes = argv.includes('--soak-minutes') ? Number(argv[argv.indexOf('--soak-minutes') + 1]) : 0;
  const span = quick ? 10 : 20;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clipkit-serve-bench-'));
  const spec = SPECS.find((s) => s.key === 'chinese')!;
  const folder = writeFolder(spec, root, false);
  folder.tensors.clear();
  // A photo-sized JPEG (640x480, smooth gradients and noise, quality 85): decoding and resizing it is part of serving.
  const image = await photoJpeg(640, 480);
  const caption = spec.captions[0];
  const targets: Target[] = [
    { tower: 'image', path: '/v1/embeddings/image', headers: { 'content-type': 'image/jpeg' }, body: () => image },
    { tower: 'text', path: '/v1/embeddings', headers: { 'content-type': 'application/json' }, body: () => Buffer.from(JSON.stringify({ input: caption })) },
  ];
  const rows: Record<string, unknown>[] = [];
  const cache = path.join(root, 'weights');
  try {
    // In-process baselines first, alone on the machine: batch 1 latency and batch-B throughput.
    const model = await loadModel(folder.dir, { threads: 2, batchSize: 16, weightCache: cache });
    const inProcess = async (t: Tower, batch: number, reps: number) => {
      const times: number[] = [];
      for (let r = 0; r < reps + 1; r++) {
        const t0 = performance.now();
        if (t === 'image') await model.encodeImage(Array.from({ length: batch }, () => image), { normalize: true });
        else await model.encodeText(Array.from({ length: batch }, () => caption), { normalize: true });
        if (r) times.push(performance.now() - t0);
      }
      return quantile(times, 0.5);
    };
    for (const t of targets.filter((x) => !only || x.tower === only)) {
      const unit = t.tower === 'image' ? 'img/s' : 'text/s';
      // Batches of 16 (the server's --max-batch), before the server starts and again after its saturation run.
      const batchMs = await inProcess(t.tower, 16, quick ? 2 : 4);
      const port = await freePort();
      // The queue bound is what 429 answers from: about 5 s of work at this machine's capacity.
      const server = await startServer(folder.dir, port, cache, t.tower === 'image' ? 32 : 256);
      try {
        // Saturation: closed loop with twice the batch size in connections, so a batch always waits.
        const before = meanBatch(await metricsOf(port), t.tower);
        // Images run ~10x slower than texts here: three times as long, for as many batches.
        const satSpan = t.tower === 'image' ? 3 * span : span;
        const sat = await autocannon({ url: `http://127.0.0.1:${port}${t.path}`, method: 'POST', headers: t.headers, body: t.body(), connections: 32, duration: satSpan });
        const after = meanBatch(await metricsOf(port), t.tower);
        const batch = (after.sum - (before.sum || 0)) / (after.count - (before.count || 0));
        const served = sat['2xx'] / satSpan;
        const B = Math.max(1, Math.round(batch));
        const afterMs = await inProcess(t.tower, B, quick ? 2 : 4);
        const inProc = (B * 1000) / (B === 16 ? (afterMs + batchMs) / 2 : afterMs);
        log(`${t.tower}: saturation ${served.toFixed(2)} ${unit} served at mean batch ${batch.toFixed(1)}, in-process ${inProc.toFixed(2)} at ${B}: ${(served / inProc).toFixed(3)}x; non-2xx ${sat.non2xx}`);
        // Idle: one request at a time, alternating with an in-process batch of 1 (this host's speed drifts).
        const servedMs: number[] = [], ownMs: number[] = [];
        for (let i = 0; i < (quick ? 10 : 30); i++) {
          servedMs.push((await send(port, t)).ms);
          ownMs.push(await inProcess(t.tower, 1, 1));
        }
        const idle = { latency: { p50: quantile(servedMs, 0.5) } };
        const b1Now = quantile(ownMs, 0.5);
        log(`${t.tower}: idle p50 ${idle.latency.p50.toFixed(1)} ms, in-process batch 1 ${b1Now.toFixed(1)} ms: ${idle.latency.p50 - b1Now >= 0 ? '+' : ''}${(idle.latency.p50 - b1Now).toFixed(1)} ms`);
        // 70 % of capacity, open loop.
        const capacity = served;
        const at70 = await openLoop(port, t, 0.7 * capacity, span * 1.5);
        log(`${t.tower}: 70% (${(0.7 * capacity).toFixed(2)}/s open loop): p50 ${at70.p50.toFixed(0)} ms, p99 ${at70.p99.toFixed(0)} ms, ${at70.failed} failed, ${at70.limited} 429`);
        // 2x overload, open loop.
        const rssBefore = rssOf(server.pid!);
        const overload = await openLoopSend(port, t, 2 * capacity, span * 1.5);
        // Recovery: from the moment the load stops, probes until one is answered at idle latency.
        const stopAt = performance.now();
        let recovered = NaN;
        for (let i = 0; i < 600; i++) {
          const r = await send(port, t);
          if (r.status === 200 && r.ms <= Math.max(2 * idle.latency.p50, idle.latency.p50 + 20)) {
            recovered = (performance.now() - stopAt) / 1000;
            break;
          }
          await sleep(100);
        }
        const over = await overload.answered;
        const rssAfter = rssOf(server.pid!);
        log(`${t.tower}: 2x (${(2 * capacity).toFixed(2)}/s): goodput ${(over.goodput / capacity).toFixed(3)}x capacity (p50 ${over.p50.toFixed(0)} ms, p99 ${over.p99.toFixed(0)} ms), ${over.limited} of ${over.sent} answered 429 (p99 ${over.limitedP99.toFixed(1)} ms), ${over.failed} 5xx or failed, RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MiB, back to idle latency ${recovered.toFixed(1)} s after`);
        rows.push({
          tower: t.tower, unit, served, inProcess: inProc, batch, ratio: served / inProc,
          idleP50: idle.latency.p50, batch1: b1Now,
          p50at70: at70.p50, p99at70: at70.p99,
          goodputRatio: over.goodput / capacity, p99over: over.p99, limited: over.limited, sent: over.sent, limitedP99: over.limitedP99, failed: over.failed + at70.failed,
          rssBefore, rssAfter, recoveredS: recovered,
        });
        if (soakMinutes > 0 && t.tower === (only ?? 'image')) {
          for (let minute = 1; minute <= soakMinutes; minute++) {
            const r = await openLoop(port, t, 0.7 * capacity, 60);
            log(`soak ${t.tower} minute ${minute}: p50 ${r.p50.toFixed(0)} ms, p99 ${r.p99.toFixed(0)} ms, ${r.failed} failed, ${r.limited} 429, RSS ${rssOf(server.pid!).toFixed(0)} MiB`);
            rows.push({ tower: t.tower, soakMinute: minute, p50: r.p50, p99: r.p99, failed: r.failed, limited: r.limited, rss: rssOf(server.pid!) });
          }
        }
      } finally {
        server.kill('SIGTERM');
        await new Promise((r) => server.once('exit', r));
      }
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
    agent.destroy();
  }
  if (json) for (const r of rows) console.log(JSON.stringify(r));
}

if (require.main === module)
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
