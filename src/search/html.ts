/**
 * The results page of `clipkit search query --html`: one self-contained HTML file, the hits in
 * score order, each as a small JPEG thumbnail embedded as a data URI (so the page shows the images
 * wherever it is opened), with its rank, score and path (a file:// link to the full image).
 * Every path and the query are HTML-escaped.
 */
import { writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { ClipkitError } from '../errors';
import type { SearchHit } from './store';

/** Longest side of a thumbnail, in pixels. */
export const THUMBNAIL_SIZE = 160;

/** An image file as a JPEG data URI at most `size` pixels on its longest side (EXIF orientation applied, alpha on white). */
export async function thumbnailDataUri(path: string, size = THUMBNAIL_SIZE): Promise<string> {
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
  const html = await renderResultsPage(query, hits);
  await writeFile(file, html).catch((err: Error) => {
    throw new ClipkitError('E_IO', `Cannot write the results page ${file}: ${err.message}`);
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
