// Where the reference fixtures are: the tiny models with their float64 reference outputs, the
// tokenizer cases, the image preprocessing references and the original-layout checkpoints, every
// one made by the official Python code (see the READMEs in that folder). They are not copied into
// this repository: one copy serves every checkout, and they sit in `shared/fixtures` beside the
// clone (CLIPKIT_FIXTURES names another folder, e.g. a second set of the same kind). What this
// repository generates itself stays in test/fixtures/.
// Plain CommonJS so that test/run.js can check for the folder before any suite starts.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');

/** { dir, ok, why }: dir is where the fixtures are looked for; ok when it holds them. */
function referenceDir() {
  const dir = process.env.CLIPKIT_FIXTURES ? path.resolve(process.env.CLIPKIT_FIXTURES) : path.join(root, '..', 'shared', 'fixtures');
  const from = process.env.CLIPKIT_FIXTURES ? `CLIPKIT_FIXTURES=${process.env.CLIPKIT_FIXTURES}` : 'the default, shared/fixtures beside the repository';
  // The three folders every suite that reads them relies on; a partial copy is refused here, not
  // later as a missing file in the middle of a suite.
  const missing = ['models', 'tokenizer', 'images'].filter((d) => !fs.existsSync(path.join(dir, d)));
  if (!missing.length) return { dir, ok: true, why: '' };
  const why = fs.existsSync(dir)
    ? `${dir} (${from}) has no ${missing.join('/, no ')}/ folder`
    : `${dir} (${from}) does not exist`;
  return { dir, ok: false, why: `The reference fixtures were not found: ${why}. Put the fixture set there or point CLIPKIT_FIXTURES at it.` };
}

module.exports = { referenceDir };
