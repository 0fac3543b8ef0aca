/**
 * `clipkit embed` and `clipkit classify` on the tiny Chinese-CLIP model: output formats, resuming
 * after SIGKILL at several points and after SIGINT (every item exactly once, values unchanged),
 * unreadable images reported and skipped, and classify's scores against a hand computation.
 */
import { copyFileSync, readFileSync, writeFileSync, appendFileSync, existsSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readSafetensors } from '../../src/io/safetensors';
import { ClipModel, loadModel, ZH_TEMPLATES } from '../../src/models';
import { cli, cliAsync, IMAGES, modelFolder } from './fixture_model';
import { tempDir } from '../helpers';

interface Ctx {
  model: string;
  m: ClipModel;
  images: string;
  want: Map<string, Float32Array>;
}
const test = suite<Ctx>('clipkit embed / classify');

const FIXTURE_IMAGES = readdirSync(IMAGES).filter((f) => /\.(jpe?g|png)$/.test(f));
const COPIES = 5; // 9 images × 5 = 45 items, 23 batches of 2
/** File names outside ASCII (several UTF-8 bytes a character), as real photo folders have them. */
const copyName = (c: number, f: string) => `${c}-照片 été-${f}`;

test.before(async (ctx) => {
  ctx.model = modelFolder('chinese_clip_tiny');
  ctx.m = await loadModel(ctx.model);
  ctx.images = tempDir('clipkit-embed-imgs-');
  for (let c = 0; c < COPIES; c++) for (const f of FIXTURE_IMAGES) copyFileSync(join(IMAGES, f), join(ctx.images, copyName(c, f)));
  const paths = readdirSync(ctx.images).sort().map((f) => join(ctx.images, f));
  const embeds = await ctx.m.encodeImage(paths);
  ctx.want = new Map(paths.map((p, i) => [p, embeds[i]]));
});

/** The journal's items by path: [path, embedding] in file order. */
function readJsonl(file: string): { header: Record<string, unknown>; items: { path: string; embedding: number[] }[] } {
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l);
  return { header: JSON.parse(lines[0]), items: lines.slice(1).map((l) => JSON.parse(l)) };
}

function expectExactlyOnce(file: string, want: Map<string, Float32Array>): void {
  const { items } = readJsonl(file);
  const seen = new Map<string, number>();
  for (const it of items) seen.set(it.path, (seen.get(it.path) ?? 0) + 1);
  assert.is(items.length, want.size, `items ${items.length} != ${want.size}`);
  for (const [p, e] of want) {
    assert.is(seen.get(p), 1, `${p} appears ${seen.get(p) ?? 0} times`);
    const got = Float32Array.from(items.find((i) => i.path === p)!.embedding);
    assert.equal(got, e, `${p}: the stored float32 values equal encodeImage's bit for bit`);
  }
}

/** Starts embed, waits until the journal holds at least `lines` lines, then sends `signal`. */
async function runUntil(args: string[], out: string, lines: number, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
  const child = cliAsync(args);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (;;) {
    const n = existsSync(out) ? readFileSync(out, 'utf8').split('\n').length - 1 : 0;
    if (n >= lines) break;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill(signal);
  return { code: await exited, stderr };
}

test('SIGKILL at several points, then resume: every image exactly once, values unchanged', async ({ model, images, want }) => {
  const out = join(tempDir('clipkit-embed-'), 'e.jsonl');
  const args = ['embed', images, '-o', out, '-m', model, '--batch-size', '2'];
  for (const lines of [1, 6, 15, 30]) {
    await runUntil(args, out, lines, 'SIGKILL');
    assert.ok(existsSync(out));
  }
  // A line cut short by a kill (simulated: the last batch half written, ending inside a character) is dropped on resume.
  const cut = Buffer.from('{"path":"' + join(images, copyName(0, 'pokemon.jpeg')));
  appendFileSync(out, cut.subarray(0, cut.indexOf(Buffer.from('照')) + 1));
  const r = cli([...args, '--json']);
  assert.is(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.is(summary.complete, true);
  assert.is(summary.embedded + summary.already_done, want.size);
  assert.ok(summary.already_done > 0, 'some items came from the killed runs');
  expectExactlyOnce(out, want);
  // Run again: nothing to do, and nothing lost (the last line was once cut by a character count).
  for (let i = 0; i < 2; i++) {
    const again = JSON.parse(cli([...args, '--json']).stdout.trim());
    assert.equal([again.embedded, again.already_done], [0, want.size]);
    expectExactlyOnce(out, want);
  }
});

/** Chinese lines of different lengths: every character three bytes in UTF-8. */
const TEXTS = Array.from({ length: 240 }, (_, i) => `第${i}行：${'一只橘色的猫趴在窗台上晒太阳，'.slice(0, 3 + (i % 13))}${i % 7 === 0 ? ' été 🐱' : ''}`);

test('texts outside ASCII: SIGKILL at several points, then resume: every line exactly once, values unchanged', async ({ model, m }) => {
  const dir = tempDir('clipkit-embed-zh-');
  const file = join(dir, '文本.txt'), out = join(dir, '向量.jsonl');
  writeFileSync(file, TEXTS.join('\n') + '\n');
  const args = ['embed', '--texts', file, '-o', out, '-m', model, '--batch-size', '4'];
  for (const lines of [1, 9, 40, 130]) await runUntil(args, out, lines, 'SIGKILL');
  const r = cli([...args, '--json']);
  assert.is(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.is(summary.complete, true);
  assert.ok(summary.already_done > 0, 'some lines came from the killed runs');
  const want = await m.encodeText(TEXTS);
  for (let run = 0; run < 2; run++) {
    const lines = readFileSync(out, 'utf8').split('\n');
    assert.is(lines.pop(), '', 'the journal ends on a whole line');
    const items = lines.slice(1).map((l) => JSON.parse(l) as { index: number; text: string; embedding: number[] });
    assert.is(items.length, TEXTS.length, `${items.length} rows for ${TEXTS.length} texts`);
    assert.equal(items.map((it) => it.index).sort((a, b) => a - b), TEXTS.map((_, i) => i), 'every line exactly once');
    for (const it of items) {
      assert.is(it.text, TEXTS[it.index]);
      assert.equal(Float32Array.from(it.embedding), want[it.index], `line ${it.index}: equal to encodeText bit for bit`);
    }
    const again = cli([...args, '--json']);
    assert.is(again.status, 0, again.stderr);
    assert.equal(JSON.parse(again.stdout.trim()).already_done, TEXTS.length);
  }
});

test('a second embed on the same output is refused while the first runs; the first finishes whole', async ({ model, images, want }) => {
  for (const name of ['输出.jsonl', '输出.safetensors']) {
    const dir = tempDir('clipkit-embed-busy-');
    const out = join(dir, name), journal = name.endsWith('.jsonl') ? out : `${out}.partial.jsonl`;
    const args = ['embed', images, '-o', out, '-m', model, '--batch-size', '2', '--json'];
    const first = cliAsync(args);
    let stderr = '';
    first.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => first.on('exit', (code) => resolve(code)));
    while (!(existsSync(journal) && readFileSync(journal, 'utf8').split('\n').length > 2) && first.exitCode === null) await new Promise((r) => setTimeout(r, 10));
    first.kill('SIGSTOP'); // mid-run, holding the output, however fast this machine embeds
    const second = cli(args);
    first.kill('SIGCONT');
    assert.is(second.status, 1, second.stderr);
    assert.match(second.stderr, `${journal} is being written by another clipkit embed`);
    assert.is(await exited, 0, stderr);
    if (name.endsWith('.jsonl')) expectExactlyOnce(out, want);
    else {
      const st = readSafetensors(out);
      assert.equal(st.tensors.get('embeddings')!.shape, [want.size, 64]);
      assert.not.ok(existsSync(journal));
    }
    // Once the first has ended, the same command runs (and finds everything done).
    const after = cli(args);
    assert.is(after.status, 0, after.stderr);
  }
});

test('SIGINT stops after the current batch (exit 130) and the run resumes', async ({ model, images, want }) => {
  const out = join(tempDir('clipkit-embed-'), 'e.jsonl');
  const args = ['embed', images, '-o', out, '-m', model, '--batch-size', '2'];
  const { code, stderr } = await runUntil(args, out, 4, 'SIGINT');
  assert.is(code, 130, stderr);
  assert.match(stderr, /stopping after the current batch/);
  const text = readFileSync(out, 'utf8');
  assert.ok(text.endsWith('\n'), 'the journal ends on a whole line');
  const r = cli(args);
  assert.is(r.status, 0, r.stderr);
  expectExactlyOnce(out, want);
});

test('unreadable images are reported, skipped and tried again on the next run', async ({ model, images }) => {
  const dir = tempDir('clipkit-embed-bad-');
  copyFileSync(join(IMAGES, 'tiny.png'), join(dir, 'a.png'));
  writeFileSync(join(dir, 'broken.jpg'), 'not an image');
  writeFileSync(join(dir, 'cut.png'), readFileSync(join(IMAGES, 'tiny.png')).subarray(0, 40));
  const out = join(dir, 'e.jsonl');
  const r = cli(['embed', dir, '-o', out, '-m', model, '--json']);
  assert.is(r.status, 1);
  assert.match(r.stderr, /skipped .*broken\.jpg/);
  assert.match(r.stderr, /skipped .*cut\.png/);
  const s = JSON.parse(r.stdout.trim());
  assert.is(s.embedded, 1);
  assert.equal([...s.failed_paths].sort(), [join(dir, 'broken.jpg'), join(dir, 'cut.png')]);
  const r2 = JSON.parse(cli(['embed', dir, '-o', out, '-m', model, '--json']).stdout.trim());
  assert.equal([r2.embedded, r2.already_done, r2.failed], [0, 1, 2]);
  void images;
});

test('safetensors output with a names index; texts; another model refused', async ({ model, m }) => {
  const dir = tempDir('clipkit-embed-st-');
  const texts = ['一只猫', 'a photo of a dog', '', '宝可梦'];
  writeFileSync(join(dir, 'texts.txt'), texts.join('\n') + '\n');
  const out = join(dir, 'texts.safetensors');
  const r = cli(['embed', '--texts', join(dir, 'texts.txt'), '-o', out, '-m', model]);
  assert.is(r.status, 0, r.stderr);
  assert.ok(!existsSync(`${out}.partial.jsonl`), 'the journal is removed once the output is written');
  const st = readSafetensors(out);
  const e = st.tensors.get('embeddings')!;
  assert.equal(e.shape, [4, 64]);
  assert.is(st.metadata.kind, 'text');
  const names = JSON.parse(readFileSync(join(dir, 'texts.names.json'), 'utf8'));
  assert.equal(names, texts.map((text, index) => ({ index, text })));
  const want = await m.encodeText(texts);
  for (let i = 0; i < 4; i++) assert.equal(e.data().subarray(i * 64, (i + 1) * 64), want[i]);

  const other = modelFolder('openai_clip_tiny');
  const jsonl = join(dir, 'texts.jsonl');
  assert.is(cli(['embed', '--texts', join(dir, 'texts.txt'), '-o', jsonl, '-m', model]).status, 0);
  const bad = cli(['embed', '--texts', join(dir, 'texts.txt'), '-o', jsonl, '-m', other]);
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /holds text embeddings of .*chinese_clip_tiny.*choose another --out/);
  assert.ok(statSync(jsonl).size > 0);
});

test('embed: bad arguments are refused with a message', ({ model }) => {
  const none = cli(['embed', '-o', join(tmpdir(), 'x.jsonl'), '-m', model]);
  assert.is(none.status, 1);
  assert.match(none.stderr, /either image paths or --texts/);
  const missing = cli(['embed', join(tmpdir(), 'no-such-folder-xyz'), '-o', join(tmpdir(), 'x.jsonl'), '-m', model]);
  assert.is(missing.status, 1);
  assert.match(missing.stderr, /No such file or folder/);
  const texts = join(tempDir('clipkit-embed-dev-'), 't.txt');
  writeFileSync(texts, '猫\n');
  const device = cli(['embed', '--texts', texts, '-o', '/dev/null', '-m', model]);
  assert.is(device.status, 1);
  assert.match(device.stderr, /Cannot write embeddings to \/dev\/null: it is not a regular file/);
});

test('classify --json: softmax scores summing to 1, equal to the template-ensemble hand computation', async ({ model, m }) => {
  const labels = ['猫', '狗', '宝可梦'];
  const img = join(IMAGES, 'pokemon.jpeg');
  const r = cli(['classify', img, join(IMAGES, 'tiny.png'), '--labels', labels.join(','), '-m', model, '--json']);
  assert.is(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.is(rows.length, 2);
  assert.is(rows[0].image, img);
  const sum = rows[0].labels.reduce((s: number, l: { score: number }) => s + l.score, 0);
  assert.ok(Math.abs(sum - 1) < 1e-9, `sum ${sum}`);

  // By hand: mean of the unit template embeddings per label, renormalised; softmax of scale·cos.
  const [image] = await m.encodeImage(img);
  const logits = await Promise.all(labels.map(async (label) => {
    const e = await m.encodeText(ZH_TEMPLATES.map((t) => t.replace('{}', label)));
    const mean = new Float64Array(64);
    for (const row of e) for (let j = 0; j < 64; j++) mean[j] += row[j];
    const norm = Math.hypot(...mean);
    let cos = 0;
    for (let j = 0; j < 64; j++) cos += (mean[j] / norm) * image[j];
    return Math.exp(m.config.logitScale) * cos;
  }));
  const max = Math.max(...logits), exps = logits.map((l) => Math.exp(l - max)), total = exps.reduce((a, b) => a + b);
  for (const { label, score } of rows[0].labels)
    assert.ok(Math.abs(score - exps[labels.indexOf(label)] / total) < 1e-5, `${label}: ${score} vs ${exps[labels.indexOf(label)] / total}`);
  assert.ok(rows[0].labels[0].score >= rows[0].labels[1].score, 'best first');

  const table = cli(['classify', img, '--labels', labels.join(','), '-m', model, '--top', '2']);
  assert.is(table.status, 0, table.stderr);
  assert.match(table.stdout, /label\s+score/);
  assert.is(table.stdout.trim().split('\n').length, 4, table.stdout); // path, header, two labels

  const templates = join(tempDir('clipkit-tpl-'), 't.txt');
  writeFileSync(templates, '一张{}的照片\n');
  const one = cli(['classify', img, '--labels', labels.join(','), '-m', model, '--templates', templates, '--json']);
  assert.is(one.status, 0, one.stderr);
  writeFileSync(templates, 'no placeholder\n');
  const bad = cli(['classify', img, '--labels', labels.join(','), '-m', model, '--templates', templates]);
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /contain \{\}/);
});

test.run();
