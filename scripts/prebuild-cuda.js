#!/usr/bin/env node
// After prebuildify: the CUDA library (kernels/, built when nvcc was found) goes next to the CPU
// prebuild, where the addon looks for it (beside itself). A build without it stays CPU-only.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
const lib = path.join(root, 'build', 'Release', 'libclipkit_cuda.so');
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
if (!fs.existsSync(lib)) {
  console.log('clipkit: no CUDA library was built (no nvcc); the prebuild is CPU-only');
  process.exit(0);
}
fs.mkdirSync(dir, { recursive: true });
fs.copyFileSync(lib, path.join(dir, 'libclipkit_cuda.so'));
console.log(`clipkit: prebuilds/${process.platform}-${process.arch}/libclipkit_cuda.so written beside the addon`);
