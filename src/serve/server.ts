/**
 * `clipkit serve`: the embedding service, on fastify.
 *
 *   POST /v1/embeddings        OpenAI's shape: { model, input, encoding_format } → { object: 'list',
 *                              data: [{ object: 'embedding', index, embedding }], model, usage };
 *                              input a string, strings, or items { text } / { image: base64 or a
 *                              data: URI } mixed (Jina's shape), images never fetched from URLs
 *   POST /v1/embeddings/image  one image as the raw body (Content-Type image/*), the same answer
 *   POST /v1/classify          { images | image, labels, templates? } → softmax scores per image
 *   POST /v1/similarity        { a: items, b: items } → cosine similarities [a × b]
 *   GET  /v1/models            the one model served
 *   GET  /health               200 when a probe through the native pool answers and no batch is stuck
 *   GET  /ready                503 while the model loads and while draining, else 200
 *   GET  /metrics              Prometheus text (metrics.ts)
 *
 * Embeddings are L2-normalised and equal bit for bit to the in-process encodeText / encodeImage of
 * the same model (batcher.ts says why batching does not change them). Errors are OpenAI's shape,
 * { error: { message, type, code, param, index? } }: 400 for a bad request or a bad input (index:
 * which), 401 without a valid key, 404 for another model, 413 for a body over the limit, 429 with
 * Retry-After when the queue is full, 503 while loading or draining, 504 when the deadline passes.
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify, { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import cors from '@fastify/cors';
import { ClipkitError } from '../errors';
import { ClipModel } from '../models/model';
import { l2Normalize } from '../ops/l2_normalize';
import { Tensor } from '../tensor';
import { Abandoned, Batcher, Input, ItemError, Overloaded, ShuttingDown } from './batcher';
import { serviceMetrics } from './metrics';

export interface ServerOptions {
  /** The model, or a function that loads it (the server answers /ready 503 until it resolves). */
  model: ClipModel | (() => Promise<ClipModel>);
  /** The id requests name in `model` and /v1/models lists. */
  modelId: string;
  /** Inputs per forward pass (default 32). */
  maxBatch?: number;
  /** Text tokens per forward pass, true lengths summed (default 8192). */
  maxBatchTokens?: number;
  /** Inputs waiting at most; beyond it requests get 429 (default 1024). */
  maxQueue?: number;
  /** Inputs per request (default 256). */
  maxInputs?: number;
  /** Characters per text (default 20 000). */
  maxTextChars?: number;
  /** Request body bytes (default 64 MiB). */
  bodyLimit?: number;
  /** A request's deadline in ms (default 60 000); a client may ask for less with `X-Request-Timeout-Ms`. */
  timeoutMs?: number;
  /** Bearer keys; when given, every /v1 route needs one. */
  apiKeys?: readonly string[];
  /** Origins allowed to call from a browser (CORS); none by default. */
  corsOrigins?: readonly string[];
  /** A batch running longer than this makes /health fail (default 120 000 ms). */
  stallMs?: number;
  /** How long /health's probe through the native pool may take (default 5 000 ms). */
  probeTimeoutMs?: number;
  /** fastify's logger (pino): true for JSON lines at info, an options object, or false (default). */
  logger?: boolean | { level?: string };
}

export interface EmbeddingServer {
  app: FastifyInstance;
  /** Resolves once the model is loaded (rejects when loading fails). */
  loaded: Promise<ClipModel>;
  /** Stops taking requests (/ready 503), answers everything queued, closes the listener. */
  drain(): Promise<void>;
}

const DEFAULTS = {
  maxBatch: 32,
  maxBatchTokens: 8192,
  maxQueue: 1024,
  maxInputs: 256,
  maxTextChars: 20_000,
  bodyLimit: 64 * 2 ** 20,
  timeoutMs: 60_000,
  stallMs: 120_000,
  probeTimeoutMs: 5_000,
};

/** An error answered with its status and OpenAI's error shape. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const bad = (message: string, code = 'invalid_request', extra: Record<string, unknown> = {}) => new HttpError(400, message, code, extra);

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  404: 'not_found_error',
  413: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'service_unavailable',
  504: 'timeout_error',
};

export function createServer(o: ServerOptions): EmbeddingServer {
  const opt = { ...DEFAULTS, ...definedOnly(o) };
  const app = Fastify({ logger: o.logger ?? false, bodyLimit: opt.bodyLimit, return503OnClosing: false });
  let model: ClipModel | undefined;
  let batcher: Batcher | undefined;
  let draining = false;
  const metrics = serviceMetrics(() => batcher?.queued ?? 0);

  const loaded = (typeof o.model === 'function' ? o.model() : Promise.resolve(o.model)).then((m) => {
    model = m;
    batcher = new Batcher(m, { maxBatch: opt.maxBatch, maxBatchTokens: opt.maxBatchTokens, maxQueue: opt.maxQueue }, metrics.observer);
    return m;
  });
  loaded.catch((err) => app.log.error({ err }, 'the model failed to load'));

  if (o.corsOrigins?.length) void app.register(cors, { origin: [...o.corsOrigins] });

  // Raw image bodies: bytes as they came (the body limit applies).
  app.addContentTypeParser(/^image\//, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const keys = (o.apiKeys ?? []).map((k) => Buffer.from(k, 'utf8'));
  app.addHook('onRequest', async (req) => {
    if (!keys.length || !req.url.startsWith('/v1/')) return;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const given = m ? Buffer.from(m[1].trim(), 'utf8') : undefined;
    if (!given || !keys.some((k) => k.length === given.length && timingSafeEqual(k, given)))
      throw new HttpError(401, 'A valid API key is required: Authorization: Bearer <key>', 'invalid_api_key');
  });
  // While draining, each answer closes its connection: a keep-alive one would otherwise hold the
  // process open until its idle timeout after the last request is answered.
  app.addHook('onSend', async (_req, reply) => {
    if (draining) void reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.requests.inc({ route: req.routeOptions.url ?? 'unknown', code: String(reply.statusCode) });
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    let e: HttpError;
    if (err instanceof HttpError) e = err;
    else if (err instanceof Overloaded)
      e = new HttpError(429, `The queue is full; retry in ${err.retryAfterS} s`, 'queue_full', {}, { 'retry-after': String(err.retryAfterS) });
    else if (err instanceof ShuttingDown) e = new HttpError(503, err.message, 'draining', {}, { 'retry-after': '1' });
    else if (err instanceof Abandoned) e = new HttpError(504, `The request was not computed: ${err.message}`, 'timeout');
    else if (err instanceof ItemError) e = bad(err.message, itemCode(err.reason), { index: err.index });
    else if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new HttpError(413, `The request body is larger than the limit of ${opt.bodyLimit} bytes`, 'payload_too_large');
    else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) e = new HttpError(err.statusCode, err.message, err.code ?? 'invalid_request');
    else {
      reply.log.error({ err }, 'request failed');
      e = new HttpError(500, err.message, 'internal_error');
    }
    void reply
      .code(e.status)
      .headers(e.headers)
      .send({ error: { message: e.message, type: ERROR_TYPES[e.status] ?? 'server_error', code: e.code, param: null, ...e.extra } });
  });

  /** The model and batcher, or 503 while loading or draining. */
  const serving = (): { model: ClipModel; batcher: Batcher } => {
    // While draining, requests that reach a handler are served: the listener is closed, so they
    // came on connections already open (in flight when the signal came).
    if (!model || !batcher) throw new HttpError(503, 'The model is loading', 'loading', {}, { 'retry-after': '1' });
    return { model, batcher };
  };

  /** Runs inputs through the batcher under the request's deadline; aborted when the client goes away. */
  const embed = async (req: FastifyRequest, reply: FastifyReply, b: Batcher, inputs: Input[]): Promise<{ embeddings: Float32Array[]; tokens: number }> => {
    const asked = Number(req.headers['x-request-timeout-ms']);
    const timeout = Number.isFinite(asked) && asked > 0 ? Math.min(asked, opt.timeoutMs) : opt.timeoutMs;
    const gone = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableEnded) gone.abort();
    };
    reply.raw.once('close', onClose);
    try {
      return await b.embed(inputs, { deadline: performance.now() + timeout, signal: gone.signal });
    } finally {
      reply.raw.off('close', onClose);
    }
  };

  const checkModel = (name: unknown) => {
    if (name === undefined || name === null) return;
    if (typeof name !== 'string') throw bad('model must be a string', 'invalid_model', { param: 'model' });
    if (name !== o.modelId) throw new HttpError(404, `The model ${JSON.stringify(name)} is not served here; this server serves ${JSON.stringify(o.modelId)}`, 'model_not_found');
  };

  const parseItems = (input: unknown, what: string): Input[] => {
    const list = typeof input === 'string' || (input !== null && typeof input === 'object' && !Array.isArray(input)) ? [input] : input;
    if (!Array.isArray(list)) throw bad(`${what} must be a string, an array of strings, or an array of { text } / { image } items`, 'invalid_input', { param: what });
    if (list.length === 0) throw bad(`${what} must not be empty`, 'invalid_input', { param: what });
    if (list.length > opt.maxInputs) throw bad(`${what} has ${list.length} inputs, more than the limit of ${opt.maxInputs} per request`, 'too_many_inputs', { param: what });
    return list.map((x, index) => parseItem(x, index, opt.maxTextChars));
  };

  const embeddingsAnswer = ({ embeddings, tokens }: { embeddings: Float32Array[]; tokens: number }, format: string) => ({
    object: 'list',
    data: embeddings.map((e, index) => ({
      object: 'embedding',
      index,
      // base64: the float32 values' little-endian bytes, as OpenAI sends them.
      embedding: format === 'base64' ? Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('base64') : Array.from(e),
    })),
    model: o.modelId,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });

  app.post('/v1/embeddings', async (req, reply) => {
    const { model: m, batcher: b } = serving();
    const body = expectObject(req.body);
    checkModel(body.model);
    const format = body.encoding_format ?? 'float';
    if (format !== 'float' && format !== 'base64') throw bad('encoding_format must be "float" or "base64"', 'invalid_encoding_format', { param: 'encoding_format' });
    if (body.dimensions !== undefined && body.dimensions !== m.config.projectionDim)
      throw bad(`This model's embeddings have ${m.config.projectionDim} dimensions; dimensions cannot change them`, 'invalid_dimensions', { param: 'dimensions' });
    const inputs = parseItems(body.input, 'input');
    return embeddingsAnswer(await embed(req, reply, b, inputs), format as string);
  });

  app.post('/v1/embeddings/image', async (req, reply) => {
    const { batcher: b } = serving();
    if (!Buffer.isBuffer(req.body) || req.body.length === 0) throw bad('Expected the image file as the request body, with Content-Type image/*', 'invalid_input');
    const q = req.query as Record<string, string | undefined>;
    const format = q.encoding_format ?? 'float';
    if (format !== 'float' && format !== 'base64') throw bad('encoding_format must be "float" or "base64"', 'invalid_encoding_format', { param: 'encoding_format' });
    const inputs: Input[] = [{ image: new Uint8Array(req.body.buffer, req.body.byteOffset, req.body.length) }];
    return embeddingsAnswer(await embed(req, reply, b, inputs), format);
  });

  app.post('/v1/classify', async (req, reply) => {
    const { model: m, batcher: b } = serving();
    const body = expectObject(req.body);
    checkModel(body.model);
    const images = body.images ?? (body.image !== undefined ? [body.image] : undefined);
    if (!Array.isArray(images)) throw bad('Expected images: an array of base64 images (or image: one)', 'invalid_input', { param: 'images' });
    const inputs = parseItems(images.map((x) => (typeof x === 'string' ? { image: x } : x)), 'images');
    if (inputs.some((x) => !('image' in x))) throw bad('images must hold images only', 'invalid_input', { param: 'images' });
    const labels = body.labels;
    if (!Array.isArray(labels) || labels.length === 0 || labels.length > opt.maxInputs || !labels.every((l) => typeof l === 'string' && l.length > 0 && l.length <= opt.maxTextChars))
      throw bad(`labels must be 1 to ${opt.maxInputs} non-empty strings`, 'invalid_labels', { param: 'labels' });
    const templates = body.templates;
    if (templates !== undefined && !(typeof templates === 'string' || (Array.isArray(templates) && templates.every((t) => typeof t === 'string'))))
      throw bad('templates must be a template set name or an array of templates with {}', 'invalid_templates', { param: 'templates' });
    const { embeddings: embeds } = await embed(req, reply, b, inputs);
    let scores;
    try {
      // The text tower runs between batches, never beside one.
      scores = await b.exclusive(() => m.classifyEmbeddings(embeds, labels as string[], templates === undefined ? {} : { templates: templates as never }));
    } catch (err) {
      if (err instanceof ClipkitError) throw bad(err.message, 'invalid_labels');
      throw err;
    }
    return { object: 'list', data: scores.map((s, index) => ({ object: 'classification', index, scores: s })), model: o.modelId };
  });

  app.post('/v1/similarity', async (req, reply) => {
    const { batcher: b } = serving();
    const body = expectObject(req.body);
    checkModel(body.model);
    const a = parseItems(body.a, 'a'), c = parseItems(body.b, 'b');
    const { embeddings: rows } = await embed(req, reply, b, [...a, ...c]);
    const ea = rows.slice(0, a.length), eb = rows.slice(a.length);
    // Unit embeddings: the dot product is the cosine.
    const similarity = ea.map((x) => eb.map((y) => dot(x, y)));
    return { object: 'similarity', similarity, model: o.modelId };
  });

  app.get('/v1/models', async () => ({ object: 'list', data: [{ id: o.modelId, object: 'model', created: 0, owned_by: 'clipkit' }] }));

  app.get('/ready', async (_req, reply) => {
    if (draining) return reply.code(503).send({ status: 'draining' });
    if (!model) return reply.code(503).send({ status: 'loading' });
    return { status: 'ready' };
  });

  app.get('/health', async (_req, reply) => {
    if (!model || !batcher) return reply.code(503).send({ status: 'loading' });
    const since = batcher.busySince;
    if (since !== undefined && performance.now() - since > opt.stallMs)
      return reply.code(503).send({ status: 'wedged', reason: `a batch has been running for ${((performance.now() - since) / 1000).toFixed(1)} s` });
    const ok = await probe(opt.probeTimeoutMs);
    if (!ok) return reply.code(503).send({ status: 'wedged', reason: `the native pool did not answer a probe within ${opt.probeTimeoutMs} ms` });
    return { status: 'ok', queued: batcher.queued };
  });

  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  const drain = async () => {
    if (draining) return;
    draining = true;
    await loaded.catch(() => undefined);
    // fastify's close stops the listener and waits for the requests in flight, whose items the batcher finishes.
    await app.close();
    await batcher?.drain();
  };

  return { app, loaded, drain };
}

/** A tiny op through the native pool, or false when it does not answer in time. */
async function probe(timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  try {
    return await Promise.race([l2Normalize(new Tensor(new Float32Array([3, 4]), [1, 2])).then(() => true as const, () => false as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function expectObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body) || Buffer.isBuffer(body)) throw bad('Expected a JSON object as the request body', 'invalid_body');
  return body as Record<string, unknown>;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;
const DATA_URI = /^data:([^;,]*)(;[^,]*)?,/;

/** One input: a string (text), { text }, or { image: base64 | data URI }. */
function parseItem(x: unknown, index: number, maxChars: number): Input {
  const fail = (message: string) => bad(`Input ${index}: ${message}`, 'invalid_input', { index });
  if (typeof x === 'string') return { text: checkText(x, fail, maxChars) };
  if (x === null || typeof x !== 'object' || Array.isArray(x)) throw fail('expected a string, { text } or { image }');
  const o = x as Record<string, unknown>;
  if ('text' in o && 'image' in o) throw fail('give text or image, not both');
  if ('text' in o) {
    if (typeof o.text !== 'string') throw fail('text must be a string');
    return { text: checkText(o.text, fail, maxChars) };
  }
  if ('image' in o) return { image: decodeImageField(o.image, fail) };
  throw fail('expected a string, { text } or { image }');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkText(t: string, fail: (m: string) => Error, maxChars: number): string {
  if (t.length > maxChars) throw fail(`the text has ${t.length} characters, more than the limit of ${maxChars}`);
  // Lone surrogates cannot be encoded as UTF-8; the tokenizers would see U+FFFD instead: say so.
  if (LONE_SURROGATE.test(t)) throw fail('the text holds a lone UTF-16 surrogate (not a Unicode string)');
  return t;
}

function decodeImageField(v: unknown, fail: (m: string) => Error): Uint8Array {
  if (typeof v !== 'string' || v.length === 0) throw fail('image must be a non-empty base64 string or data: URI');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) throw fail('image URLs are not fetched; send the image bytes as base64 or a data: URI');
  let b64 = v;
  const m = DATA_URI.exec(v);
  if (m) {
    if (!(m[2] ?? '').split(';').includes('base64')) throw fail('a data: URI image must be base64 (;base64,)');
    b64 = v.slice(m[0].length);
  }
  b64 = b64.replace(/\s+/g, '');
  if (!(BASE64.test(b64) || BASE64URL.test(b64)) || b64.length % 4 === 1) throw fail('image is not valid base64');
  const bytes = Buffer.from(b64, BASE64.test(b64) ? 'base64' : 'base64url');
  if (bytes.length === 0) throw fail('image is empty');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

function itemCode(cause: unknown): string {
  const code = (cause as { code?: string })?.code;
  return code === 'E_LIMIT' ? 'input_too_large' : code === 'E_FORMAT' || code === 'E_UNSUPPORTED' ? 'invalid_image' : 'invalid_input';
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
