/**
 * Readers for evaluation sets.
 *
 * Retrieval (readRetrievalDataset), three formats, detected from the file's first line:
 *   'cn-clip'  Chinese-CLIP's source files: `{split}_texts.jsonl` lines
 *              {"text_id": 8428, "text": "…", "image_ids": [1076345, 517602]} and, beside it,
 *              `{split}_imgs.tsv` lines `image_id<TAB>base64 of the image file`.
 *   'easynlp'  EasyNLP's TSV: `text<TAB>base64 of the image file`, one pair per line; lines with the
 *              same base64 are one image with several captions.
 *   'jsonl'    {"image": "path", "captions": ["…", …]} per line, paths relative to the file's folder
 *              (or imagesDir); an image with no captions is a distractor (a candidate, never a
 *              query); lines naming the same file are one image.
 * Candidate order (which breaks ties in the ranking): texts in file order; for 'cn-clip', images in
 * the order Chinese-CLIP's evaluation reads them, its LMDB's key order, i.e. image ids compared as
 * strings ("10" before "9"); otherwise images in order of first appearance.
 * Blank lines are skipped. Anything malformed (bad JSON, broken base64, an unknown image id, a
 * duplicate id) is an error naming the file and line: metrics over a silently smaller set would be
 * wrong.
 *
 * Zero-shot classification (readImageFolder): torchvision's ImageFolder layout, as Chinese-CLIP's
 * zeroshot_evaluation.py reads it: one subfolder per class, classes in sorted order, image files
 * found recursively, optionally a labels file giving each class's label text.
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { ClipkitError } from '../errors';
import { expectOptions, expectPath, OptionKeys } from '../check';
import type { ImageSource } from '../models';
import { readTextBounded } from '../io/read_file';

export const RETRIEVAL_FORMATS = ['cn-clip', 'easynlp', 'jsonl'] as const;
export type RetrievalFormat = (typeof RETRIEVAL_FORMATS)[number];

export interface DatasetImage {
  /** A file path or the image file's bytes. */
  source: ImageSource;
  /** Where it was given ("file line N"), for error messages. */
  where: string;
}

export interface DatasetText {
  text: string;
  /** Indices into the dataset's images: the ground truth (at least one). */
  images: number[];
  where: string;
}

export interface RetrievalDataset {
  format: RetrievalFormat;
  images: DatasetImage[];
  texts: DatasetText[];
}

export interface ReadRetrievalOptions {
  /** Skip detection. */
  format?: RetrievalFormat;
  /** 'cn-clip': the image TSV; default `{split}_imgs.tsv` beside `{split}_texts.jsonl`. */
  images?: string;
  /** 'jsonl': the folder image paths are relative to; default the file's folder. */
  imagesDir?: string;
}

/** Reads a retrieval set (see the header for the formats). */
export async function readRetrievalDataset(file: string, opts: ReadRetrievalOptions = {}): Promise<RetrievalDataset> {
  expectPath('file', file);
  expectOptions('readRetrievalDataset', opts, { format: true, images: true, imagesDir: true } satisfies OptionKeys<ReadRetrievalOptions>);
  const format = opts.format ?? (await detectRetrievalFormat(file));
  if (opts.images !== undefined && format !== 'cn-clip')
    throw new ClipkitError('E_ARG', `Expected an image TSV (--images) only with Chinese-CLIP files but ${file} is in the ${format} format`);
  if (opts.imagesDir !== undefined && format !== 'jsonl')
    throw new ClipkitError('E_ARG', `Expected an images folder (--images-dir) only with JSON lines of image paths but ${file} is in the ${format} format`);
  const data =
    format === 'cn-clip' ? await readChineseClip(file, opts.images ?? imagesTsvBeside(file))
    : format === 'easynlp' ? await readEasyNlp(file)
    : await readCaptionsJsonl(file, opts.imagesDir ?? dirname(file));
  if (data.texts.length === 0) throw new ClipkitError('E_FORMAT', `Expected at least one text in ${file} but found none`);
  return { format, ...data };
}

/** The format of a retrieval file, from its first non-blank line. */
export async function detectRetrievalFormat(file: string): Promise<RetrievalFormat> {
  for await (const { line, where } of lines(file)) {
    if (line.startsWith('{')) {
      const obj = parseJsonObject(line, where);
      if ('text_id' in obj) return 'cn-clip';
      if ('image' in obj) return 'jsonl';
      throw new ClipkitError('E_FORMAT', `${where}: Expected a JSON object with text_id (Chinese-CLIP texts) or image (an image and its captions) but received keys ${JSON.stringify(Object.keys(obj))}`);
    }
    if (/_imgs\.tsv$/.test(file))
      throw new ClipkitError('E_FORMAT', `${file} looks like Chinese-CLIP's image TSV: give its {split}_texts.jsonl as the data file (the TSV beside it is found)`);
    if (line.includes('\t')) return 'easynlp';
    throw new ClipkitError('E_FORMAT', `${where}: Expected a JSON object or text<TAB>base64 image but received ${JSON.stringify(line.slice(0, 60))}`);
  }
  throw new ClipkitError('E_FORMAT', `Expected retrieval data in ${file} but it has no non-blank lines`);
}

function imagesTsvBeside(texts: string): string {
  if (!/_texts\.jsonl$/.test(texts))
    throw new ClipkitError('E_ARG', `Expected the Chinese-CLIP texts file to be named {split}_texts.jsonl (so {split}_imgs.tsv is found beside it) but received ${texts}; give the image TSV explicitly (--images)`);
  return texts.replace(/_texts\.jsonl$/, '_imgs.tsv');
}

async function readChineseClip(textsFile: string, imagesFile: string): Promise<Omit<RetrievalDataset, 'format'>> {
  // Images: image_id → bytes. Ids are integers (Chinese-CLIP parses them with int()).
  const byId = new Map<number, { key: string; bytes: Uint8Array; where: string }>();
  for await (const { line, where } of lines(imagesFile)) {
    const fields = line.trim().split('\t');
    if (fields.length !== 2) throw new ClipkitError('E_FORMAT', `${where}: Expected image_id<TAB>base64 image but found ${fields.length} tab-separated fields`);
    const [key, b64] = fields;
    const id = parseImageId(key, `${where}: image_id`);
    const seen = byId.get(id);
    if (seen) throw new ClipkitError('E_FORMAT', `${where}: image_id ${key} is already given on ${seen.where}`);
    byId.set(id, { key, bytes: decodeBase64(b64, where), where });
  }
  // LMDB iterates its keys (the image ids as written) in byte order: that is the candidate order.
  const ordered = [...byId.entries()].sort(([, a], [, b]) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const index = new Map(ordered.map(([id], i) => [id, i]));
  const images = ordered.map(([, { bytes, where }]) => ({ source: bytes, where }));

  const texts: DatasetText[] = [];
  const textIds = new Map<string, string>();
  for await (const { line, where } of lines(textsFile)) {
    const obj = parseJsonObject(line, where);
    const id = obj.text_id;
    if (typeof id !== 'number' && typeof id !== 'string') throw new ClipkitError('E_FORMAT', `${where}: Expected a text_id (an integer or a string) but received ${JSON.stringify(id)}`);
    const seen = textIds.get(String(id));
    if (seen) throw new ClipkitError('E_FORMAT', `${where}: text_id ${id} is already given on ${seen}`);
    textIds.set(String(id), where);
    const ids = obj.image_ids;
    if (!Array.isArray(ids) || ids.length === 0)
      throw new ClipkitError('E_FORMAT', `${where}: Expected image_ids to list the ground-truth image ids of text_id ${id} but received ${JSON.stringify(ids)}`);
    texts.push({
      text: expectText(obj.text, `${where}: text`),
      images: ids.map((v) => {
        const i = typeof v === 'number' ? index.get(v) : undefined;
        if (i === undefined) throw new ClipkitError('E_FORMAT', `${where}: text_id ${id} refers to image id ${JSON.stringify(v)}, which ${imagesFile} does not contain`);
        return i;
      }),
      where,
    });
  }
  return { images, texts };
}

async function readEasyNlp(file: string): Promise<Omit<RetrievalDataset, 'format'>> {
  const images: DatasetImage[] = [], texts: DatasetText[] = [];
  const byBase64 = new Map<string, number>();
  for await (const { line, where } of lines(file)) {
    const fields = line.split('\t'); // readline has taken off any CR of a CRLF
    if (fields.length !== 2) throw new ClipkitError('E_FORMAT', `${where}: Expected text<TAB>base64 image but found ${fields.length} tab-separated fields`);
    const [text, b64] = [fields[0], fields[1].trim()];
    let i = byBase64.get(b64);
    if (i === undefined) {
      i = images.push({ source: decodeBase64(b64, where), where }) - 1;
      byBase64.set(b64, i);
    }
    texts.push({ text, images: [i], where });
  }
  return { images, texts };
}

async function readCaptionsJsonl(file: string, imagesDir: string): Promise<Omit<RetrievalDataset, 'format'>> {
  const images: DatasetImage[] = [], texts: DatasetText[] = [];
  const byPath = new Map<string, number>();
  for await (const { line, where } of lines(file)) {
    const obj = parseJsonObject(line, where);
    if (typeof obj.image !== 'string' || obj.image === '') throw new ClipkitError('E_FORMAT', `${where}: Expected image to be an image file path but received ${JSON.stringify(obj.image)}`);
    const path = resolve(imagesDir, obj.image);
    if (!Array.isArray(obj.captions)) throw new ClipkitError('E_FORMAT', `${where}: Expected captions to be an array of strings but received ${JSON.stringify(obj.captions)}`);
    let i = byPath.get(path);
    if (i === undefined) {
      if (!isFile(path)) throw new ClipkitError('E_IO', `${where}: Expected an image file at ${obj.image} but ${path} is not a file`);
      i = images.push({ source: path, where }) - 1;
      byPath.set(path, i);
    }
    obj.captions.forEach((c, j) => texts.push({ text: expectText(c, `${where}: captions[${j}]`), images: [i!], where }));
  }
  return { images, texts };
}

/** The non-blank lines of a file, numbered from 1, streamed (image TSVs can be gigabytes). */
async function* lines(file: string): AsyncGenerator<{ line: string; where: string }> {
  if (!isFile(file)) throw new ClipkitError('E_IO', `Expected a data file at ${file} but ${describePath(file)}`);
  const input = createReadStream(file, { encoding: 'utf8' });
  const reader = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of reader) {
      n++;
      if (line.trim() !== '') yield { line, where: `${file} line ${n}` };
    }
  } finally {
    reader.close(); // a caller may stop early (format detection reads one line)
    input.destroy();
  }
}

function parseJsonObject(line: string, where: string): Record<string, unknown> {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (err) {
    throw new ClipkitError('E_FORMAT', `${where}: Expected a JSON object but the line does not parse (${(err as Error).message})`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new ClipkitError('E_FORMAT', `${where}: Expected a JSON object but received ${JSON.stringify(obj)}`);
  return obj as Record<string, unknown>;
}

function expectText(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new ClipkitError('E_FORMAT', `${what}: Expected a string but received ${JSON.stringify(v)}`);
  return v;
}

function parseImageId(key: string, what: string): number {
  const id = Number(key);
  if (!/^\d+$/.test(key) || !Number.isSafeInteger(id)) throw new ClipkitError('E_FORMAT', `${what}: Expected a non-negative integer but received ${JSON.stringify(key.slice(0, 40))}`);
  return id;
}

/**
 * Base64 (standard or URL-safe alphabet, as Python's urlsafe_b64decode accepts) → bytes. Node's
 * decoder skips invalid characters silently, so they are refused here first.
 */
function decodeBase64(b64: string, where: string): Uint8Array {
  const bad = b64.search(/[^A-Za-z0-9+/_-]/);
  const body = b64.replace(/={1,2}$/, '');
  if (b64 === '') throw new ClipkitError('E_FORMAT', `${where}: Expected a base64 image but the field is empty`);
  if (bad >= 0 && bad < body.length)
    throw new ClipkitError('E_FORMAT', `${where}: Expected a base64 image but found ${JSON.stringify(b64[bad])} at character ${bad + 1} of the base64 field`);
  if (body.length % 4 === 1 || (body.length !== b64.length && b64.length % 4 !== 0))
    throw new ClipkitError('E_FORMAT', `${where}: Expected a base64 image but its length ${b64.length} is not a valid base64 length (truncated or corrupt)`);
  return Buffer.from(body, 'base64');
}

// ---- zero-shot classification ----

/** torchvision's IMG_EXTENSIONS (compared case-insensitively), the files ImageFolder takes. */
const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'] as const;

export interface ImageFolderClass {
  /** The subfolder's name. */
  folder: string;
  /** The label text the prompts use: the labels file's, or the folder name. */
  label: string;
}

export interface ImageFolderDataset {
  /** In ImageFolder's order (folder names sorted): the class index is the position here. */
  classes: ImageFolderClass[];
  /** Every image file, by class then path; `target` is the class index. */
  images: { path: string; target: number }[];
}

/**
 * A folder per class (ImageFolder). `labels`: a .json object { folder: label } naming every class,
 * or a text file with one label per line in the sorted folder order (Chinese-CLIP's --label-file).
 */
export function readImageFolder(dir: string, opts: { labels?: string } = {}): ImageFolderDataset {
  expectPath('dir', dir);
  expectOptions('readImageFolder', opts, { labels: true });
  if (!isDirectory(dir)) throw new ClipkitError('E_IO', `Expected a folder of class folders at ${dir} but ${describePath(dir)}`);
  const folders = readdirSync(dir).filter((name) => isDirectory(join(dir, name))).sort(byCodePoint);
  if (folders.length === 0) throw new ClipkitError('E_FORMAT', `Expected one subfolder per class in ${dir} but found none`);
  const labels = opts.labels === undefined ? folders : readLabels(opts.labels, folders);
  const images: ImageFolderDataset['images'] = [];
  folders.forEach((folder, target) => {
    const files = imageFilesUnder(join(dir, folder));
    if (files.length === 0)
      throw new ClipkitError('E_FORMAT', `Expected image files (${IMAGE_EXTENSIONS.join(' ')}) in class folder ${join(dir, folder)} but found none`);
    for (const path of files) images.push({ path, target });
  });
  return { classes: folders.map((folder, i) => ({ folder, label: labels[i] })), images };
}

function readLabels(file: string, folders: readonly string[]): string[] {
  if (!isFile(file)) throw new ClipkitError('E_IO', `Expected a labels file at ${file} but ${describePath(file)}`);
  const text = readTextBounded(file, 'labels file');
  if (extname(file).toLowerCase() === '.json') {
    let map: unknown;
    try {
      map = JSON.parse(text);
    } catch (err) {
      throw new ClipkitError('E_FORMAT', `${file}: Expected a JSON object { folder: label } but it does not parse (${(err as Error).message})`);
    }
    if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new ClipkitError('E_FORMAT', `${file}: Expected a JSON object { folder: label } but received ${JSON.stringify(map)}`);
    const m = map as Record<string, unknown>;
    const unknown = Object.keys(m).filter((k) => !folders.includes(k));
    if (unknown.length) throw new ClipkitError('E_FORMAT', `${file}: Expected only class folder names as keys but ${JSON.stringify(unknown)} name no folder`);
    return folders.map((f) => {
      if (typeof m[f] !== 'string' || m[f] === '') throw new ClipkitError('E_FORMAT', `${file}: Expected a label string for class folder ${JSON.stringify(f)} but received ${JSON.stringify(m[f])}`);
      return m[f] as string;
    });
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const labels = lines.map((l) => l.trim()); // Chinese-CLIP: line.strip() for each line
  if (labels.length !== folders.length)
    throw new ClipkitError('E_FORMAT', `${file}: Expected one label per line for the ${folders.length} class folders (in sorted order) but found ${labels.length} lines`);
  const empty = labels.indexOf('');
  if (empty >= 0) throw new ClipkitError('E_FORMAT', `${file} line ${empty + 1}: Expected the label of class folder ${JSON.stringify(folders[empty])} but the line is empty`);
  return labels;
}

/** ImageFolder's make_dataset for one class: sorted(os.walk(dir, followlinks=True)), files sorted. */
function imageFilesUnder(dir: string): string[] {
  const walk: { root: string; files: string[] }[] = [];
  const visit = (root: string) => {
    const files: string[] = [];
    for (const name of readdirSync(root)) {
      const path = join(root, name);
      if (isDirectory(path)) visit(path);
      else if (IMAGE_EXTENSIONS.some((e) => name.toLowerCase().endsWith(e))) files.push(name);
    }
    walk.push({ root, files: files.sort(byCodePoint) });
  };
  visit(dir);
  return walk.sort((a, b) => byCodePoint(a.root, b.root)).flatMap(({ root, files }) => files.map((f) => join(root, f)));
}

/** Python's string order (by code point; JS's default sort compares UTF-16 units). */
function byCodePoint(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!, y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
}

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

function describePath(path: string): string {
  const st = statSync(path, { throwIfNoEntry: false });
  return st === undefined ? 'it does not exist' : st.isDirectory() ? 'it is a folder' : 'it is not a regular file';
}
