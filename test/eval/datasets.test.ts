/**
 * The evaluation-set readers on tiny files written to a temp folder from the fixture images:
 * Chinese-CLIP's texts JSONL + image TSV (LMDB key order, URL-safe base64), EasyNLP's TSV (identical
 * base64 = one image), JSON lines with captions (relative paths, distractors, merged duplicates),
 * format detection, ImageFolder class folders with labels files, and a clear error naming the file
 * and line for each kind of bad input.
 */
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { detectRetrievalFormat, readImageFolder, readRetrievalDataset } from '../../src/eval/datasets';
import { rejectsCode, throwsCode, tempDir } from '../helpers';
import { REF_IMAGES } from '../reference_fixtures';

const IMAGES = REF_IMAGES;
const bytes = (name: string) => readFileSync(join(IMAGES, name));
const b64 = (name: string) => bytes(name).toString('base64');
const A = '000000005082.jpg', B = '000000024283.jpg', C = 'pokemon.jpeg', D = 'tiny.png';

function freshDir(): string {
  return tempDir('clipkit-eval-data-');
}

function write(dir: string, name: string, lines: string[]): string {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, lines.map((l) => l + '\n').join(''));
  return path;
}

const jsonl = (objs: object[]) => objs.map((o) => JSON.stringify(o));
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A Chinese-CLIP split: {split}_imgs.tsv and {split}_texts.jsonl in `dir`. */
function chineseClipSplit(dir: string, imgs: string[], texts: object[], split = 'valid'): string {
  write(dir, `${split}_imgs.tsv`, imgs);
  return write(dir, `${split}_texts.jsonl`, jsonl(texts));
}

const Retrieval = suite('retrieval datasets');

Retrieval("Chinese-CLIP: images in LMDB key order (ids as strings), texts in file order, URL-safe base64", async () => {
  const dir = freshDir();
  const urlSafe = b64(B).replace(/\+/g, '-').replace(/\//g, '_');
  assert.ok(urlSafe !== b64(B), 'the fixture base64 has + or / to translate');
  const file = chineseClipSplit(
    dir,
    [`9\t${b64(A)}`, '', `101\t${urlSafe}`, `10\t${b64(C)}`],
    [
      { text_id: 1, text: '猫', image_ids: [9] },
      { text_id: 2, text: '车', image_ids: [101, 10] },
    ],
  );
  const data = await readRetrievalDataset(file);
  assert.is(data.format, 'cn-clip');
  // Keys "10" < "101" < "9" byte by byte.
  assert.equal(data.images.map((i) => Buffer.from(i.source as Uint8Array)), [bytes(C), bytes(B), bytes(A)]);
  assert.equal(data.images.map((i) => i.where), [4, 3, 1].map((n) => `${join(dir, 'valid_imgs.tsv')} line ${n}`));
  assert.equal(data.texts.map((t) => [t.text, t.images]), [['猫', [2]], ['车', [1, 0]]]);
  // The same split with the image TSV named explicitly.
  const texts = write(dir, 'queries.jsonl', [readFileSync(file, 'utf8').trim()]);
  const explicit = await readRetrievalDataset(texts, { images: join(dir, 'valid_imgs.tsv') });
  assert.equal(explicit.texts.map((t) => t.images), data.texts.map((t) => t.images));
});

Retrieval('EasyNLP: one pair per line, lines with the same base64 are one image', async () => {
  const dir = freshDir();
  const file = write(dir, 'pairs.tsv', [`一只猫\t${b64(A)}`, `一辆车\t${b64(B)}`, `猫在睡觉\t${b64(A)}\r`]);
  assert.is(await detectRetrievalFormat(file), 'easynlp');
  const data = await readRetrievalDataset(file);
  assert.is(data.images.length, 2);
  assert.equal(Buffer.from(data.images[1].source as Uint8Array), bytes(B));
  assert.equal(data.texts.map((t) => [t.text, t.images]), [['一只猫', [0]], ['一辆车', [1]], ['猫在睡觉', [0]]]);
});

Retrieval('JSON lines: paths relative to the file (or imagesDir), distractors, the same file twice is one image', async () => {
  const dir = freshDir();
  copyFileSync(join(IMAGES, A), join(dir, 'a.jpg'));
  mkdirSync(join(dir, 'sub'));
  copyFileSync(join(IMAGES, B), join(dir, 'sub', 'b.jpg'));
  const file = write(dir, 'captions.jsonl', jsonl([
    { image: 'a.jpg', captions: ['a cat', 'a sleeping cat'] },
    { image: 'sub/b.jpg', captions: [] },
    { image: './a.jpg', captions: ['the cat again'] },
  ]));
  const data = await readRetrievalDataset(file);
  assert.is(data.format, 'jsonl');
  assert.equal(data.images.map((i) => i.source), [join(dir, 'a.jpg'), join(dir, 'sub', 'b.jpg')]);
  assert.equal(data.texts.map((t) => [t.text, t.images]), [['a cat', [0]], ['a sleeping cat', [0]], ['the cat again', [0]]]);
  const elsewhere = write(freshDir(), 'list.jsonl', jsonl([{ image: 'b.jpg', captions: ['a car'] }]));
  const moved = await readRetrievalDataset(elsewhere, { imagesDir: join(dir, 'sub') });
  assert.equal(moved.images.map((i) => i.source), [join(dir, 'sub', 'b.jpg')]);
});

Retrieval('bad inputs name the file and line', async () => {
  const dir = freshDir();
  const ok = `1\t${b64(A)}`;
  const tsv = join(dir, 'valid_imgs.tsv');
  await rejectsCode(() => readRetrievalDataset(join(dir, 'missing_texts.jsonl')), 'E_IO', /missing_texts\.jsonl but it does not exist/);
  // Broken base64: a character outside both alphabets, and a truncated field.
  let file = chineseClipSplit(dir, [ok, `2\t${b64(B).slice(0, 40)}!${b64(B).slice(41)}`], [{ text_id: 1, text: 'x', image_ids: [1] }]);
  await rejectsCode(() => readRetrievalDataset(file), 'E_FORMAT', new RegExp(`${escape(tsv)} line 2: Expected a base64 image but found "!" at character 41`));
  file = chineseClipSplit(dir, [ok, `2\t${b64(B).slice(0, 4 * 100 + 1)}`], [{ text_id: 1, text: 'x', image_ids: [1] }]);
  await rejectsCode(() => readRetrievalDataset(file), 'E_FORMAT', /line 2: Expected a base64 image but its length 401 is not a valid base64 length/);
  // A caption referring to an image id the TSV lacks.
  file = chineseClipSplit(dir, [ok], [{ text_id: 1, text: 'x', image_ids: [1] }, { text_id: 2, text: 'y', image_ids: [1, 7] }]);
  await rejectsCode(() => readRetrievalDataset(file), 'E_FORMAT', /valid_texts\.jsonl line 2: text_id 2 refers to image id 7, which .*valid_imgs\.tsv does not contain/);
  // Duplicate ids, missing ground truth, a bad line, a malformed TSV line.
  file = chineseClipSplit(dir, [ok, ok], [{ text_id: 1, text: 'x', image_ids: [1] }]);
  await rejectsCode(() => readRetrievalDataset(file), 'E_FORMAT', /line 2: image_id 1 is already given on .*line 1/);
  file = chineseClipSplit(dir, [ok], [{ text_id: 1, text: 'x', image_ids: [1] }, { text_id: 1, text: 'y', image_ids: [1] }]);
  await rejectsCode(() => readRetrievalDataset(file), 'E_FORMAT', /line 2: text_id 1 is already given on .*line 1/);
  file = chineseClipSplit(dir, [ok], [{ text_id: 1, text: 'x', image_ids: [] }]);
  await rejectsCode(() => readRetrievalDataset(file), 'E_FORMAT', /line 1: Expected image_ids to list the ground-truth image ids of text_id 1 but received \[\]/);
  file = write(dir, 'valid_texts.jsonl', [JSON.stringify({ text_id: 1, text: 'x', image_ids: [1] }), '{"text_id": 2, "text": ']);
  await rejectsCode(() => readRetrievalDataset(file), 'E_FORMAT', /line 2: Expected a JSON object but the line does not parse/);
  file = chineseClipSplit(dir, [`1 ${b64(A)}`], [{ text_id: 1, text: 'x', image_ids: [1] }]);
  await rejectsCode(() => readRetrievalDataset(file), 'E_FORMAT', /line 1: Expected image_id<TAB>base64 image but found 1 tab-separated fields/);
  // Where the image TSV cannot be found, and a TSV given as the data file.
  file = write(dir, 'queries.jsonl', jsonl([{ text_id: 1, text: 'x', image_ids: [1] }]));
  await rejectsCode(() => readRetrievalDataset(file), 'E_ARG', /named \{split\}_texts\.jsonl .* give the image TSV explicitly/);
  await rejectsCode(() => readRetrievalDataset(tsv), 'E_FORMAT', /looks like Chinese-CLIP's image TSV/);
  // EasyNLP and JSON lines.
  file = write(dir, 'pairs.tsv', [`a\t${b64(A)}`, `b\t${b64(B)}\textra`]);
  await rejectsCode(() => readRetrievalDataset(file), 'E_FORMAT', /pairs\.tsv line 2: Expected text<TAB>base64 image but found 3/);
  file = write(dir, 'captions.jsonl', jsonl([{ image: 'nope.jpg', captions: ['a'] }]));
  await rejectsCode(() => readRetrievalDataset(file), 'E_IO', /captions\.jsonl line 1: Expected an image file at nope\.jpg/);
  await rejectsCode(() => readRetrievalDataset(file, { images: tsv }), 'E_ARG', /image TSV \(--images\) only with Chinese-CLIP files but .* is in the jsonl format/);
  file = write(dir, 'unknown.jsonl', jsonl([{ caption: 'a' }]));
  await rejectsCode(() => readRetrievalDataset(file), 'E_FORMAT', /line 1: Expected a JSON object with text_id .* or image/);
});

Retrieval.run();

const Folder = suite('image folder');

Folder('classes sorted, images found recursively by extension, labels from a .json or a text file', async () => {
  const dir = freshDir();
  for (const [path, src] of [['dog/b.jpg', A], ['dog/a.PNG', D], ['cat/z/deep.jpeg', C], ['cat/x.jpg', B], ['cat/notes.txt', D], ['鸟/1.png', D]]) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    copyFileSync(join(IMAGES, src), join(dir, path));
  }
  writeFileSync(join(dir, 'stray.jpg'), bytes(A)); // not in a class folder: ignored
  const data = readImageFolder(dir);
  assert.equal(data.classes, [{ folder: 'cat', label: 'cat' }, { folder: 'dog', label: 'dog' }, { folder: '鸟', label: '鸟' }]);
  assert.equal(
    data.images.map((i) => [i.path.slice(dir.length + 1), i.target]),
    [['cat/x.jpg', 0], ['cat/z/deep.jpeg', 0], ['dog/a.PNG', 1], ['dog/b.jpg', 1], ['鸟/1.png', 2]],
  );
  const labelsDir = freshDir();
  const json = join(labelsDir, 'labels.json');
  writeFileSync(json, JSON.stringify({ dog: '狗', cat: '猫', 鸟: '小鸟' }));
  assert.equal(readImageFolder(dir, { labels: json }).classes.map((c) => c.label), ['猫', '狗', '小鸟']);
  const txt = write(labelsDir, 'labels.txt', ['猫 ', '狗', '小鸟']);
  assert.equal(readImageFolder(dir, { labels: txt }).classes.map((c) => c.label), ['猫', '狗', '小鸟']);

  writeFileSync(json, JSON.stringify({ dog: '狗', cat: '猫' }));
  throwsCode(() => readImageFolder(dir, { labels: json }), 'E_FORMAT', /labels\.json: Expected a label string for class folder "鸟" but received undefined/);
  writeFileSync(json, JSON.stringify({ dog: '狗', cat: '猫', 鸟: '鸟', fish: '鱼' }));
  throwsCode(() => readImageFolder(dir, { labels: json }), 'E_FORMAT', /\["fish"\] name no folder/);
  write(labelsDir, 'labels.txt', ['猫', '狗']);
  throwsCode(() => readImageFolder(dir, { labels: txt }), 'E_FORMAT', /one label per line for the 3 class folders .* but found 2 lines/);
  mkdirSync(join(dir, 'empty'));
  throwsCode(() => readImageFolder(dir), 'E_FORMAT', /in class folder .*empty but found none/);
  throwsCode(() => readImageFolder(join(dir, 'nope')), 'E_IO', /nope but it does not exist/);
});

Folder.run();
