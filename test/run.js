#!/usr/bin/env node
// Runs every uvu suite under test/ (TypeScript through tsx) in one process and ends with the line
// "N passed, N failed". Usage: node test/run.js [pattern]   (pattern: a regex on test file paths)
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
// The model, tokenizer and image suites compare against the reference fixture set, which lives
// outside the repository (test/reference_dir.js): without it, say so once instead of failing
// suite by suite.
const fixtures = require('./reference_dir').referenceDir();
if (!fixtures.ok) {
  console.log(fixtures.why);
  console.log('\n0 passed, 1 failed (no reference fixtures)');
  process.exit(1);
}
// Only *.test.ts files are suites; a pattern given on the command line narrows them further.
const pattern = process.argv[2] ? `^(?=.*(?:${process.argv[2]})).*\\.test\\.ts$` : '\\.test\\.ts$';
const uvu = path.join(root, 'node_modules', 'uvu', 'bin.js');
// Model loads write the weight cache (src/loading/weight_cache.ts). Suites load fresh temporary
// copies of the models, whose cache files would pile up in the user's cache: a run keeps its own,
// removed at the end (unless CLIPKIT_CACHE names one). Loads after the first still map it.
const weightCache = process.env.CLIPKIT_CACHE ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'clipkit-test-weights-'));
const child = spawn(process.execPath, [uvu, '-r', 'tsx/cjs', 'test', pattern], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, FORCE_COLOR: '0', ...(weightCache && { CLIPKIT_CACHE: weightCache }) },
});
let out = '';
child.stdout.on('data', (chunk) => {
  out += chunk;
  process.stdout.write(chunk);
});
child.on('exit', (code, signal) => {
  if (weightCache) fs.rmSync(weightCache, { recursive: true, force: true });
  const num = (label) => {
    // uvu colours some counts whatever FORCE_COLOR says: match on the text without escape codes.
    const m = out.replace(/\x1b\[[0-9;]*m/g, '').match(new RegExp(`${label}:\\s+(\\d+)`));
    return m ? Number(m[1]) : null;
  };
  const total = num('Total'), passed = num('Passed'), skipped = num('Skipped') || 0;
  if (total === null || passed === null) {
    console.log(`\n0 passed, 1 failed (the test process ended ${signal ? `by ${signal}` : `with code ${code}`} before its summary)`);
    process.exit(1);
  }
  const failed = total - passed; // uvu's Total counts the tests that ran, not the skipped ones
  console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(code === 0 && failed === 0 ? 0 : 1);
});
