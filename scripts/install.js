#!/usr/bin/env node
// `npm install` hook: use the prebuilt binary in prebuilds/ when one loads on this machine;
// otherwise build the addon from source with cmake-js (incremental in a clone).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');

function prebuildLoads() {
  // In a child process, so a binary that fails to load cannot take this script down with it.
  const probe = spawnSync(process.execPath, ['-e', `require('node-gyp-build')(${JSON.stringify(root)})`], {
    env: { ...process.env, PREBUILDS_ONLY: '1' },
    stdio: 'ignore',
  });
  return probe.status === 0;
}

if (process.env.CLIPKIT_BUILD_FROM_SOURCE !== '1' && prebuildLoads()) {
  console.log('clipkit: using the prebuilt native addon');
  process.exit(0);
}
console.log('clipkit: no prebuilt addon for this platform; building from source with cmake-js');
const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
// CLIPKIT_CUDA=ON|OFF|AUTO: whether the CUDA library is built too (AUTO, the default: when nvcc is found).
const cuda = process.env.CLIPKIT_CUDA ? [`--CDCLIPKIT_CUDA=${process.env.CLIPKIT_CUDA}`] : [];
const build = spawnSync(process.execPath, [cmakeJs, 'compile', '--log-level', 'warn', ...cuda], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  console.error(
    'clipkit: the source build failed. It needs cmake >= 3.15 and a C++17 compiler ' +
      '(Debian/Ubuntu: apt-get install cmake g++).',
  );
  process.exit(build.status || 1);
}
