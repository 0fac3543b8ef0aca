/**
 * `clipkit serve --model ID|DIR [--port 8080] [--host 127.0.0.1] …`: the embedding service
 * (serve/server.ts) as a process. It listens at once and loads the model behind /ready; SIGTERM or
 * SIGINT stops it taking requests, answers every one already taken, and exits 0.
 */
import { Command, Option } from 'commander';
import { loadModel } from '../models';
import { serve } from '../serve';
import { DEFAULT_MODEL, positiveInt } from './common';

interface ServeCliOptions {
  model: string;
  port: number;
  host: string;
  device: 'cpu' | 'cuda';
  dtype: 'fp32' | 'bf16';
  threads?: number;
  maxBatch?: number;
  maxQueue?: number;
  maxInputs?: number;
  timeout?: number;
  bodyLimit?: number;
  apiKey: string[];
  cors: string[];
  logLevel: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('an embedding service over HTTP: OpenAI-compatible /v1/embeddings, images too, with continuous batching')
    .option('-m, --model <id|dir>', 'a Hugging Face hub id (org/name[@revision]) or a model folder', DEFAULT_MODEL)
    .option('--port <n>', 'the port to listen on (0: any free one)', positiveInt('--port', 0), 8080)
    .option('--host <address>', 'the address to listen on (0.0.0.0: every interface)', '127.0.0.1')
    .addOption(new Option('--device <device>', 'where the towers run').choices(['cpu', 'cuda']).default('cpu'))
    .addOption(new Option('--dtype <dtype>', 'weights in the GEMMs').choices(['fp32', 'bf16']).default('fp32'))
    .option('--threads <n>', 'kernel threads (default: one per physical core)', positiveInt('--threads'))
    .option('--max-batch <n>', 'inputs per forward pass (default 32)', positiveInt('--max-batch'))
    .option('--max-queue <n>', 'inputs waiting at most before 429 (default 1024)', positiveInt('--max-queue'))
    .option('--max-inputs <n>', 'inputs per request (default 256)', positiveInt('--max-inputs'))
    .option('--timeout <ms>', 'a request\'s deadline (default 60000)', positiveInt('--timeout'))
    .option('--body-limit <bytes>', 'request body bytes at most (default 64 MiB)', positiveInt('--body-limit'))
    .option('--api-key <key>', 'require Authorization: Bearer <key> on /v1 (repeatable; also $CLIPKIT_API_KEYS, comma-separated)', collect, [])
    .option('--cors <origin>', 'allow browser calls from this origin (repeatable)', collect, [])
    .option('--log-level <level>', 'JSON-lines log level (fatal, error, warn, info, debug, silent)', 'info')
    .action(async (o: ServeCliOptions) => {
      if (o.device === 'cuda') {
        // The CUDA kernels exist (kernels/), the towers do not run on them yet: say so rather than serve from the CPU under a cuda flag.
        console.error('clipkit serve: --device cuda is not available yet: the model towers run on the CPU only (use --device cpu)');
        process.exitCode = 2;
        return;
      }
      const keys = [...o.apiKey, ...(process.env.CLIPKIT_API_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean)];
      await serve({
        model: () => loadModel(o.model, { dtype: o.dtype, threads: o.threads, batchSize: o.maxBatch, progress: false }),
        modelId: o.model,
        port: o.port,
        host: o.host,
        maxBatch: o.maxBatch,
        maxQueue: o.maxQueue,
        maxInputs: o.maxInputs,
        timeoutMs: o.timeout,
        bodyLimit: o.bodyLimit,
        apiKeys: keys,
        corsOrigins: o.cors,
        logger: { level: o.logLevel },
      });
    });
}
