/**
 * `clipkit search index DIR --db PATH|URI`: embeds the images under DIR into a LanceDB table,
 * incrementally (new files added, changed ones embedded again, deleted ones removed).
 * `clipkit search query TEXT|IMAGE --db PATH|URI`: the k images nearest to a text or to an image
 * file, as a table, JSON lines or a self-contained HTML page of thumbnails.
 */
import { existsSync, statSync } from 'node:fs';
import { Command } from 'commander';
import { ANN_MIN_ROWS, DEFAULT_NPROBES, DEFAULT_REFINE_FACTOR, IMAGE_EXTENSIONS, ImageStore, indexFolder, IndexSummary, writeResultsPage } from '../search';
import { ClipkitError } from '../errors';
import { ModelOptions, openModel, positiveInt, Progress, progressBar, table, withModelOptions } from './common';

const DB_HELP = 'the LanceDB database: a folder on disk or any URI LanceDB connects to';

const INDEX_HELP = `
Images: ${IMAGE_EXTENSIONS.join(' ')} (any case), in DIR and its
sub-folders. Each row keeps the file's absolute path, size and mtime, the --model as given and
the embedding dim; a database built with another model is refused (use a new --db). Run it again
to update: only new and changed files are embedded, rows of deleted files are removed. Files that
cannot be decoded are reported on stderr and in the summary, and skipped.

Search is exact (a flat scan) below ${ANN_MIN_ROWS} rows. From ${ANN_MIN_ROWS} rows on, an IVF-PQ index (cosine) is
built: IVF k-means trains on 256 rows per partition and PQ on 256 rows per codebook, so the
smallest index, 16 partitions, needs 16 x 256 = ${ANN_MIN_ROWS} rows. Later runs fold new rows into the
index, and train it again when the table has doubled or halved.`;

const QUERY_HELP = `
A QUERY that names an existing file is embedded as an image, anything else as a text; use the
--model the index was built with. Scores are cosine similarities. From ${ANN_MIN_ROWS} rows on, the
IVF-PQ index is probed (${DEFAULT_NPROBES} partitions; the ${DEFAULT_REFINE_FACTOR} x k nearest PQ candidates are re-ranked
on the stored vectors).`;

interface IndexOptions extends ModelOptions {
  db: string;
}

interface QueryOptions extends ModelOptions {
  db: string;
  k: number;
  html?: string;
}

export function registerSearch(program: Command): void {
  const search = program.command('search').description('index folders of images in LanceDB and search them by text or by image');

  withModelOptions(
    search
      .command('index')
      .description('embed the images under DIR into a LanceDB table (incremental)')
      .argument('<dir>', 'folder of images'),
  )
    .requiredOption('--db <path|uri>', DB_HELP)
    .addHelpText('after', INDEX_HELP)
    .action(async (dir: string, o: IndexOptions) => {
      let bar: Progress | undefined;
      let done = 0;
      const summary = await indexFolder(dir, {
        db: o.db,
        modelId: o.model,
        openModel: () => openModel(o),
        onProgress: (n, total) => {
          bar ??= progressBar(total, 'images');
          bar.tick(n - done);
          done = n;
        },
        // On a terminal, clear the progress bar's line first (the bar redraws itself).
        onFailure: (path, err) => process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}clipkit search index: skipped ${path}: ${err.message}\n`),
      }).finally(() => bar?.stop());
      printSummary(summary, o.json === true);
    });

  withModelOptions(
    search
      .command('query')
      .description('the k indexed images nearest to a text or an image')
      .argument('<query>', 'a text, or the path of an image file'),
  )
    .requiredOption('--db <path|uri>', DB_HELP)
    .option('-k <n>', 'results', positiveInt('-k'), 10)
    .option('--html <file>', 'also write a self-contained HTML page with the thumbnails')
    .addHelpText('after', QUERY_HELP)
    .action(async (query: string, o: QueryOptions) => {
      const store = await ImageStore.open(o.db);
      if (!store) throw new ClipkitError('E_IO', `No image index in ${o.db}: build one with clipkit search index DIR --db ${o.db}`);
      try {
        store.checkModel(o.model);
        const model = await openModel(o);
        store.checkModel(o.model, model.config.projectionDim);
        const isImage = existsSync(query) && statSync(query).isFile();
        const [vector] = isImage ? await model.encodeImage([query]) : await model.encodeText(query);
        const hits = await store.search(vector, { k: o.k });
        // A damaged row (its stored vector not finite) is never found: fewer hits than there should be.
        if (hits.length < Math.min(o.k, await store.count())) {
          const damaged = await store.damaged();
          if (damaged.length > 0)
            process.stderr.write(
              `clipkit search query: ${damaged.length} row${damaged.length === 1 ? '' : 's'} of ${o.db} ${damaged.length === 1 ? 'is' : 'are'} damaged (stored vector not finite or not unit length) and cannot be found: ` +
                `${damaged.slice(0, 10).join(', ')}${damaged.length > 10 ? ', …' : ''}; run clipkit search index on the folder to embed them again\n`,
            );
        }
        if (o.json) for (const h of hits) console.log(JSON.stringify({ rank: h.rank, path: h.path, score: h.score }));
        else console.log(table(['rank', 'score', 'path'], hits.map((h) => [h.rank, h.score.toFixed(4), h.path])));
        if (o.html) {
          await writeResultsPage(o.html, isImage ? `image: ${query}` : query, hits);
          process.stderr.write(`clipkit search query: wrote ${o.html}\n`);
        }
      } finally {
        store.close();
      }
    });
}

function printSummary(s: IndexSummary, json: boolean): void {
  const search = s.ann?.search ?? 'exact';
  if (json) {
    const { added, updated, removed, unchanged, rows, damaged } = s;
    console.log(JSON.stringify({ added, updated, removed, unchanged, failed: s.failed.length, failedPaths: s.failed.map((f) => f.path), damaged, rows, search }));
    return;
  }
  if (s.damaged.length > 0) {
    console.log(`${s.damaged.length} damaged row${s.damaged.length === 1 ? '' : 's'} (stored vector not finite or not unit length), embedded again where the file is under this folder:`);
    for (const p of s.damaged) console.log(`  ${p}`);
    console.log('');
  }
  const ann = s.ann?.search === 'ivf_pq' ? `ivf_pq (${s.ann.partitions} partitions, ${s.ann.action})` : search;
  console.log(table(['added', 'updated', 'removed', 'unchanged', 'failed', 'rows', 'search'], [[s.added, s.updated, s.removed, s.unchanged, s.failed.length, s.rows, ann]]));
  if (s.failed.length > 0) {
    console.log(`\n${s.failed.length} image${s.failed.length === 1 ? '' : 's'} could not be read (skipped):`);
    for (const f of s.failed) console.log(`  ${f.path}: ${f.error}`);
  }
}
