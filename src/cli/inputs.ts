/**
 * Command-line inputs: image paths from files, folders and globs, and a pipeline that embeds them a
 * batch at a time, decoding the next batch while the model runs the current one. An image that
 * cannot be read is handed to `onError` and left out; the others go on.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';
import { ClipkitError } from '../errors';
import { ClipModel } from '../models';
import { IMAGE_EXTENSIONS } from '../image/decode';
import { readTextBounded } from '../io/read_file';
import { constants as bufferConstants } from 'node:buffer';

const MAX_STRING_LENGTH = bufferConstants.MAX_STRING_LENGTH;

const isImageName = (name: string) => IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase());

/**
 * Absolute paths of the images named by `args`, sorted, without duplicates: a file is taken as
 * given (whatever its extension), a folder is searched recursively for image extensions, anything
 * else is a glob. A name that matches nothing is an error (E_IO), not an empty run.
 */
export async function expandImagePaths(args: readonly string[], cwd = process.cwd()): Promise<string[]> {
  const found = new Set<string>();
  for (const arg of args) {
    const abs = path.resolve(cwd, arg);
    const stat = fs.statSync(abs, { throwIfNoEntry: false });
    if (stat?.isFile()) found.add(abs);
    else if (stat?.isDirectory()) {
      const files = await glob(IMAGE_EXTENSIONS.map((e) => `**/*${e}`), { cwd: abs, absolute: true, caseSensitiveMatch: false, followSymbolicLinks: true });
      files.forEach((f) => found.add(path.resolve(f)));
    } else if (isDynamicPattern(arg)) {
      const files = await glob(arg, { cwd, absolute: true, onlyFiles: true });
      if (files.length === 0) throw new ClipkitError('E_IO', `No files match ${arg}`);
      files.filter(isImageName).forEach((f) => found.add(path.resolve(f)));
    } else throw new ClipkitError('E_IO', `No such file or folder: ${arg}`);
  }
  return [...found].sort();
}

export interface EmbeddedBatch {
  /** Indices into the input list, in input order. */
  indices: number[];
  embeddings: Float32Array[];
}

/**
 * Embeds images `batchSize` at a time (unit vectors), yielding each batch as it finishes. Images
 * of the next batch are decoded and preprocessed (off the JS thread) while the current batch runs.
 * `onError(index, error)` is called for each image that cannot be read; it is not in any batch.
 */
export async function* embedImages(
  model: ClipModel,
  images: readonly (string | Uint8Array)[],
  onError: (index: number, err: Error) => void,
): AsyncGenerator<EmbeddedBatch> {
  const batchSize = model.batchSize;
  const prepare = async (start: number) => {
    const ids = Array.from({ length: Math.min(batchSize, images.length - start) }, (_, j) => start + j);
    const pixels = await Promise.all(
      ids.map((i) =>
        model.preprocess(images[i]).catch((err: Error) => {
          onError(i, err);
          return undefined;
        }),
      ),
    );
    return { indices: ids.filter((_, j) => pixels[j]), pixels: pixels.filter((p): p is Float32Array => p !== undefined) };
  };
  let next = images.length > 0 ? prepare(0) : undefined;
  for (let start = 0; start < images.length; start += batchSize) {
    const batch = await next!;
    next = start + batchSize < images.length ? prepare(start + batchSize) : undefined;
    if (batch.indices.length === 0) continue;
    const per = batch.pixels[0].length;
    const stacked = new Float32Array(per * batch.pixels.length);
    batch.pixels.forEach((p, j) => stacked.set(p, j * per));
    yield { indices: batch.indices, embeddings: await model.encodePixels(stacked, batch.indices.length) };
  }
}

/** Reads one text per line (LF or CRLF); a trailing empty line is not a text. */
export function readTextLines(file: string): string[] {
  // Up to the longest string V8 makes: a file of at most that many bytes always decodes.
  const text = readTextBounded(file, 'texts file', MAX_STRING_LENGTH);
  const lines = text.split(/\r?\n/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}
