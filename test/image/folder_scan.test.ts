/**
 * Folder scans (`clipkit embed DIR`, `clipkit search index`) pick up every format decodeImage reads,
 * by extension in any case, and nothing else.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { IMAGE_EXTENSIONS, listImages } from '../../src';
import { expandImagePaths } from '../../src/cli/inputs';
import { tempDir } from '../helpers';

const Scan = suite('image/folder scans');

const READ = ['a.jpg', 'b.JPEG', 'c.png', 'd.webp', 'e.gif', 'f.avif', 'g.tif', 'h.tiff', 'i.bmp', 'j.DIB', 'k.ico', 'l.cur',
  'm.pbm', 'n.pgm', 'o.ppm', 'p.PNM', 'q.tga', 'r.icb', 's.vda', 't.vst'];
const NOT_READ = ['u.psd', 'v.pcx', 'w.jp2', 'x.sgi', 'y.dds', 'z.txt', 'noext'];

function folder(): string {
  const dir = tempDir('scan-');
  mkdirSync(join(dir, 'sub'));
  [...READ, ...NOT_READ].forEach((f, i) => writeFileSync(join(dir, i % 2 ? 'sub' : '', f), 'x'));
  return dir;
}
const names = (paths: string[]) => paths.map((p) => p.slice(p.lastIndexOf('/') + 1)).sort();

Scan('IMAGE_EXTENSIONS names every format read, the own readers included', () => {
  for (const e of ['.bmp', '.dib', '.ico', '.cur', '.pbm', '.pgm', '.ppm', '.pnm', '.tga']) assert.ok(IMAGE_EXTENSIONS.includes(e), e);
});

Scan('search index and embed scan the same files: every format read, in any case, nothing else', async () => {
  const dir = folder();
  assert.equal(names((await listImages(dir)).map((f) => f.path)), [...READ].sort());
  assert.equal(names(await expandImagePaths([dir])), [...READ].sort());
});

Scan.run();
