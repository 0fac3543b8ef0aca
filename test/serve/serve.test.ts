/**
 * The embedding service (src/serve) over real HTTP on 127.0.0.1, on the tiny Chinese-CLIP fixture:
 * OpenAI's response shape, base64, text and image items mixed, raw image bodies, bit-for-bit
 * equality with the in-process API, classify and similarity, every limit (413, 400 naming the input,
 * 429 with Retry-After), a broken image batched with good ones, the deadline, API keys, /health
 * failing while a batch is stuck, /ready while loading, metrics, SIGTERM with requests in flight
 * (all answered, exit 0) and the official openai client.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipModel, loadModel } from '../../src/models';
import { createServer, EmbeddingServer, ServerOptions } from '../../src/serve';
import { modelDir } from '../models/reference';
import { REF_IMAGES } from '../reference_fixtures';
import { encodeTexts } from '../../src/tokenizers/off_thread';

const ROOT = join(__dirname, '..', '..');
const DIR = modelDir('chinese_clip_tiny');
const IMAGES = ['000000005082.jpg', '000000024283.jpg', 'tiny.png', 'palette_p.png'].map((f) => readFileSync(join(REF_IMAGES, f)));
const BROKEN = Buffer.concat([IMAGES[0].subarray(0, 200)]); // a JPEG cut short: does not decode
const TEXTS = ['a photo of a cat', '一只狗在草地上奔跑', 'two birds on a wire, at dusk', 'x'];

let model: ClipModel;
const modelOnce = async () => (model ??= await loadModel(DIR, { weightCache: false }));

interface Running {
  server: EmbeddingServer;
  url: string;
}

async function start(o: Partial<ServerOptions> = {}): Promise<Running> {
  const server = createServer({ model: await modelOnce(), modelId: 'tiny', ...o });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  return { server, url };
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const bits = (e: Float32Array | number[]) => Buffer.from(Float32Array.from(e).buffer);
const sameBits = (got: Float32Array | number[], want: Float32Array, what: string) => assert.ok(bits(got).equals(bits(want)), `${what}: differs bit for bit`);

/** Holds the model's forward passes until released: a stuck or slow batch, on demand. */
function gate(m: ClipModel) {
  let open!: () => void;
  let opened = new Promise<void>((r) => (open = r));
  const calls = { text: 0, image: 0 };
  const text = m.encodeTokens.bind(m), image = m.encodePixels.bind(m);
  const held = Object.create(m) as ClipModel;
  held.encodeTokens = async (...a) => {
    calls.text++;
    await opened;
    return text(...a);
  };
  held.encodePixels = async (...a) => {
    calls.image++;
    await opened;
    return image(...a);
  };
  return {
    model: held,
    calls,
    release: () => open(),
    close: () => (opened = new Promise<void>((r) => (open = r))),
  };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the API ----

const api = suite('serve: the API');

api('POST /v1/embeddings: OpenAI\'s shape; texts and images mixed, equal bit for bit to encodeText / encodeImage', async () => {
  const m = await modelOnce();
  const { server, url } = await start();
  const input = [...TEXTS, { image: b64(IMAGES[0]) }, { text: TEXTS[0] }, { image: `data:image/png;base64,${b64(IMAGES[2])}` }];
  const r = await post(`${url}/v1/embeddings`, { model: 'tiny', input });
  assert.is(r.status, 200);
  const j = await r.json();
  assert.is(j.object, 'list');
  assert.is(j.model, 'tiny');
  assert.is(j.data.length, input.length);
  j.data.forEach((d: { object: string; index: number; embedding: number[] }, i: number) => {
    assert.is(d.object, 'embedding');
    assert.is(d.index, i);
    assert.is(d.embedding.length, m.config.projectionDim);
  });
  const texts = await m.encodeText(TEXTS, { normalize: true });
  const images = await m.encodeImage([IMAGES[0], IMAGES[2]], { normalize: true });
  const want = [...texts, images[0], texts[0], images[1]];
  want.forEach((w, i) => sameBits(j.data[i].embedding, w, `input ${i}`));
  const lengths = (await encodeTexts(m.tokenizer, [...TEXTS, TEXTS[0]])).lengths;
  const sum = Array.from(lengths).reduce((a, b) => a + b, 0);
  assert.equal(j.usage, { prompt_tokens: sum, total_tokens: sum });
  await server.drain();
});

api('encoding_format base64: the float32 values\' little-endian bytes; one string in, one embedding out', async () => {
  const m = await modelOnce();
  const { server, url } = await start();
  const r = await post(`${url}/v1/embeddings`, { model: 'tiny', input: TEXTS[1], encoding_format: 'base64' });
  const j = await r.json();
  assert.is(j.data.length, 1);
  const bytes = Buffer.from(j.data[0].embedding, 'base64');
  sameBits(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4), (await m.encodeText(TEXTS[1], { normalize: true }))[0], 'base64');
  await server.drain();
});

api('POST /v1/embeddings/image: the raw body, no base64; GET /v1/models', async () => {
  const m = await modelOnce();
  const { server, url } = await start();
  const r = await fetch(`${url}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: IMAGES[1] });
  assert.is(r.status, 200);
  sameBits((await r.json()).data[0].embedding, (await m.encodeImage(IMAGES[1], { normalize: true }))[0], 'raw image');
  const models = await (await fetch(`${url}/v1/models`)).json();
  assert.equal(models.data.map((d: { id: string }) => d.id), ['tiny']);
  await server.drain();
});

api('POST /v1/classify and /v1/similarity: the in-process classify scores and cosines', async () => {
  const m = await modelOnce();
  const { server, url } = await start();
  const labels = ['猫', '狗', '鸟'];
  const r = await post(`${url}/v1/classify`, { images: [b64(IMAGES[0]), b64(IMAGES[1])], labels, templates: 'zh' });
  assert.is(r.status, 200);
  const j = await r.json();
  for (const [i, img] of [IMAGES[0], IMAGES[1]].entries()) assert.equal(j.data[i].scores, await m.classify(img, labels, { templates: 'zh' }));
  const s = await post(`${url}/v1/similarity`, { a: [{ image: b64(IMAGES[0]) }], b: TEXTS.slice(0, 2) });
  const sim = (await s.json()).similarity;
  const [ei] = await m.encodeImage(IMAGES[0], { normalize: true });
  const et = await m.encodeText(TEXTS.slice(0, 2), { normalize: true });
  et.forEach((t, k) => assert.ok(Math.abs(sim[0][k] - t.reduce((acc, v, d) => acc + v * ei[d], 0)) < 1e-6, `similarity ${k}`));
  await server.drain();
});

api('the official openai client calls /v1/embeddings unchanged', async () => {
  const m = await modelOnce();
  const { server, url } = await start({ apiKeys: ['sk-test'] });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-test', maxRetries: 0 });
  const res = await client.embeddings.create({ model: 'tiny', input: TEXTS });
  const want = await m.encodeText(TEXTS, { normalize: true });
  res.data.forEach((d, i) => sameBits(d.embedding, want[i], `openai client ${i}`));
  const floats = await client.embeddings.create({ model: 'tiny', input: TEXTS[0], encoding_format: 'float' });
  sameBits(floats.data[0].embedding, want[0], 'openai client, float');
  await server.drain();
});

api.run();

// ---- bad requests and limits ----

const limits = suite('serve: bad requests and limits');

limits('400 naming the input: bad base64, a URL, a lone surrogate, a text too long, an item of neither kind; 404 for another model', async () => {
  const { server, url } = await start({ maxTextChars: 100 });
  const cases: [unknown, number, RegExp, number?][] = [
    [{ input: ['ok', { image: 'not base64!' }] }, 400, /Input 1: image is not valid base64/, 1],
    [{ input: [{ image: 'https://example.com/cat.jpg' }] }, 400, /URLs are not fetched/, 0],
    [{ input: ['fine', 'bad \ud800 text'] }, 400, /lone UTF-16 surrogate/, 1],
    [{ input: ['y'.repeat(101)] }, 400, /101 characters, more than the limit of 100/, 0],
    [{ input: [{ audio: 'x' }] }, 400, /expected a string, \{ text \} or \{ image \}/, 0],
    [{ input: [{ text: 'a', image: 'b' }] }, 400, /not both/, 0],
    [{ input: [] }, 400, /must not be empty/],
    [{ input: 7 }, 400, /must be a string/],
    [{ input: 'a', encoding_format: 'int8' }, 400, /encoding_format/],
    [{ input: 'a', dimensions: 3 }, 400, /dimensions/],
    [{ input: 'a', model: 'gpt-4' }, 404, /is not served here/],
    ['{"input": [', 400, /JSON|Unexpected|body/i],
    ['[1, 2]', 400, /JSON object/],
  ];
  for (const [body, status, message, index] of cases) {
    const r = await post(`${url}/v1/embeddings`, body);
    const j = await r.json();
    assert.is(r.status, status, JSON.stringify(body).slice(0, 60));
    assert.match(j.error.message, message);
    assert.type(j.error.type, 'string');
    if (index !== undefined) assert.is(j.error.index, index);
  }
  const xml = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<input/>' });
  assert.is(xml.status, 415);
  const plain = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
  assert.is(plain.status, 400);
  await server.drain();
});

limits('413 for a body over the limit; 400 for more inputs than a request may hold', async () => {
  const { server, url } = await start({ bodyLimit: 4096, maxInputs: 3 });
  const big = await post(`${url}/v1/embeddings`, { input: ['z'.repeat(5000)] });
  assert.is(big.status, 413);
  assert.match((await big.json()).error.message, /larger than the limit of 4096 bytes/);
  const raw = await fetch(`${url}/v1/embeddings/image`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: IMAGES[0] });
  assert.is(raw.status, IMAGES[0].length > 4096 ? 413 : 200);
  const many = await post(`${url}/v1/embeddings`, { input: ['a', 'b', 'c', 'd'] });
  assert.is(many.status, 400);
  assert.match((await many.json()).error.message, /4 inputs, more than the limit of 3/);
  await server.drain();
});

limits('a broken image batched with good ones fails alone (400 naming it); the good ones, in its batch and others, are answered exactly', async () => {
  const m = await modelOnce();
  const g = gate(m);
  const { server, url } = await start({ model: g.model });
  // A first request holds the model, so the next two queue up and share one image batch.
  const first = post(`${url}/v1/embeddings`, { input: ['hold'] });
  await settle(50);
  const mixed = post(`${url}/v1/embeddings`, { input: [{ image: b64(IMAGES[0]) }, { image: b64(BROKEN) }, { image: b64(IMAGES[1]) }] });
  const good = post(`${url}/v1/embeddings`, { input: [{ image: b64(IMAGES[2]) }, { image: b64(IMAGES[3]) }] });
  await settle(100);
  g.release();
  const [r0, r1, r2] = await Promise.all([first, mixed, good]);
  assert.is(r0.status, 200);
  assert.is(r1.status, 400);
  const e = (await r1.json()).error;
  assert.is(e.index, 1);
  assert.is(e.code, 'invalid_image');
  assert.is(r2.status, 200);
  const want = await m.encodeImage([IMAGES[2], IMAGES[3]], { normalize: true });
  (await r2.json()).data.forEach((d: { embedding: number[] }, i: number) => sameBits(d.embedding, want[i], `good image ${i}`));
  assert.is(g.calls.image, 1, 'the five images (one broken) were not one batch');
  await server.drain();
});

limits('a full queue answers 429 at once with Retry-After; what was queued is answered', async () => {
  const g = gate(await modelOnce());
  const { server, url } = await start({ model: g.model, maxQueue: 4 });
  const first = post(`${url}/v1/embeddings`, { input: ['running'] });
  await settle(50);
  const queued = post(`${url}/v1/embeddings`, { input: ['a', 'b', 'c'] });
  await settle(50);
  const t0 = performance.now();
  const refused = await post(`${url}/v1/embeddings`, { input: ['d', 'e'] });
  const ms = performance.now() - t0;
  assert.is(refused.status, 429);
  assert.ok(Number(refused.headers.get('retry-after')) >= 1, 'Retry-After');
  assert.is((await refused.json()).error.code, 'queue_full');
  assert.ok(ms < 1000, `the 429 took ${ms.toFixed(0)} ms`);
  const fits = post(`${url}/v1/embeddings`, { input: ['f'] }); // 3 + 1 = 4: fits
  g.release();
  assert.equal((await Promise.all([first, queued, fits])).map((r) => r.status), [200, 200, 200]);
  await server.drain();
});

limits('the deadline: an item still queued when its request\'s time is up is answered 504 then, and never computed', async () => {
  const g = gate(await modelOnce());
  const { server, url } = await start({ model: g.model });
  const first = post(`${url}/v1/embeddings`, { input: ['running'] });
  await settle(50);
  const t0 = performance.now();
  const late = await post(`${url}/v1/embeddings`, { input: [{ image: b64(IMAGES[0]) }] }, { 'x-request-timeout-ms': '150' });
  const ms = performance.now() - t0;
  assert.is(late.status, 504);
  assert.is((await late.json()).error.code, 'timeout');
  assert.ok(ms < 1500, `answered after ${ms.toFixed(0)} ms`);
  g.release();
  assert.is((await first).status, 200);
  await settle(50);
  assert.is(g.calls.image, 0, 'an abandoned image was computed');
  await server.drain();
});

limits('a caller that hangs up: its inputs still queued leave the queue unrun', async () => {
  const g = gate(await modelOnce());
  const { server, url } = await start({ model: g.model });
  const first = post(`${url}/v1/embeddings`, { input: ['running'] });
  await settle(50);
  const gone = new AbortController();
  const hungUp = fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: [{ image: b64(IMAGES[0]) }, { image: b64(IMAGES[1]) }] }), signal: gone.signal }).catch((e) => e);
  await settle(100);
  gone.abort();
  await hungUp;
  await settle(100);
  g.release();
  assert.is((await first).status, 200);
  await settle(50);
  assert.is(g.calls.image, 0, 'the images of a caller that hung up were computed');
  await server.drain();
});

limits('an image over the pixel limit is 400 naming it, before it is decoded', async () => {
  const { server, url } = await start();
  // A 24-bit BMP whose header declares 100000 x 100000 pixels, and no pixels after it.
  const dib = Buffer.alloc(40);
  dib.writeUInt32LE(40, 0);
  dib.writeInt32LE(100000, 4);
  dib.writeInt32LE(100000, 8);
  dib.writeUInt16LE(1, 12);
  dib.writeUInt16LE(24, 14);
  const head = Buffer.alloc(14);
  head.write('BM', 0, 'latin1');
  head.writeUInt32LE(54, 2);
  head.writeUInt32LE(54, 10);
  const huge = Buffer.concat([head, dib]);
  const r = await post(`${url}/v1/embeddings`, { input: ['fine', { image: b64(huge) }] });
  assert.is(r.status, 400);
  const e = (await r.json()).error;
  assert.equal([e.index, e.code], [1, 'input_too_large']);
  assert.match(e.message, /over the limit/);
  await server.drain();
});

limits('API keys: 401 without or with a wrong Bearer key on /v1, 200 with one; /health and /ready stay open', async () => {
  const { server, url } = await start({ apiKeys: ['k1', 'k2'] });
  assert.is((await post(`${url}/v1/embeddings`, { input: 'a' })).status, 401);
  assert.is((await post(`${url}/v1/embeddings`, { input: 'a' }, { authorization: 'Bearer k3' })).status, 401);
  assert.is((await post(`${url}/v1/embeddings`, { input: 'a' }, { authorization: 'Basic k1' })).status, 401);
  assert.is((await post(`${url}/v1/embeddings`, { input: 'a' }, { authorization: 'Bearer k2' })).status, 200);
  assert.is((await fetch(`${url}/health`)).status, 200);
  assert.is((await fetch(`${url}/ready`)).status, 200);
  await server.drain();
});

limits('CORS: an allowed origin gets its header, another none', async () => {
  const { server, url } = await start({ corsOrigins: ['https://app.example'] });
  const ok = await fetch(`${url}/v1/models`, { headers: { origin: 'https://app.example' } });
  assert.is(ok.headers.get('access-control-allow-origin'), 'https://app.example');
  const other = await fetch(`${url}/v1/models`, { headers: { origin: 'https://evil.example' } });
  assert.is(other.headers.get('access-control-allow-origin'), null);
  await server.drain();
});

limits.run();

// ---- operations ----

const ops = suite('serve: health, readiness, metrics, shutdown');

ops('/health fails while a batch is stuck past the stall limit, and recovers; /ready is 503 while loading', async () => {
  const g = gate(await modelOnce());
  let loadIt!: (m: ClipModel) => void;
  const server = createServer({ model: () => new Promise<ClipModel>((r) => (loadIt = r)), modelId: 'tiny', stallMs: 200 });
  const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
  assert.is((await fetch(`${url}/ready`)).status, 503);
  const early = await post(`${url}/v1/embeddings`, { input: 'a' });
  assert.is(early.status, 503);
  assert.is((await early.json()).error.code, 'loading');
  loadIt(g.model);
  await server.loaded;
  assert.is((await fetch(`${url}/ready`)).status, 200);
  assert.is((await fetch(`${url}/health`)).status, 200);
  const stuck = post(`${url}/v1/embeddings`, { input: 'stuck' });
  await settle(400);
  const h = await fetch(`${url}/health`);
  assert.is(h.status, 503);
  assert.match((await h.json()).reason, /a batch has been running for/);
  g.release();
  assert.is((await stuck).status, 200);
  assert.is((await fetch(`${url}/health`)).status, 200);
  await server.drain();
});

ops('/metrics: Prometheus text with requests by code, batch sizes, queue and inference times, event-loop lag', async () => {
  const { server, url } = await start();
  await post(`${url}/v1/embeddings`, { input: ['a', { image: b64(IMAGES[0]) }] });
  await post(`${url}/v1/embeddings`, { input: [{ image: 'bad!' }] });
  const r = await fetch(`${url}/metrics`);
  assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
  const text = await r.text();
  for (const want of [
    /clipkit_http_requests_total\{route="\/v1\/embeddings",code="200"\} 1/,
    /clipkit_http_requests_total\{route="\/v1\/embeddings",code="400"\} 1/,
    /clipkit_batch_size_count\{tower="text"\} 1/,
    /clipkit_batch_size_count\{tower="image"\} 1/,
    /clipkit_inference_seconds_count\{tower="image"\} 1/,
    /clipkit_queue_seconds_count 2/,
    /clipkit_decode_seconds_count 1/,
    /clipkit_queue_items 0/,
    /clipkit_nodejs_eventloop_lag_p99_seconds/,
  ])
    assert.match(text, want);
  await server.drain();
});

ops('SIGTERM with requests in flight: every one answered, /ready 503 meanwhile, exit 0', async () => {
  const child = spawn(process.execPath, ['-r', 'tsx/cjs', join(ROOT, 'src', 'cli.ts'), 'serve', '--model', DIR, '--port', '0', '--log-level', 'info'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CLIPKIT_CACHE: 'off' },
  });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      log += d;
      const m = /"address":"(http:\/\/[^"]+)"/.exec(log);
      if (m && /"msg":"ready"/.test(log)) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${log}`)));
  });
  const inFlight = Array.from({ length: 6 }, (_, i) => post(`${url}/v1/embeddings`, { input: [...TEXTS, { image: b64(IMAGES[i % 3]) }] }));
  // In flight: the server has taken all six (fastify logs each as it comes in), none answered yet.
  for (let t = 0; (log.match(/"url":"\/v1\/embeddings"/g) ?? []).length < 6; t++) {
    if (t > 500) throw new Error(`the requests did not reach the server: ${log}`);
    await settle(10);
  }
  child.kill('SIGTERM');
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const statuses = (await Promise.all(inFlight)).map((r) => r.status);
  assert.equal(statuses, [200, 200, 200, 200, 200, 200], `in-flight requests: ${statuses}`);
  assert.is(await exit, 0);
  assert.match(log, /"msg":"drained"/);
  // Every log line is JSON.
  for (const line of log.trim().split('\n')) JSON.parse(line);
});

ops.run();
