/**
 * The results page of `clipkit search query --html`: one self-contained HTML file, the hits in
 * score order, each as a small JPEG thumbnail embedded as a data URI (so the page shows the images
 * wherever it is opened), with its rank, score and path (a file:// link to the full image).
 * Every path and the query are HTML-escaped.
 */
import { writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { describe, expectFinite, expectInt, expectPath } from '../check';
import { ClipkitError, typeError } from '../errors';
import type { SearchHit } from './store';

/** Longest side of a thumbnail, in pixels. */
export const THUMBNAIL_SIZE = 160;

/** An image file as a JPEG data URI at most `size` pixels on its longest side (EXIF orientation applied, alpha on white). */
export async function thumbnailDataUri(path: string, size = THUMBNAIL_SIZE): Promise<string> {
  expectPath('path', path);
  expectInt('size', size, 1, 16384);
  const jpeg = await sharp(path)
    .rotate()
    .resize(size, size, { fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#ffffff' })
    .jpeg({ quality: 80 })
    .toBuffer();
  return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
}

/** The page for `hits` (best first) of the search for `query` (a text, or a description of the query image). */
export async function renderResultsPage(query: string, hits: readonly SearchHit[]): Promise<string> {
  checkPage(query, hits);
  const items = await Promise.all(
    hits.map(async (h) => {
      const thumb = await thumbnailDataUri(h.path).then(
        (uri) => `<img src="${uri}" alt="${escapeHtml(h.path)}">`,
        (err: Error) => `<span class="missing">no preview: ${escapeHtml(err.message)}</span>`,
      );
      return (
        `<li data-rank="${h.rank}" data-score="${h.score}">` +
        `<a class="thumb" href="${escapeHtml(pathToFileURL(h.path).href)}">${thumb}</a>` +
        `<div class="score">#${h.rank} · ${h.score.toFixed(4)}</div>` +
        `<div class="path">${escapeHtml(h.path)}</div></li>`
      );
    }),
  );
  const title = `clipkit search: ${query}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 24px; background: #fafafa; color: #222; }
ol { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(184px, 1fr)); gap: 16px; }
li { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px; }
.thumb { display: flex; align-items: center; justify-content: center; width: ${THUMBNAIL_SIZE}px; height: ${THUMBNAIL_SIZE}px; margin: 0 auto 6px; }
.thumb img { max-width: 100%; max-height: 100%; }
.missing { color: #a00; font-size: 12px; }
.score { font-weight: 600; }
.path { font-size: 12px; color: #555; word-break: break-all; }
</style>
</head>
<body>
<h1>${escapeHtml(query)}</h1>
<p>Top ${hits.length} by cosine similarity.</p>
<ol>
${items.join('\n')}
</ol>
</body>
</html>
`;
}

/** Writes the results page to `file`. */
export async function writeResultsPage(file: string, query: string, hits: readonly SearchHit[]): Promise<void> {
  expectPath('file', file);
  const html = await renderResultsPage(query, hits);
  await writeFile(file, html).catch((err: Error) => {
    throw new ClipkitError('E_IO', `Cannot write the results page ${file}: ${err.message}`);
  });
}

/**
 * The arguments, checked before any work starts: a hit without a path once made a per-hit promise
 * reject where nothing awaited it (hits.map over a typed array keeps numbers, not the promises), and
 * the unhandled rejection ended the process after the call had returned.
 */
function checkPage(query: unknown, hits: unknown): void {
  if (typeof query !== 'string') throw typeError('E_ARG', `Expected a query string but received ${describe(query)}`);
  if (!Array.isArray(hits)) throw typeError('E_ARG', `Expected an array of search hits for hits but received ${describe(hits)}`);
  hits.forEach((h: unknown, i) => {
    const hit = h as Partial<SearchHit> | null;
    if (hit === null || typeof hit !== 'object') throw typeError('E_ARG', `Expected a search hit { path, rank, score } for hits[${i}] but received ${describe(h)}`);
    expectPath(`hits[${i}].path`, hit.path);
    expectFinite(`hits[${i}].rank`, hit.rank);
    expectFinite(`hits[${i}].score`, hit.score);
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
