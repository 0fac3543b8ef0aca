/**
 * `clipkit embed PATHS… --out FILE` and `clipkit embed --texts FILE --out FILE` — embeddings of a
 * folder of images or a file of texts, written so that a run that is stopped (Ctrl-C, SIGKILL, a
 * crash) resumes where it stopped: every item ends up in the output exactly once.
 *
 * The record is a JSON-lines journal — the output itself for `.jsonl`, or `OUT.partial.jsonl` for
 * `.safetensors`, converted when the run completes: a header line naming the model, then one line
 * per item, appended and flushed to disk a batch at a time. On start the journal is read back:
 * items already in it are skipped, and a last line cut short by a kill is dropped (its item runs
 * again). Images that cannot be read are reported on stderr and in the summary, and are not
 * recorded, so a later run tries them again.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { ClipkitError } from '../errors';
import { lockOrRefuse } from '../io/file_lock';
import { writeSafetensors } from '../io/safetensors_writer';
import { openModel, ModelOptions, progressBar, table, withModelOptions } from './common';
import { embedImages, expandImagePaths, readTextLines } from './inputs';

interface EmbedCliOptions extends ModelOptions {
  texts?: string;
  out: string;
}

/** The journal's first line. */
interface Header {
  clipkit_embeddings: 1;
  kind: 'image' | 'text';
  model: string;
  dtype: string;
  dim: number;
}

/** One embedded item: an image by absolute path, or a text by its line index. */
type Item = { path: string; embedding: number[] } | { index: number; text: string; embedding: number[] };

export function registerEmbed(program: Command): void {
  withModelOptions(
    program
      .command('embed')
      .description('embed images (files, folders, globs) or texts (--texts, one per line) into a file; an interrupted run resumes')
      .argument('[paths...]', 'image files, folders (searched recursively) or globs')
      .option('--texts <file>', 'embed the texts of this file, one per line, instead of images')
      .requiredOption('-o, --out <file>', 'output: .jsonl (JSON lines), or .safetensors (tensor "embeddings" [n, dim] plus OUT.names.json)'),
  )
    .addHelpText(
      'after',
      '\nJSON lines output: a header { "clipkit_embeddings": 1, "kind", "model", "dtype", "dim" }, then one line per item:' +
        '\n  { "path", "embedding" } for images, { "index", "text", "embedding" } for texts (unit vectors).' +
        '\nRun the same command again after an interruption: finished items are kept and not embedded again.',
    )
    .action(async (paths: string[], o: EmbedCliOptions) => {
      if ((paths.length > 0) === (o.texts !== undefined))
        throw new ClipkitError('E_ARG', 'Give either image paths or --texts FILE (one kind per output file)');
      const kind = o.texts !== undefined ? 'text' : 'image';
      const items = kind === 'text' ? readTextLines(o.texts!) : await expandImagePaths(paths);
      const toSafetensors = o.out.toLowerCase().endsWith('.safetensors');
      const journalPath = toSafetensors ? `${o.out}.partial.jsonl` : o.out;

      const model = await openModel(o);
      // A folder is recorded by its absolute path, so a resume from another directory matches.
      const modelId = fs.existsSync(o.model) ? path.resolve(o.model) : o.model;
      const header: Header = { clipkit_embeddings: 1, kind, model: modelId, dtype: o.dtype, dim: model.config.projectionDim };
      const journal = Journal.open(journalPath, header);
      const keyOf = (i: number) => (kind === 'text' ? String(i) : (items[i] as string));
      const todo = items.map((_, i) => i).filter((i) => !journal.done.has(keyOf(i)));

      let stopping = false;
      const onSignal = () => {
        stopping = true;
        process.stderr.write('clipkit embed: stopping after the current batch (run the same command to resume)\n');
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const bar = progressBar(todo.length, kind === 'text' ? 'texts' : 'images');
      const failed: string[] = [];
      let embedded = 0;
      const embedAll = async () => {
        if (kind === 'text') {
          for (let s = 0; s < todo.length && !stopping; s += model.batchSize) {
            const ids = todo.slice(s, s + model.batchSize);
            const vecs = await model.encodeText(ids.map((i) => items[i]));
            journal.append(ids.map((i, j) => ({ index: i, text: items[i], embedding: toNumbers(vecs[j]) })));
            embedded += ids.length;
            bar.tick(ids.length);
          }
          return;
        }
        const images = todo.map((i) => items[i]);
        const batches = embedImages(model, images, (j, err) => {
          failed.push(images[j]);
          process.stderr.write(`clipkit embed: skipped ${images[j]}: ${err.message}\n`);
        });
        for await (const batch of batches) {
          journal.append(batch.indices.map((j, r) => ({ path: images[j], embedding: toNumbers(batch.embeddings[r]) })));
          embedded += batch.indices.length;
          bar.tick(batch.indices.length);
          if (stopping) break;
        }
      };
      let complete = false;
      try {
        await embedAll();
        complete = !stopping && failed.length === 0;
        // Still locked: a run started meanwhile is refused until the journal is converted and removed.
        if (complete && toSafetensors) finishSafetensors(journalPath, o.out, header);
      } finally {
        bar.stop();
        journal.close();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }

      const summary = {
        out: o.out, embedded, already_done: items.length - todo.length, failed: failed.length,
        remaining: items.length - (items.length - todo.length) - embedded, complete, failed_paths: failed,
      };
      if (o.json) console.log(JSON.stringify(summary));
      else {
        console.log(table(['output', 'embedded', 'already done', 'failed', 'remaining'], [[o.out, embedded, summary.already_done, failed.length, summary.remaining]]));
        if (failed.length) console.log(`\nCould not read ${failed.length} image(s):\n${failed.map((f) => `  ${f}`).join('\n')}`);
        if (toSafetensors && !complete) console.log(`\nPartial results are in ${journalPath}; run the command again to finish ${o.out}.`);
      }
      if (stopping) process.exitCode = 130;
      else if (failed.length) process.exitCode = 1;
    });
}

/** float32 values as JSON numbers: 9 significant digits always read back to the same float32. */
function toNumbers(v: Float32Array): number[] {
  return Array.from(v, (x) => Number(x.toPrecision(9)));
}

/** The append-only JSON-lines record of finished items. */
class Journal {
  private constructor(
    private fd: number,
    readonly done: Set<string>,
    private pos: number,
  ) {}

  /**
   * Opens (creating, or reading back and repairing) the journal at `file` for `header`'s model,
   * holding its lock until close(): a second process on the same output is refused (E_BUSY).
   */
  static open(file: string, header: Header): Journal {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | (fs.constants.O_NONBLOCK ?? 0), 0o644);
    } catch (err) {
      throw new ClipkitError('E_IO', `Cannot open ${file}: ${(err as Error).message}`);
    }
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd);
      throw new ClipkitError('E_IO', `Cannot write embeddings to ${file}: it is not a regular file`);
    }
    // Locked before it is read: what another run appended up to its exit is all seen here.
    lockOrRefuse(fd, `${file} is being written by another clipkit embed; wait for it to finish (it resumes from the same file) or choose another --out`);
    try {
      return Journal.readBack(fd, file, header);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  private static readBack(fd: number, file: string, header: Header): Journal {
    const done = new Set<string>();
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(fd);
    } catch (err) {
      throw new ClipkitError('E_IO', `Cannot read ${file}: ${(err as Error).message}`);
    }
    // Only newline-terminated lines count; a line cut short by a kill is dropped. Counted in bytes:
    // the file is truncated to this offset, and a path or text outside ASCII takes several bytes a
    // character (a UTF-16 index here once cut into the last good line).
    let good = bytes.lastIndexOf(0x0a) + 1;
    const lines = bytes.subarray(0, good).toString('utf8').split('\n').slice(0, -1);
    if (lines.length > 0) {
      const old = parseLine(file, lines[0], 1) as Partial<Header>;
      if (old.clipkit_embeddings !== 1) throw new ClipkitError('E_FORMAT', `${file} exists and is not a clipkit embeddings file; choose another --out`);
      const same = old.kind === header.kind && old.model === header.model && old.dtype === header.dtype && old.dim === header.dim;
      if (!same)
        throw new ClipkitError('E_ARG', `${file} holds ${old.kind} embeddings of ${old.model} (${old.dtype}, dim ${old.dim}), not ${header.kind} embeddings of ${header.model} (${header.dtype}, dim ${header.dim}); choose another --out or delete it`);
      lines.slice(1).forEach((line, i) => {
        const item = parseLine(file, line, i + 2) as Partial<Item> & { path?: string; index?: number };
        done.add(header.kind === 'text' ? String(item.index) : String(item.path));
      });
    } else good = 0;
    fs.ftruncateSync(fd, good);
    let pos = good;
    if (good === 0) pos += fs.writeSync(fd, JSON.stringify(header) + '\n', 0);
    fs.fsyncSync(fd);
    return new Journal(fd, done, pos);
  }

  /** Appends one batch and flushes it to disk before returning. */
  append(items: Item[]): void {
    const chunk = Buffer.from(items.map((it) => JSON.stringify(it) + '\n').join(''));
    let off = 0;
    while (off < chunk.length) off += fs.writeSync(this.fd, chunk, off, chunk.length - off, this.pos + off);
    this.pos += chunk.length;
    fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

function parseLine(file: string, line: string, n: number): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new ClipkitError('E_FORMAT', `${file} line ${n} is not valid JSON; the file was changed by something other than clipkit embed`);
  }
}

/** Journal → OUT.safetensors ("embeddings" [n, dim], rows in journal order) + OUT.names.json; then the journal goes. */
function finishSafetensors(journalPath: string, out: string, header: Header): void {
  const lines = fs.readFileSync(journalPath, 'utf8').split('\n').filter((l) => l !== '').slice(1);
  const data = new Float32Array(lines.length * header.dim);
  const names: (string | { index: number; text: string })[] = [];
  lines.forEach((line, r) => {
    const it = JSON.parse(line) as Item;
    data.set(it.embedding, r * header.dim);
    names.push('path' in it ? it.path : { index: it.index, text: it.text });
  });
  const meta = { kind: header.kind, model: header.model, dtype: header.dtype };
  writeAtomic(out, writeSafetensors({ embeddings: { dtype: 'F32', shape: [lines.length, header.dim], data } }, meta));
  writeAtomic(`${out.replace(/\.safetensors$/i, '')}.names.json`, Buffer.from(JSON.stringify(names, null, 0) + '\n'));
  fs.unlinkSync(journalPath);
}

function writeAtomic(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}
