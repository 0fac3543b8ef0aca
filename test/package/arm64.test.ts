/**
 * The kernels build for arm64 (NEON pass) as well: every csrc/*.cpp is compiled with the aarch64
 * cross compiler (.ci/run installs Debian's g++-aarch64-linux-gnu). Without it the test is skipped
 * and says so.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { hasProgram } from '../helpers';

const Arm64 = suite('arm64 build');
const root = path.join(__dirname, '..', '..');
const cxx = 'aarch64-linux-gnu-g++';

const withCxx = hasProgram(cxx, 'the arm64 build of the kernels (Debian: apt-get install g++-aarch64-linux-gnu)') ? Arm64 : Arm64.skip;
withCxx('every CPU kernel compiles for arm64 with its NEON pass', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'clipkit-arm64-'));
  try {
    const sources = fs.readdirSync(path.join(root, 'csrc')).filter((f) => f.endsWith('.cpp'));
    assert.ok(sources.length > 5);
    for (const src of sources) {
      const r = spawnSync(cxx, ['-std=gnu++17', '-O2', '-Wall', '-c', '-Icsrc', `csrc/${src}`, '-o', path.join(out, `${src}.o`)], {
        cwd: root,
        encoding: 'utf8',
      });
      assert.is(r.status, 0, `${src} does not build for arm64:\n${r.stderr.slice(0, 3000)}`);
    }
    // The NEON variants exist in the objects (the tables name pass_neon functions). The cross nm
    // comes with the cross compiler (binutils-aarch64-linux-gnu); where it alone is missing, say so.
    const nm = spawnSync('aarch64-linux-gnu-nm', ['-C', path.join(out, 'layer_norm.cpp.o')], { encoding: 'utf8' });
    if ((nm.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') console.log('  (not checked: the pass_neon symbols need aarch64-linux-gnu-nm, which is not installed)');
    else {
      assert.is(nm.status, 0, `aarch64-linux-gnu-nm failed:\n${nm.stderr}`);
      assert.match(nm.stdout, /pass_neon::layer_norm_rows/);
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

Arm64.run();
