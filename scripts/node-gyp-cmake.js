#!/usr/bin/env node
// Stands in for node-gyp when prebuildify builds: prebuildify calls `node-gyp rebuild --release ...`;
// this runs the same build with cmake-js (N-API, so no Node headers are downloaded).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const root = path.join(__dirname, '..');
const debug = process.argv.includes('--debug');
const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
const args = [cmakeJs, 'rebuild', '--log-level', 'warn'];
if (debug) args.push('--debug');
// CLIPKIT_CUDA=ON|OFF|AUTO reaches CMake (kernels/: the CUDA library); unset, CMake's default (AUTO).
if (process.env.CLIPKIT_CUDA) args.push(`--CDCLIPKIT_CUDA=${process.env.CLIPKIT_CUDA}`);
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
