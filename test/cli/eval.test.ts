/**
 * `clipkit eval retrieval` and `clipkit eval zeroshot` end to end on the tiny Chinese-CLIP model:
 * the reported numbers equal the metrics recomputed here from the model's own embeddings
 * (encodeImage / encodeText / labelEmbeddings, cosines in float64, Chinese-CLIP's ranking
 * transcribed in test/ref/retrieval.ts), for each retrieval format; and bad inputs end with a
 * clear message and a non-zero exit.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipModel, loadModel } from '../../src/models';
import { chineseClipRecall, pythonTopK } from '../ref/retrieval';
import { cli, IMAGES, modelFolder } from './fixture_model';
import { tempDir } from '../helpers';

const Eval = suite('clipkit eval');
const MODEL = modelFolder('chinese_clip_tiny');
let model: ClipModel;

Eval.before(async () => {
  model = await loadModel(MODEL);
});

const FILES = ['000000005082.jpg', '000000024283.jpg', 'pokemon.jpeg', 'tiny.png', 'gray_l.png', 'palette_p.png', 'alpha_rgba.png', 'exif_orientation.jpg', 'extreme_aspect.png'];
const bytes = (f: string) => readFileSync(join(IMAGES, f));

/** Chinese-CLIP's eval-time text preprocessing (cn_clip/eval/data.py _preprocess_text). */
const preprocessText = (t: string) => t.toLowerCase().replace(/“/g, '"').replace(/”/g, '"');

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, j) => s + v * b[j], 0);

/**
 * 12 images (ids as Chinese-CLIP's TSV has them) and 9 texts. Images 10 and 9 share their bytes, so
 * every text scores them equally, and so do 100 and 23. The tiny model puts that image first for
 * every text, so the tie decides whether the first text (whose image is 9, not 10) is correct at 1:
 * with Chinese-CLIP's key order "10" ranks before "9", and it is not.
 */
const IMAGE_IDS: [number, string][] = [
  [9, FILES[0]], [10, FILES[0]], [101, FILES[1]], [23, FILES[2]], [100, FILES[2]], [5, FILES[3]],
  [44, FILES[4]], [60, FILES[5]], [12, FILES[6]], [71, FILES[7]], [88, FILES[8]], [3, FILES[3]],
];
const TEXTS: { text: string; ids: number[] }[] = [
  { text: '一只猫', ids: [9] },
  { text: '一只“小猫”在睡觉', ids: [101] },
  { text: 'A Red CAR', ids: [101] },
  { text: '皮卡丘', ids: [23, 100] },
  { text: '灰色的图片', ids: [44] },
  { text: '调色板', ids: [60] },
  { text: '透明背景', ids: [12, 3] },
  { text: '旋转的照片', ids: [71] },
  { text: '很长的图片', ids: [88] },
];

function freshDir(): string {
  return tempDir('clipkit-eval-cli-');
}

function writeLines(path: string, lines: string[]): string {
  writeFileSync(path, lines.map((l) => l + '\n').join(''));
  return path;
}

function chineseClipFiles(dir: string): string {
  writeLines(join(dir, 'test_imgs.tsv'), IMAGE_IDS.map(([id, f]) => `${id}\t${bytes(f).toString('base64')}`));
  return writeLines(join(dir, 'test_texts.jsonl'), TEXTS.map((t, i) => JSON.stringify({ text_id: 1000 + i, text: t.text, image_ids: t.ids })));
}

/** Recall recomputed from the model's embeddings, images in `order` (indices into IMAGE_IDS). */
async function expectedRecall(order: number[], textImages: number[][]) {
  const images = await model.encodeImage(order.map((i) => bytes(IMAGE_IDS[i][1])));
  const texts = await model.encodeText(TEXTS.map((t) => preprocessText(t.text)));
  const S = images.flatMap((img) => texts.map((t) => dot(img, t)));
  return chineseClipRecall(S, images.length, textImages);
}

function runJson(args: string[]): Record<string, any>[] {
  const r = cli(['eval', ...args, '--model', MODEL, '--json']);
  assert.is(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

function assertRecall(got: Record<string, any>, want: { t2i: number[]; i2t: number[] }, what: string) {
  const close = (g: number, w: number, name: string) => assert.ok(Math.abs(g - w) < 1e-9, `${what} ${name}: got ${g}, want ${w}`);
  ['r1', 'r5', 'r10'].forEach((k, j) => {
    close(got.text_to_image[k], want.t2i[j], `text→image ${k}`);
    close(got.image_to_text[k], want.i2t[j], `image→text ${k}`);
  });
  close(got.mean_recall, [...want.t2i, ...want.i2t].reduce((s, v) => s + v, 0) / 6, 'mean recall');
}

Eval('retrieval on Chinese-CLIP files: recalls equal the recomputation (LMDB key order, preprocessed texts)', async () => {
  const file = chineseClipFiles(freshDir());
  const [got] = runJson(['retrieval', '--data', file]);
  assert.equal([got.format, got.images, got.texts], ['cn-clip', 12, 9]);
  assert.is(got.image_to_text.queries, 10); // images 5 and 10 have no caption: candidates only
  // Candidate order: the ids compared as strings, "10" < "100" < "101" < "12" < "23" < "3" < … < "9".
  const order = IMAGE_IDS.map((_, i) => i).sort((a, b) => (String(IMAGE_IDS[a][0]) < String(IMAGE_IDS[b][0]) ? -1 : 1));
  const position = new Map(order.map((i, p) => [IMAGE_IDS[i][0], p]));
  assertRecall(got, await expectedRecall(order, TEXTS.map((t) => t.ids.map((id) => position.get(id)!))), 'cn-clip');
});

Eval('retrieval on EasyNLP TSV and JSON lines: recalls equal the recomputation (images in first-appearance order)', async () => {
  const dir = freshDir();
  // One line per (text, image) pair; a text with two images becomes two texts.
  const pairs = TEXTS.flatMap((t) => t.ids.map((id) => ({ text: t.text, file: IMAGE_IDS.find(([i]) => i === id)![1] })));
  const tsv = writeLines(join(dir, 'pairs.tsv'), pairs.map((p) => `${p.text}\t${bytes(p.file).toString('base64')}`));
  const [easy] = runJson(['retrieval', '--data', tsv]);
  const files = [...new Set(pairs.map((p) => p.file))];
  assert.equal([easy.format, easy.images, easy.texts], ['easynlp', files.length, pairs.length]);
  const images = await model.encodeImage(files.map(bytes));
  const texts = await model.encodeText(pairs.map((p) => preprocessText(p.text)));
  const want = chineseClipRecall(images.flatMap((img) => texts.map((t) => dot(img, t))), files.length, pairs.map((p) => [files.indexOf(p.file)]));
  assertRecall(easy, want, 'easynlp');

  // The same pairs as JSON lines of image files with their captions, in the same image order.
  for (const f of files) copyFileSync(join(IMAGES, f), join(dir, f));
  const lines = files.map((f) => JSON.stringify({ image: f, captions: pairs.filter((p) => p.file === f).map((p) => p.text) }));
  const [json] = runJson(['retrieval', '--data', writeLines(join(dir, 'captions.jsonl'), lines)]);
  assert.equal([json.format, json.images, json.texts], ['jsonl', files.length, pairs.length]);
  const captions = files.flatMap((f) => pairs.filter((p) => p.file === f));
  const textsJ = await model.encodeText(captions.map((p) => preprocessText(p.text)));
  const wantJ = chineseClipRecall(images.flatMap((img) => textsJ.map((t) => dot(img, t))), files.length, captions.map((p) => [files.indexOf(p.file)]));
  assertRecall(json, wantJ, 'jsonl');
});

Eval('retrieval prints a table by default', () => {
  const r = cli(['eval', 'retrieval', '--data', chineseClipFiles(freshDir()), '--model', MODEL]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^direction\s+queries\s+R@1\s+R@5\s+R@10\s+mean$/m);
  assert.match(r.stdout, /^text→image\s+9\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$/m);
  assert.match(r.stdout, /^image→text\s+10\s+/m);
  assert.match(r.stdout, /^mean recall [\d.]+ {2}\(12 images, 9 texts, cn-clip format\)$/m);
});

Eval('zeroshot: top-1/top-5 overall and per class equal a hand computation from labelEmbeddings', async () => {
  const dir = freshDir();
  // 6 classes (so top-5 is not trivially everything), 9 images; folder order: bird car cat dog fish 花.
  const classes: [string, string, string[]][] = [
    ['cat', '猫', [FILES[0], FILES[1]]], ['dog', '“狗”', [FILES[2]]], ['car', 'Car', [FILES[3]]],
    ['bird', '鸟', [FILES[4], FILES[5]]], ['fish', '鱼', [FILES[6]]], ['花', '花朵', [FILES[7], FILES[8]]],
  ];
  for (const [folder, , files] of classes) {
    mkdirSync(join(dir, 'data', folder), { recursive: true });
    files.forEach((f, i) => copyFileSync(join(IMAGES, f), join(dir, 'data', folder, `${i}_${f}`)));
  }
  const labels = join(dir, 'labels.json');
  writeFileSync(labels, JSON.stringify(Object.fromEntries(classes.map(([f, l]) => [f, l]))));
  const templates = writeLines(join(dir, 'templates.txt'), ['一张{}的照片。', 'A “{}” Photo', '']);
  const sorted = [...classes].sort((a, b) => (a[0] < b[0] ? -1 : 1));

  for (const tpl of [undefined, templates]) {
    const rows = runJson(['zeroshot', '--data', join(dir, 'data'), '--labels', labels, '--per-class', ...(tpl ? ['--templates', tpl] : [])]);
    const classEmbeds = await model.labelEmbeddings(
      sorted.map(([, label]) => preprocessText(label)),
      { templates: tpl ? ['一张{}的照片。', 'a "{}" photo'] : 'zh' },
    );
    // ImageFolder's order: class by class, files by name (named 0_…, 1_…, so as listed).
    const ordered = sorted.flatMap(([, , files], c) => files.map((f) => ({ c, f })));
    const embeds = await model.encodeImage(ordered.map((i) => join(IMAGES, i.f)));
    const rank = embeds.map((e, i) => pythonTopK(classEmbeds.map((w) => dot(e, w)), 6).indexOf(ordered[i].c));
    const acc = (idx: number[], k: number) => (idx.filter((i) => rank[i] < k).length / idx.length) * 100;
    const all = ordered.map((_, i) => i);
    assert.is(rows.length, 7);
    sorted.forEach(([folder, label], c) => {
      const mine = all.filter((i) => ordered[i].c === c);
      assert.equal(rows[c], { class: folder, label, images: mine.length, top1: acc(mine, 1), top5: acc(mine, 5) }, `class ${folder}`);
    });
    assert.equal(rows[6], { images: 9, classes: 6, top1: acc(all, 1), top5: acc(all, 5) });
  }
});

Eval('bad inputs: a clear message and a non-zero exit', () => {
  const dir = freshDir();
  const fails = (args: string[], message: RegExp) => {
    const r = cli(['eval', ...args, '--model', MODEL]);
    assert.is.not(r.status, 0, `${args.join(' ')} should fail`);
    assert.match(r.stderr, message);
  };
  fails(['retrieval', '--data', join(dir, 'missing_texts.jsonl')], /clipkit: Expected a data file at .*missing_texts\.jsonl but it does not exist/);
  const ok = `1\t${bytes(FILES[0]).toString('base64')}`;
  const text = JSON.stringify({ text_id: 1, text: '猫', image_ids: [1] });
  writeLines(join(dir, 'a_imgs.tsv'), [ok, '2\tnot base64!']);
  fails(['retrieval', '--data', writeLines(join(dir, 'a_texts.jsonl'), [text])], /a_imgs\.tsv line 2: Expected a base64 image but found " " at character 4/);
  writeLines(join(dir, 'b_imgs.tsv'), [ok]);
  fails(['retrieval', '--data', writeLines(join(dir, 'b_texts.jsonl'), [text, JSON.stringify({ text_id: 2, text: '狗', image_ids: [2] })])], /b_texts\.jsonl line 2: text_id 2 refers to image id 2, which .*b_imgs\.tsv does not contain/);
  // Valid base64 of bytes that are no image: found when the image is decoded, named by its line.
  writeLines(join(dir, 'c_imgs.tsv'), [ok, `2\t${Buffer.from('no image here').toString('base64')}`]);
  fails(['retrieval', '--data', writeLines(join(dir, 'c_texts.jsonl'), [text])], /c_imgs\.tsv line 2: the image cannot be used: .*decode/i);
  fails(['zeroshot', '--data', join(dir, 'nope')], /clipkit: Expected a folder of class folders at .*nope but it does not exist/);
  fails(['retrieval'], /required option '--data <file>' not specified/);
});

Eval('--help describes each command', () => {
  for (const [cmd, flags] of [['retrieval', ['--data', '--format', '--images', '--images-dir', '--json', '--model']], ['zeroshot', ['--data', '--templates', '--labels', '--per-class', '--json']]] as const) {
    const r = cli(['eval', cmd, '--help']);
    assert.is(r.status, 0, r.stderr);
    for (const f of flags) assert.match(r.stdout, new RegExp(`${f}\\b`));
  }
});

Eval.run();
