/**
 * The service's Prometheus metrics (prom-client), in a registry of its own per server (so that two
 * servers in one process, as in tests, do not share counters): requests by route and status code,
 * the queue, batch sizes and the time items spend queued, decoding and in the towers, plus Node's
 * own process metrics (event-loop lag percentiles among them).
 */
import * as client from 'prom-client';
import { BatcherObserver } from './batcher';

export interface ServiceMetrics {
  registry: client.Registry;
  requests: client.Counter<'route' | 'code'>;
  observer: BatcherObserver;
}

export function serviceMetrics(queued: () => number): ServiceMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'clipkit_', eventLoopMonitoringPrecision: 10 });
  const requests = new client.Counter({
    name: 'clipkit_http_requests_total',
    help: 'HTTP requests answered, by route and status code',
    labelNames: ['route', 'code'] as const,
    registers: [registry],
  });
  new client.Gauge({
    name: 'clipkit_queue_items',
    help: 'Inputs waiting for a batch',
    registers: [registry],
    collect() {
      this.set(queued());
    },
  });
  const batchSize = new client.Histogram({
    name: 'clipkit_batch_size',
    help: 'Inputs per forward pass, by tower',
    labelNames: ['tower'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [registry],
  });
  const seconds = (name: string, help: string, labelNames: string[] = []) =>
    new client.Histogram({ name, help, labelNames, buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] });
  const inference = seconds('clipkit_inference_seconds', 'Time of a forward pass, by tower', ['tower']);
  const queue = seconds('clipkit_queue_seconds', 'Time an input waited for its batch');
  const decode = seconds('clipkit_decode_seconds', 'Time to decode and preprocess an image');
  return {
    registry,
    requests,
    observer: {
      batch(tower, size, s) {
        batchSize.observe({ tower }, size);
        inference.observe({ tower }, s);
      },
      queued: (s) => queue.observe(s),
      decoded: (s) => decode.observe(s),
    },
  };
}
