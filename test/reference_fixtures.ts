/**
 * Paths of the fixtures: the reference set (official code's outputs, outside this repository; see
 * test/reference_dir.js for where it is looked for) and the cases this repository generates itself
 * (test/fixtures/: crafted checkpoints from make_torch_cases.py, extra ftfy cases).
 */
import { join } from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { referenceDir } = require('./reference_dir') as { referenceDir(): { dir: string; ok: boolean; why: string } };

const found = referenceDir();
if (!found.ok) throw new Error(found.why);

/** A path inside the reference fixture set. */
export const refPath = (...parts: string[]) => join(found.dir, ...parts);
/** The tiny models' folders (weights, config, tokenizer and preprocessor files) and their `.reference.*` files. */
export const REF_MODELS = refPath('models');
/** Tokenizer cases and the families' vocabularies (vocab.txt, bpe_simple_vocab_16e6.txt.gz). */
export const REF_TOKENIZER = refPath('tokenizer');
export const REF_IMAGES = refPath('images');
/** Original-layout checkpoints of the tiny models (a Chinese-CLIP training checkpoint, OpenAI's .pt, pytorch_model.bin). */
export const REF_CHECKPOINTS = refPath('checkpoints');
/** What this repository generates itself. */
export const OWN_FIXTURES = join(__dirname, 'fixtures');
