/**
 * Paths that are not regular files, and files over the limits: every public call that reads a
 * path refuses /dev/zero, a FIFO and a folder at once with a clear error (once, /dev/zero as an
 * image read forever while memory grew, and a FIFO blocked in open()), and an image over maxBytes
 * is refused before it is read.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage, loadModel, loadTokenizer, readClipConfig, readPreprocessConfig, readSafetensors } from '../../src';
import { ClipkitError } from '../../src/errors';
import { readTorchCheckpoint } from '../../src/io/pytorch';
import { readTextLines } from '../../src/cli/inputs';
import { modelDir } from '../models/reference';
import { REF_IMAGES } from '../reference_fixtures';
import { tempDir } from '../helpers';

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
