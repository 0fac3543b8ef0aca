/** `clipkit bench`: JSON lines with the documented fields, --op filtering, a clear error for an unknown op, and the --markdown section. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const Bench = suite('clipkit bench');
const root = path.join(__dirname, '..', '..');

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['-r', 'tsx/cjs', path.join(root, 'src', 'cli.ts'), ...args], { cwd: root, encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

Bench('--op layer_norm --json prints one object per case with the documented fields', () => {
  const r = cli('bench', '--op', 'layer_norm', '--json', '--samples', '1');
  assert.is(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(rows.length >= 3, r.stdout);
  for (const row of rows) {
    assert.ok(row.op === 'layer_norm' || row.op === 'layer_norm_residual', row.op);
    for (const key of ['shape', 'isa', 'threads', 'median_ms', 'gbps', 'peak', 'ratio']) assert.ok(key in row, `missing ${key}`);
    assert.ok(row.median_ms > 0 && row.gbps > 0 && row.peak > 0);
    assert.ok(Math.abs(row.ratio - row.gbps / row.peak) < 0.01, JSON.stringify(row));
  }
});

Bench('--list-ops names the kernels; an unknown --op is refused', () => {
  const list = cli('bench', '--list-ops');
  assert.is(list.status, 0, list.stderr);
  for (const op of ['layer_norm', 'gelu', 'softmax', 'embedding']) assert.match(list.stdout, new RegExp(`^${op}$`, 'm'));
  const bad = cli('bench', '--op', 'nope');
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /no kernel named nope; known: /);
});

Bench('--help describes the options', () => {
  const r = cli('bench', '--help');
  assert.is(r.status, 0);
  for (const flag of ['--op', '--json', '--threads', '--isa', '--markdown']) assert.match(r.stdout, new RegExp(flag));
});

Bench("--markdown writes this machine's bench:kernels section into the file, keeping the text around it", () => {
  const { tempDir } = require('../helpers') as typeof import('../helpers');
  const file = path.join(tempDir('clipkit-bench-md-'), 'BENCH.md');
  fs.writeFileSync(file, '# Benchmarks\n\nintro\n\n## Running the benches\n');
  const r = cli('bench', '--op', 'softmax', '--samples', '1', '--markdown', file);
  assert.is(r.status, 0, r.stderr);
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.startsWith('# Benchmarks\n\nintro\n\n## Running the benches\n\n<!-- bench:kernels machine="'), text);
  const section = text.slice(text.indexOf('<!-- bench:kernels'));
  const lines = section.trimEnd().split('\n');
  assert.match(lines[0], /^<!-- bench:kernels machine="[a-z0-9-]+" -->$/);
  assert.match(lines[1], /^## .+: (scalar|avx2|avx512|amx|neon)\b/);
  assert.match(section, /^Kernels: \d{4}-\d{2}-\d{2}, commit `([0-9a-f]{4,}(\+dirty)?|unknown)`, node v\d+\.\d+\.\d+, \d+ threads?$/m);
  // The same table as the terminal's, with the softmax row's ratio to the peak.
  assert.ok(section.includes(`\n\n${r.stdout.trim()}\n\n`), section);
  assert.match(section, /^\| softmax .* \d+\.\d % /m);
  assert.match(section, /^```sh\n.*src\/cli\.ts bench --op softmax --samples 1 --markdown \S+\n```$/m);
  assert.is(lines[lines.length - 1], '<!-- /bench:kernels -->');
  const withModel = cli('bench', '--model', 'x', '--markdown', file);
  assert.is(withModel.status, 2);
  assert.match(withModel.stderr, /--markdown writes the kernel table; it does not apply to --model/);
});

Bench('--model: tower throughput rows for images and texts at batch 1 and --batch-size', () => {
  const { modelFolder } = require('./fixture_model') as typeof import('./fixture_model');
  const r = cli('bench', '--model', modelFolder('openai_clip_tiny'), '--samples', '1', '--batch-size', '4', '--json');
  assert.is(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.map((x) => `${x.tower}/${x.batch}`), ['image/1', 'image/4', 'text/1', 'text/4']);
  for (const x of rows) assert.ok(x.median_ms > 0 && Math.abs(x.items_per_s - (1000 * x.batch) / x.median_ms) < 1e-6 * x.items_per_s, JSON.stringify(x));
  assert.ok(rows[2].tokens >= 3 && rows[2].tokens <= 77, `tokens ${rows[2].tokens}`);
});
Bench.run();
