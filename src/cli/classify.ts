/**
 * `clipkit classify IMAGE… --labels 猫,狗,…` — zero-shot classification with a prompt-template
 * ensemble: each label's embedding is the mean of its normalised template embeddings, renormalised;
 * scores are a softmax over the labels of exp(logit_scale)·cos.
 */
import * as path from 'node:path';
import { Command } from 'commander';
import { ClipkitError } from '../errors';
import { TemplateSet } from '../models';
import { openModel, ModelOptions, positiveInt, progressBar, table, withModelOptions } from './common';
import { embedImages, expandImagePaths, readTextLines } from './inputs';

interface ClassifyCliOptions extends ModelOptions {
  labels?: string;
  labelsFile?: string;
  templates?: string;
  top?: number;
}

export function registerClassify(program: Command): void {
  withModelOptions(
    program
      .command('classify')
      .description('zero-shot classification of images over labels, with the published prompt-template ensembles')
      .argument('<images...>', 'image files, folders (searched recursively) or globs')
      .option('-l, --labels <list>', 'comma-separated labels, e.g. 猫,狗,鸟')
      .option('--labels-file <file>', 'labels, one per line (instead of --labels)')
      .option('-t, --templates <zh|en|file>', "prompt templates: 'zh' (Chinese-CLIP's 80), 'en' (OpenAI CLIP's 80) or a file with one template per line, {} marking the label (default: zh for Chinese-CLIP models, en otherwise)")
      .option('--top <n>', 'labels shown per image in the table (JSON lines always list all)', positiveInt('--top'), 5),
  )
    .addHelpText('after', '\nJSON lines: { "image": path, "labels": [{ "label", "score" }] } with all labels, best first; scores sum to 1.')
    .action(async (images: string[], o: ClassifyCliOptions) => {
      const labels = readLabels(o);
      const templates = readTemplates(o.templates);
      const paths = await expandImagePaths(images);
      const model = await openModel(o);
      await model.labelEmbeddings(labels, { templates }); // fail on bad templates before decoding images
      const bar = progressBar(paths.length, 'images');
      let failed = 0;
      for await (const batch of embedImages(model, paths, (i, err) => {
        failed++;
        process.stderr.write(`clipkit classify: skipped ${paths[i]}: ${err.message}\n`);
      })) {
        const results = await model.classifyEmbeddings(batch.embeddings, labels, { templates });
        bar.tick(batch.indices.length);
        batch.indices.forEach((i, j) => {
          if (o.json) console.log(JSON.stringify({ image: paths[i], labels: results[j] }));
          else {
            const rows = results[j].slice(0, o.top).map((r) => [r.label, r.score.toFixed(4)]);
            console.log(`${path.relative(process.cwd(), paths[i]) || paths[i]}\n${indent(table(['label', 'score'], rows))}\n`);
          }
        });
      }
      bar.stop();
      if (failed) {
        process.stderr.write(`clipkit classify: ${failed} of ${paths.length} images could not be read\n`);
        process.exitCode = 1;
      }
    });
}

const indent = (s: string) => s.replace(/^/gm, '  ');

function readLabels(o: ClassifyCliOptions): string[] {
  if ((o.labels === undefined) === (o.labelsFile === undefined))
    throw new ClipkitError('E_ARG', 'Give the labels with exactly one of --labels a,b,c or --labels-file FILE');
  const labels = (o.labels !== undefined ? o.labels.split(',') : readTextLines(o.labelsFile!)).map((l) => l.trim());
  if (labels.length === 0 || labels.some((l) => l === '')) throw new ClipkitError('E_ARG', `Expected non-empty labels but received ${JSON.stringify(labels)}`);
  return labels;
}

function readTemplates(t: string | undefined): TemplateSet | string[] | undefined {
  if (t === undefined || t === 'zh' || t === 'en') return t;
  return readTextLines(t).filter((line) => line.trim() !== '');
}
