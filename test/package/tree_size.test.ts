/**
 * The tracked tree stays small: a check on the GPU machine sends it together with a Node binary
 * (24 MB as xz) and a CUDA build, 64 MiB in all, and every clone downloads it. Reference fixtures
 * belong in the fixture set (test/reference_dir.js), not in the repository.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const Tree = suite('tracked tree');
const root = path.join(__dirname, '..', '..');
const LIMIT = 30e6;
const LARGEST_FILE = 2e6;

const isCheckout = fs.existsSync(path.join(root, '.git'));
(isCheckout ? Tree : Tree.skip)(`git ls-files come to at most ${LIMIT / 1e6} MB, no file over ${LARGEST_FILE / 1e6} MB`, () => {
  const r = spawnSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.is(r.status, 0, r.stderr);
  const files = r.stdout.split('\0').filter(Boolean);
  assert.ok(files.length > 100, `${files.length} tracked files`);
  let total = 0;
  const large: string[] = [];
  for (const f of files) {
    const st = fs.lstatSync(path.join(root, f), { throwIfNoEntry: false });
    if (!st) continue; // deleted in the work tree, not yet committed
    total += st.size;
    if (st.size > LARGEST_FILE) large.push(`${f} (${(st.size / 1e6).toFixed(1)} MB)`);
  }
  assert.ok(total <= LIMIT, `the tracked files come to ${(total / 1e6).toFixed(1)} MB`);
  assert.equal(large, [], 'files over the per-file limit');
});

Tree.run();
