/**
 * The embedding service: createServer (a fastify app to listen with, or to mount in an app of
 * one's own) and serve (listening, loading the model behind /ready, draining on SIGTERM / SIGINT).
 */
import { createServer, EmbeddingServer, ServerOptions } from './server';

export { createServer } from './server';
export type { EmbeddingServer, ServerOptions } from './server';

export interface ServeOptions extends ServerOptions {
  port?: number;
  host?: string;
  /** Drain and close on these signals (default SIGTERM and SIGINT); [] to handle none. */
  signals?: readonly NodeJS.Signals[];
}

/**
 * Listens on host:port (default 127.0.0.1:8080) at once, loads the model (requests get 503 and
 * /ready says loading until it is in), and on SIGTERM or SIGINT stops accepting, answers every
 * request already taken and resolves; the process then exits 0 once nothing else holds it. A model
 * that fails to load closes the server and rejects.
 */
export async function serve(o: ServeOptions): Promise<EmbeddingServer & { address: string; closed: Promise<void> }> {
  const server = createServer(o);
  const address = await server.app.listen({ port: o.port ?? 8080, host: o.host ?? '127.0.0.1' });
  server.app.log.info({ address, model: o.modelId }, 'listening; loading the model');
  let done!: () => void;
  const closed = new Promise<void>((resolve) => (done = resolve));
  const stop = (signal: string) => {
    server.app.log.info({ signal }, 'draining: answering what is queued, then exiting');
    void server.drain().then(() => {
      server.app.log.info('drained');
      for (const s of signals) process.off(s, stop);
      done();
    });
  };
  const signals = o.signals ?? ['SIGTERM', 'SIGINT'];
  for (const s of signals) process.on(s, stop);
  server.loaded.then(
    () => server.app.log.info('ready'),
    async (err) => {
      server.app.log.fatal({ err }, 'the model failed to load');
      for (const s of signals) process.off(s, stop);
      await server.app.close();
      process.exitCode = 1;
      done();
    },
  );
  return { ...server, address, closed };
}
