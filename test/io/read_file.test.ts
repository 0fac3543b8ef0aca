/**
 * Paths that are not regular files, and files over the limits: every public call that reads a
 * path refuses /dev/zero, a FIFO and a folder at once with a clear error (once, /dev/zero as an
 * image read forever while memory grew, and a FIFO blocked in open()), and an image over maxBytes
 * is refused before it is read. JSON side files all go through readJson, which names the file in
 * every error.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage, loadModel, loadTokenizer, readClipConfig, readPreprocessConfig, readSafetensors, readSafetensorsIndex } from '../../src';
import { ClipkitError } from '../../src/errors';
import { readTorchCheckpoint } from '../../src/io/pytorch';
import { readJson } from '../../src/io/read_json';
import { readTextLines } from '../../src/cli/inputs';
import { modelDir } from '../models/reference';
import { REF_IMAGES } from '../reference_fixtures';
import { tempDir, throwsCode } from '../helpers';

const Files = suite('paths that are not regular files');
const dir = tempDir('clipkit-notfile-');
const fifo = join(dir, 'pipe');
const hasFifo = spawnSync('mkfifo', [fifo]).status === 0;
const folder = join(dir, 'a-folder.png');
mkdirSync(folder);

/** Settles within 10 s with a ClipkitError of `code` whose message matches, else fails (a hang is a failure, not a timeout of the suite). */
async function refused(what: string, call: () => unknown, code: string, match: RegExp): Promise<void> {
  const outcome = await Promise.race([
    (async () => {
      try {
        await call();
        return 'no error';
      } catch (err) {
        return err;
      }
    })(),
    new Promise((resolve) => setTimeout(() => resolve('did not settle in 10 s'), 10_000).unref()),
  ]);
  if (typeof outcome === 'string') assert.unreachable(`${what}: ${outcome}`);
  assert.instance(outcome, Error, `${what}: ${String(outcome)}`);
  assert.is((outcome as ClipkitError).code, code, `${what}: ${(outcome as Error).message}`);
  if (code !== 'E_ARG') assert.instance(outcome, ClipkitError, what);
  assert.match((outcome as Error).message, match, what);
}

const cases: [string, string, RegExp][] = [
  ['/dev/zero', '/dev/zero', /character device, not a regular file/],
  ['a folder', folder, /a folder, not a regular file/],
];
if (hasFifo) cases.push(['a FIFO', fifo, /FIFO \(named pipe\), not a regular file/]);

Files('decodeImage, encodeImage, configs, tokenizers, checkpoints and text files refuse them at once', async () => {
  const model = await loadModel(modelDir('chinese_clip_tiny'));
  for (const [name, p, why] of cases) {
    await refused(`decodeImage(${name})`, () => decodeImage(p), 'E_IO', why);
    await refused(`encodeImage(${name})`, () => model.encodeImage(p), 'E_IO', why);
    if (p !== folder) {
      // (a folder is where these look for config.json / preprocessor_config.json)
      await refused(`readClipConfig(${name})`, () => readClipConfig(p), 'E_IO', why);
      await refused(`readPreprocessConfig(${name})`, () => readPreprocessConfig(p), 'E_IO', why);
    }
    await refused(`readSafetensors(${name})`, () => readSafetensors(p), 'E_IO', why);
    await refused(`readTorchCheckpoint(${name})`, () => readTorchCheckpoint(p), 'E_IO', why);
    await refused(`readTextLines(${name})`, () => readTextLines(p), 'E_IO', why);
  }
  if (hasFifo) {
    const tok = join(dir, 'tok');
    mkdirSync(tok);
    spawnSync('mkfifo', [join(tok, 'vocab.txt')]);
    await refused('loadTokenizer with vocab.txt a FIFO', () => loadTokenizer(tok), 'E_IO', /vocab\.txt: it is a FIFO/);
  }
});

Files('an image over maxBytes is refused before it is read; at the limit it decodes', async () => {
  const file = join(REF_IMAGES, 'tiny.png');
  const bytes = (await import('node:fs')).readFileSync(file);
  await refused('file over maxBytes', () => decodeImage(file, { maxBytes: bytes.length - 1 }), 'E_LIMIT', new RegExp(`has ${bytes.length} bytes, over the limit of ${bytes.length - 1}`));
  await refused('bytes over maxBytes', () => decodeImage(bytes, { maxBytes: bytes.length - 1 }), 'E_LIMIT', /over the limit/);
  assert.is((await decodeImage(file, { maxBytes: bytes.length })).width, (await decodeImage(bytes)).width);
  await refused('maxBytes 0', () => decodeImage(file, { maxBytes: 0 }), 'E_ARG', /maxBytes/);
  const empty = join(dir, 'empty.png');
  writeFileSync(empty, '');
  await refused('an empty file', () => decodeImage(empty), 'E_FORMAT', /empty/);
});

Files.run();

const Json = suite('readJson: every JSON side file through one reader');

Json('an object is returned; bad JSON and a non-object are E_FORMAT naming the file', () => {
  const file = join(dir, 'side.json');
  writeFileSync(file, '{"a": [1, 2]}');
  assert.equal(readJson(file, 'config'), { a: [1, 2] });
  writeFileSync(file, '{"a": ');
  throwsCode(() => readJson(file, 'config'), 'E_FORMAT', /^Invalid config .*side\.json: not valid JSON \(/);
  for (const [text, kind] of [['[1, 2]', 'an array'], ['null', 'null'], ['7', 'number 7'], ['"x"', 'string "x"']]) {
    writeFileSync(file, text);
    throwsCode(() => readJson(file, 'tokenizer config'), 'E_FORMAT', new RegExp(`^Invalid tokenizer config .*side\\.json: expected a JSON object but found ${kind}$`));
  }
  throwsCode(() => readJson(folder, 'config'), 'E_IO', /Cannot read config .*a-folder\.png: it is a folder/);
});

Json('the tokenizer, config and index readers share its messages', () => {
  const tok = join(dir, 'tok-json');
  mkdirSync(tok);
  writeFileSync(join(tok, 'tokenizer_config.json'), '[]');
  throwsCode(() => loadTokenizer(tok), 'E_FORMAT', /Invalid tokenizer config .*tokenizer_config\.json: expected a JSON object but found an array/);
  writeFileSync(join(tok, 'preprocessor_config.json'), '{');
  throwsCode(() => readPreprocessConfig(tok), 'E_FORMAT', /Invalid preprocessor config .*preprocessor_config\.json: not valid JSON/);
  writeFileSync(join(tok, 'model.safetensors.index.json'), '"weights"');
  throwsCode(() => readSafetensorsIndex(tok), 'E_FORMAT', /Invalid safetensors index .*model\.safetensors\.index\.json: expected a JSON object but found string "weights"/);
});

Json.run();
