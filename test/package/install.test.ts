/**
 * The install story, end to end: `npm run prebuild` in a copy of the package, `npm pack`, then the
 * tarball installed into an empty folder with every compiler and cmake on PATH replaced by a
 * tripwire that records it was called. The install must load the prebuilt addon and run a kernel
 * with no tripwire touched and no build/ folder made; without the prebuild, loading must fail with
 * one E_NATIVE_LOAD message that says what was tried and what to do.
 * Offline: dependencies come from the npm cache that installing this repository filled.
 */
import { spawnSync, SpawnSyncOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const Install = suite('packed tarball install');
const root = path.join(__dirname, '..', '..');
const SKIP = new Set(['node_modules', '.git', 'dist', 'prebuilds', '.bench']);

function run(cmd: string, args: string[], opts: SpawnSyncOptions & { cwd: string }) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 900_000, ...opts });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

function copyPackage(dest: string) {
  for (const entry of fs.readdirSync(root)) {
    if (SKIP.has(entry) || entry.startsWith('build') || entry.endsWith('.tgz')) continue;
    fs.cpSync(path.join(root, entry), path.join(dest, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dest, 'node_modules'), 'dir');
}

const tools = ['cmake', 'make', 'ninja', 'cc', 'c++', 'gcc', 'g++', 'clang', 'clang++', 'node-gyp', 'cmake-js'];

function tripwires(dir: string, log: string): string {
  const bin = path.join(dir, 'tripwire-bin');
  fs.mkdirSync(bin);
  for (const t of tools) {
    fs.writeFileSync(path.join(bin, t), `#!/bin/sh\necho "${t} $*" >> "${log}"\nexit 1\n`, { mode: 0o755 });
  }
  return bin;
}

Install('npm pack carries the prebuild; installing the tarball compiles nothing; a missing binary is explained', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'clipkit-pack-'));
  try {
    const pkg = path.join(tmp, 'pkg');
    fs.mkdirSync(pkg);
    copyPackage(pkg);

    const prebuild = run('npm', ['run', 'prebuild'], { cwd: pkg });
    assert.is(prebuild.status, 0, `npm run prebuild failed:\n${prebuild.out.slice(-3000)}`);
    const built = fs.readdirSync(path.join(pkg, 'prebuilds', `${process.platform}-${process.arch}`));
    assert.ok(built.some((f) => f.endsWith('.node')), `no .node in prebuilds: ${built}`);

    const pack = run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: pkg });
    assert.is(pack.status, 0, `npm pack failed:\n${pack.out.slice(-3000)}`);
    const tarball = path.join(tmp, fs.readdirSync(tmp).find((f) => f.endsWith('.tgz'))!);
    const listing = run('tar', ['-tzf', tarball], { cwd: tmp }).out;
    assert.match(listing, new RegExp(`package/prebuilds/${process.platform}-${process.arch}/[^\\n]+\\.node`));
    assert.match(listing, /package\/dist\/src\/index\.js/);

    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const log = path.join(tmp, 'tripwire.log');
    const bin = tripwires(tmp, log);
    const env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}`, CC: path.join(bin, 'cc'), CXX: path.join(bin, 'c++') };
    const install = run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], { cwd: app, env });
    assert.is(install.status, 0, `npm install failed:\n${install.out.slice(-3000)}`);
    const touched = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    assert.is(touched, '', `a compiler or build tool ran during install:\n${touched}`);
    const installed = path.join(app, 'node_modules', 'clipkit');
    assert.not.ok(fs.existsSync(path.join(installed, 'build')), 'install created a build/ folder');

    const script = `
      const ck = require('clipkit');
      ck.softmax(new ck.Tensor(Float32Array.of(0, Math.log(3)), [1, 2])).then((y) => console.log(JSON.stringify(Array.from(y.data))));`;
    const use = run(process.execPath, ['-e', script], { cwd: app, env });
    assert.is(use.status, 0, use.out);
    const [a, b] = JSON.parse(use.out.trim().split('\n').pop()!);
    assert.ok(Math.abs(a - 0.25) < 1e-6 && Math.abs(b - 0.75) < 1e-6, use.out);

    fs.rmSync(path.join(installed, 'prebuilds'), { recursive: true });
    const missing = run(process.execPath, ['-e', "require('clipkit').cpuInfo()"], { cwd: app, env });
    assert.is.not(missing.status, 0);
    assert.match(missing.out, /E_NATIVE_LOAD|could not load its native addon/);
    assert.match(missing.out, /Tried:[\s\S]*prebuilds\/[\s\S]*build\/Release/);
    assert.match(missing.out, /npm rebuild clipkit/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

Install.run();
