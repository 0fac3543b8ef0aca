/**
 * `clipkit cache ls | rm | prune` on a cache folder filled by loads of the tiny models: the listing
 * and its total, removal by key prefix and --all, and what prune removes (unfinished writes of
 * dead writers, damaged files, files whose model changed or vanished, files unused for --older-than
 * days) and keeps.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel } from '../../src/models';
import { tempDir } from '../helpers';
import { cli, modelFolder } from './fixture_model';

const test = suite('clipkit cache');

const ckw = (folder: string) => readdirSync(folder).filter((f) => f.endsWith('.ckw')).sort();
const sizeOf = (folder: string, names: string[]) => names.reduce((s, n) => s + statSync(join(folder, n)).size, 0);

/** A cache folder with the fp32 and bf16 files of a fresh copy of a tiny model. */
async function filled(): Promise<{ cache: string; model: string; files: Record<'fp32' | 'bf16', string> }> {
  const cache = tempDir('clipkit-cache-cli-'), model = modelFolder('chinese_clip_tiny');
  const fp32 = (await loadModel(model, { weightCache: cache })).weightCache.file!;
  const bf16 = (await loadModel(model, { weightCache: cache, dtype: 'bf16' })).weightCache.file!;
  return { cache, model, files: { fp32: basename(fp32), bf16: basename(bf16) } };
}

/** A pid no process has now: one of a child that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

test('ls: key, model, dtype, size and last used of each file, and the total; --json', async () => {
  const { cache, model, files } = await filled();
  const r = cli(['cache', 'ls', '--dir', cache]);
  assert.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^key\s+model\s+dtype\s+size\s+last used$/);
  const row = (name: string) => lines.find((l) => l.startsWith(name.replace('.ckw', '')))!;
  assert.match(row(files.fp32), new RegExp(`${model}\\s+fp32\\s+[\\d.]+ MiB\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d$`));
  assert.match(row(files.bf16), /\sbf16\s/);
  const total = sizeOf(cache, ckw(cache));
  assert.match(lines[lines.length - 1], new RegExp(`^2 files, ${(total / 2 ** 20).toFixed(1)} MiB in ${cache}$`));

  const j = cli(['cache', 'ls', '--dir', cache, '--json']);
  const rows = j.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.map((x) => [x.key + '.ckw', x.model, x.dtype]).sort(), [[files.fp32, model, 'float32'], [files.bf16, model, 'bfloat16']].sort());
  assert.is(rows.reduce((s, x) => s + x.size, 0), total);
});

test('ls of an empty or absent folder; CLIPKIT_CACHE names the folder, off refuses without --dir', () => {
  const empty = tempDir('clipkit-cache-empty-');
  assert.match(cli(['cache', 'ls', '--dir', join(empty, 'absent')]).stdout, /^0 files, 0 B in /m);
  assert.match(cli(['cache', 'ls'], { env: { CLIPKIT_CACHE: empty } }).stdout, new RegExp(`0 files, 0 B in ${empty}`));
  const off = cli(['cache', 'ls'], { env: { CLIPKIT_CACHE: 'off' } });
  assert.is(off.status, 1);
  assert.match(off.stderr, /weight cache is off.*--dir/);
});

test('rm KEY (a unique prefix), an unknown or ambiguous key refused, rm --all', async () => {
  const { cache, files } = await filled();
  const r = cli(['cache', 'rm', files.fp32.slice(0, 8), '--dir', cache]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /1 file removed, [\d.]+ MiB freed/);
  assert.equal(ckw(cache), [files.bf16]);
  const unknown = cli(['cache', 'rm', 'ffffffffffff', '--dir', cache]);
  assert.is(unknown.status, 1);
  assert.match(unknown.stderr, /No cache file ffffffffffff/);
  writeFileSync(join(cache, `${files.bf16.slice(0, 4)}0000.ckw`), 'x');
  const ambiguous = cli(['cache', 'rm', files.bf16.slice(0, 4), '--dir', cache]);
  assert.is(ambiguous.status, 1);
  assert.match(ambiguous.stderr, /matches 2 cache files/);
  assert.is(cli(['cache', 'rm', '--dir', cache]).status, 1); // neither keys nor --all
  const all = cli(['cache', 'rm', '--all', '--dir', cache]);
  assert.is(all.status, 0, all.stderr);
  assert.match(all.stdout, /2 files removed/);
  assert.equal(ckw(cache), []);
});

test('prune: dead writers\' temporary files and damaged files go, valid files stay; then a changed model\'s files go', async () => {
  const { cache, model, files } = await filled();
  const dead = `.${files.fp32}.${deadPid()}.0123abcd.tmp`, live = `.${files.fp32}.${process.pid}.4567cdef.tmp`;
  writeFileSync(join(cache, dead), 'half');
  writeFileSync(join(cache, live), 'half');
  writeFileSync(join(cache, '00000000000000000000000000000000.ckw'), Buffer.alloc(5000, 7));
  const r = cli(['cache', 'prune', '--dir', cache]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`removed ${join(cache, '00000000000000000000000000000000.ckw')} .*damaged: no CLIPKITW magic`));
  assert.match(r.stdout, /unfinished write/);
  assert.match(r.stdout, /2 files removed, [\d.]+ KiB freed/);
  assert.equal(ckw(cache), [files.fp32, files.bf16].sort());
  assert.ok(!existsSync(join(cache, dead)));
  assert.ok(existsSync(join(cache, live)), 'a live writer\'s file was removed');
  rmSync(join(cache, live));

  // The weights are touched: both files are stale.
  utimesSync(join(model, 'model.safetensors'), new Date(), new Date(Date.now() + 60_000));
  const j = cli(['cache', 'prune', '--dir', cache, '--json']);
  const removed = j.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(removed.map((x) => [basename(x.file), x.reason]).sort(), [[files.fp32, 'source changed'], [files.bf16, 'source changed']].sort());
  assert.equal(ckw(cache), []);
});

test('prune: a model that vanished, and --older-than DAYS', async () => {
  const { cache, model, files } = await filled();
  const old = Date.now() / 1000 - 10 * 86_400;
  utimesSync(join(cache, files.bf16), old, old);
  const r = cli(['cache', 'prune', '--older-than', '5', '--dir', cache]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`removed .*${files.bf16} .*not used recently`));
  assert.equal(ckw(cache), [files.fp32]);
  assert.is(cli(['cache', 'prune', '--older-than', 'soon', '--dir', cache]).status, 1);

  rmSync(model, { recursive: true, force: true });
  const gone = cli(['cache', 'prune', '--dir', cache]);
  assert.match(gone.stdout, /source vanished/);
  assert.equal(ckw(cache), []);
});

test.run();
