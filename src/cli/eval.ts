/**
 * `clipkit eval retrieval`: image–text Recall@1/5/10 in both directions and their mean, as
 * Chinese-CLIP's evaluation computes them (src/eval/retrieval.ts).
 * `clipkit eval zeroshot`: top-1/top-5 accuracy on a folder of class folders with a template
 * ensemble (src/eval/zeroshot.ts).
 *
 * Similarities are cosines of the unit embeddings in float32 (Chinese-CLIP ranks by the inner
 * product of its L2-normalised features); images stream through in chunks of a few batches, so
 * only the text (or class) embeddings and one chunk's scores are held. With a chinese_clip model,
 * every text goes through Chinese-CLIP's eval-time _preprocess_text first (see evalText).
 */
import { Command, Option } from 'commander';
import { ClipkitError } from '../errors';
import { readImageFolder, readRetrievalDataset, RETRIEVAL_FORMATS, RetrievalFormat } from '../eval/datasets';
import { Recall, RetrievalScorer } from '../eval/retrieval';
import { ZeroshotScorer } from '../eval/zeroshot';
import { ClipModel, ImageSource, TemplateSet } from '../models';
import { logits } from '../ops/logits';
import { Tensor } from '../tensor';
import { ModelOptions, openModel, progressBar, table, withModelOptions } from './common';
import { readTextLines } from './inputs';

/** Inputs per encode call: a few batches, so image decoding still overlaps the forward passes. */
const BATCHES_PER_CHUNK = 8;

export function registerEval(program: Command): void {
  const evaluate = program.command('eval').description('evaluate a model: image–text retrieval recall, zero-shot classification accuracy');

  withModelOptions(
    evaluate
      .command('retrieval')
      .description(
        'image–text retrieval Recall@1/5/10 (text→image, image→text) and their mean, computed as Chinese-CLIP\'s evaluation does; ' +
          'a text is correct at k when one of its images is in the top k, an image when one of its captions is; ' +
          'equal scores rank in candidate order (texts in file order; images in Chinese-CLIP\'s order for its files, else first appearance)',
      )
      .requiredOption('--data <file>', "Chinese-CLIP's {split}_texts.jsonl, an EasyNLP TSV (text<TAB>base64 image) or JSON lines {\"image\": path, \"captions\": [...]}")
      .addOption(new Option('--format <format>', 'the data format (default: detected from the file)').choices([...RETRIEVAL_FORMATS]))
      .option('--images <file>', "Chinese-CLIP's image TSV (image_id<TAB>base64) (default: {split}_imgs.tsv beside --data)")
      .option('--images-dir <dir>', 'the folder the JSON lines\' image paths are relative to (default: the folder of --data)'),
  ).action(async (o: ModelOptions & { data: string; format?: RetrievalFormat; images?: string; imagesDir?: string }) => {
    const data = await readRetrievalDataset(o.data, { format: o.format, images: o.images, imagesDir: o.imagesDir });
    const model = await openModel(o);
    const texts = await embedTexts(model, data.texts.map((t) => evalText(model, t.text)));
    const scorer = new RetrievalScorer(data.images.length, data.texts.map((t) => t.images));
    await scoreImages(model, data.images, texts, (first, scores) => scorer.addImageRows(first, scores));
    const m = scorer.metrics();
    if (o.json) {
      const recall = ({ queries, r1, r5, r10, mean }: Recall) => ({ queries, r1, r5, r10, mean });
      console.log(JSON.stringify({ format: data.format, images: m.images, texts: m.texts, text_to_image: recall(m.textToImage), image_to_text: recall(m.imageToText), mean_recall: m.meanRecall }));
      return;
    }
    const row = (name: string, r: Recall) => [name, r.queries, pct(r.r1), pct(r.r5), pct(r.r10), pct(r.mean)];
    console.log(table(['direction', 'queries', 'R@1', 'R@5', 'R@10', 'mean'], [row('text→image', m.textToImage), row('image→text', m.imageToText)]));
    console.log(`mean recall ${pct(m.meanRecall)}  (${m.images} images, ${m.texts} texts, ${data.format} format)`);
  });

  withModelOptions(
    evaluate
      .command('zeroshot')
      .description(
        'zero-shot classification top-1/top-5 accuracy: one subfolder of images per class (as torchvision\'s ImageFolder), ' +
          'each class embedded as the mean of its prompt embeddings over a template ensemble',
      )
      .requiredOption('--data <dir>', 'a folder with one subfolder per class (the folder name is the label unless --labels gives one)')
      .option('--templates <zh|en|file>', "prompt templates: 'zh' (Chinese-CLIP's 80), 'en' (OpenAI CLIP's 80) or a file with one template per line, {} where the label goes (default: zh for chinese_clip models, else en)")
      .option('--labels <file>', 'label texts: a .json object { folder: label }, or one label per line in sorted folder order (Chinese-CLIP\'s label file)')
      .option('--per-class', 'also print each class\'s accuracy'),
  ).action(async (o: ModelOptions & { data: string; templates?: string; labels?: string; perClass?: boolean }) => {
    const data = readImageFolder(o.data, { labels: o.labels });
    const templates = o.templates === undefined ? undefined : readTemplates(o.templates);
    const model = await openModel(o);
    // The built-in template sets are already as evalText leaves them (lower case, straight quotes).
    const classes = await model.labelEmbeddings(
      data.classes.map((c) => evalText(model, c.label)),
      { templates: Array.isArray(templates) ? templates.map((t) => evalText(model, t)) : templates },
    );
    const scorer = new ZeroshotScorer(classes.length, data.images.map((i) => i.target));
    const images = data.images.map((i) => ({ source: i.path, where: i.path }));
    await scoreImages(model, images, stack(classes, model.config.projectionDim), (first, scores) => scorer.addImageRows(first, scores));
    const m = scorer.metrics();
    const perClass = o.perClass ? data.classes.map((c, i) => ({ class: c.folder, label: c.label, ...m.perClass[i] })) : [];
    if (o.json) {
      for (const c of perClass) console.log(JSON.stringify({ class: c.class, label: c.label, images: c.images, top1: c.top1, top5: c.top5 }));
      console.log(JSON.stringify({ images: m.images, classes: m.classes, top1: m.top1, top5: m.top5 }));
      return;
    }
    const rows = perClass.map((c) => [c.class, c.label, c.images, pct(c.top1), pct(c.top5)]);
    rows.push(['all', `${m.classes} classes`, m.images, pct(m.top1), pct(m.top5)]);
    console.log(table(['class', 'label', 'images', 'top-1', 'top-5'], rows));
  });
}

/**
 * The text as Chinese-CLIP's evaluation feeds it to a chinese_clip model (cn_clip/eval/data.py
 * _preprocess_text): lower-cased, curly double quotes made straight. Other models get it unchanged.
 */
function evalText(model: ClipModel, text: string): string {
  return model.config.modelType === 'chinese_clip' ? text.toLowerCase().replace(/[“”]/g, '"') : text;
}

/** 'zh' | 'en', or the templates in a file (one per line, blank lines skipped). */
function readTemplates(v: string): TemplateSet | string[] {
  if (v === 'zh' || v === 'en') return v;
  const lines = readTextLines(v).filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new ClipkitError('E_FORMAT', `Expected templates in ${v} (one per line, {} where the label goes) but it has no non-blank lines`);
  return lines;
}

/** Unit embeddings of the texts, a chunk at a time (with a progress bar on a terminal). */
async function embedTexts(model: ClipModel, texts: readonly string[]): Promise<Tensor> {
  const d = model.config.projectionDim, chunk = model.batchSize * BATCHES_PER_CHUNK;
  const out = new Float32Array(texts.length * d); // [texts, d]
  const bar = progressBar(texts.length, 'texts');
  try {
    for (let s = 0; s < texts.length; s += chunk) {
      const rows = await model.encodeText(texts.slice(s, s + chunk));
      rows.forEach((r, j) => out.set(r, (s + j) * d));
      bar.tick(rows.length);
    }
  } finally {
    bar.stop();
  }
  return new Tensor(out, [texts.length, d]);
}

/**
 * Embeds the images a chunk at a time and hands each chunk's cosine similarities against the rows
 * of `against` [m, d] to `add` as rows [chunk, m]. A decoding failure names where the image came
 * from.
 */
async function scoreImages(
  model: ClipModel,
  images: readonly { source: ImageSource; where: string }[],
  against: Tensor,
  add: (first: number, scores: Float32Array) => void,
): Promise<void> {
  const d = model.config.projectionDim, chunk = model.batchSize * BATCHES_PER_CHUNK;
  const bar = progressBar(images.length, 'images');
  try {
    for (let s = 0; s < images.length; s += chunk) {
      const part = images.slice(s, s + chunk);
      let rows: Float32Array[];
      try {
        rows = await model.encodeImage(part.map((i) => i.source));
      } catch (err) {
        throw imageError(err, part);
      }
      add(s, (await logits(stack(rows, d), against, 1)).data); // [rows, m] cosines
      bar.tick(rows.length);
    }
  } finally {
    bar.stop();
  }
}

function stack(rows: readonly Float32Array[], d: number): Tensor {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => out.set(r, i * d));
  return new Tensor(out, [rows.length, d]);
}

/** encodeImage's error (it carries the failing index) restated with the image's file and line. */
function imageError(err: unknown, part: readonly { where: string }[]): unknown {
  const e = err as Error & { code?: string; index?: number; cause?: unknown };
  if (typeof e?.index !== 'number' || !part[e.index]) return err;
  const reason = e.cause instanceof Error ? e.cause.message : e.message;
  const out = new ClipkitError(e.code?.startsWith('E_') ? (e.code as ClipkitError['code']) : 'E_FORMAT', `${part[e.index].where}: the image cannot be used: ${reason}`);
  return Object.assign(out, { cause: err });
}

function pct(v: number): string {
  return v.toFixed(2);
}
