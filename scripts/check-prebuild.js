#!/usr/bin/env node
// `npm pack` / `npm publish` hook: the tarball must carry a prebuilt addon for this platform.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const dir = path.join(__dirname, '..', 'prebuilds', `${process.platform}-${process.arch}`);
const nodes = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
if (!nodes.length) {
  console.error(`clipkit: no prebuilt addon in prebuilds/${process.platform}-${process.arch}/; run \`npm run prebuild\` first`);
  process.exit(1);
}
