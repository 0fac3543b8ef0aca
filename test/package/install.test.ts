/**
 * The install story, end to end: `npm run prebuild` in a copy of the package, `npm pack`, then the
 * tarball installed into an empty folder with every compiler and cmake on PATH replaced by a
 * tripwire that records it was called. The install must load the prebuilt addon and run a kernel
 * with no tripwire touched and no build/ folder made; without the prebuild, loading must fail with
 * one E_NATIVE_LOAD message that says what was tried and what to do.
 * Offline and pinned: the app gets a package-lock.json made from this repository's own (the tarball
 * plus every entry the runtime tree needs, at the versions pinned there) and is set up with
 * `npm ci --offline`, so its tarballs are exactly the ones installing this repository put in the
 * npm cache. Resolving the ranges instead would pick the newest version whose metadata happens to be
 * cached, and a new upstream release could turn this test red on a fresh machine.
 */
import { spawnSync, SpawnSyncOptions } from 'node:child_process';
import * as crypto from 'node:crypto';
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

interface LockEntry {
  dev?: boolean;
  [key: string]: unknown;
}

/**
 * The app's package-lock.json: clipkit from the tarball, and every package of this repository's
 * lockfile that is not only a devDependency, at the same path (clipkit's dependencies are hoisted
 * to the top of node_modules there as they are in the app).
 */
function appLockfile(app: { name: string; version: string }, tarball: string, spec: string): { packages: Record<string, LockEntry> } {
  const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { lockfileVersion: number; packages: Record<string, LockEntry> };
  const own = lock.packages[''];
  const packages: Record<string, LockEntry> = {
    '': { name: app.name, version: app.version, dependencies: { clipkit: spec } },
    'node_modules/clipkit': {
      version: own.version,
      resolved: spec,
      integrity: `sha512-${crypto.createHash('sha512').update(fs.readFileSync(tarball)).digest('base64')}`,
      hasInstallScript: own.hasInstallScript,
      license: own.license,
      dependencies: own.dependencies,
      bin: own.bin,
      engines: own.engines,
    },
  };
  for (const [at, entry] of Object.entries(lock.packages)) if (at.startsWith('node_modules/') && !entry.dev) packages[at] = entry;
  return { name: app.name, version: app.version, lockfileVersion: lock.lockfileVersion, requires: true, packages };
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

    // CPU-only: the story under test is the CPU install, and the CUDA library would add minutes of nvcc.
    const prebuild = run('npm', ['run', 'prebuild'], { cwd: pkg, env: { ...process.env, CLIPKIT_CUDA: 'OFF' } });
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
    const spec = `file:../${path.basename(tarball)}`;
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, dependencies: { clipkit: spec } }));
    const pinned = appLockfile({ name: 'app', version: '1.0.0' }, tarball, spec);
    fs.writeFileSync(path.join(app, 'package-lock.json'), JSON.stringify(pinned, null, 2));
    const log = path.join(tmp, 'tripwire.log');
    const bin = tripwires(tmp, log);
    const env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}`, CC: path.join(bin, 'cc'), CXX: path.join(bin, 'c++') };
    const install = run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: app, env });
    assert.is(install.status, 0, `npm ci failed:\n${install.out.slice(-3000)}`);
    const touched = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    assert.is(touched, '', `a compiler or build tool ran during install:\n${touched}`);
    // Every package at the version this repository pins (optional ones for other platforms are absent).
    for (const [at, entry] of Object.entries(pinned.packages)) {
      const manifest = path.join(app, at, 'package.json');
      if (!at || (entry.optional && !fs.existsSync(manifest))) continue;
      assert.is(JSON.parse(fs.readFileSync(manifest, 'utf8')).version, entry.version, `${at} is the pinned version`);
    }
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
