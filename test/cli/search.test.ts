/**
 * `clipkit search index / query` on the tiny Chinese-CLIP model and copies of the fixture images:
 * text and image queries (an image finds itself first, score ≈ 1), incremental updates (counts, and
 * only changed files embedded again), an undecodable file reported and skipped, a database of
 * another model refused, the --html page rendered by headless Chromium (screenshot, and the DOM:
 * k decoded data-URI thumbnails in score order). ImageStore on 5000 synthetic vectors: recall@10
 * of the IVF-PQ search against brute force, at the default nprobes / refineFactor.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel } from '../../src/models';
import { ANN_MIN_ROWS, DEFAULT_NPROBES, DEFAULT_REFINE_FACTOR, ImageStore } from '../../src/search';
import { hasProgram, normal, tempDir } from '../helpers';
import { FileLock } from '../../src/io/file_lock';
import { INDEX_LOCK } from '../../src/search/index_folder';
import { cli, IMAGES, modelFolder } from './fixture_model';

const Search = suite('clipkit search');

const MODEL = modelFolder('chinese_clip_tiny');
const OTHER_MODEL = modelFolder('openai_clip_tiny');
const FIXTURE_IMAGES = readdirSync(IMAGES).filter((f) => /\.(jpe?g|png)$/.test(f)).sort(); // 9 files

/** A temp folder for this suite (removed when the test process exits). */
function scratchDir(what: string): string {
  return tempDir(`clipkit-search-${what}-`);
}

/** A folder with a copy of each fixture image (one of them in a sub-folder, one with an upper-case extension). */
function imageFolder(): string {
  const dir = scratchDir('images');
  mkdirSync(join(dir, 'sub'));
  for (const f of FIXTURE_IMAGES) {
    const name = f === 'tiny.png' ? join('sub', f) : f === 'pokemon.jpeg' ? 'pokemon.JPEG' : f;
    copyFileSync(join(IMAGES, f), join(dir, name));
  }
  return dir;
}

interface Summary {
  added: number;
  updated: number;
  removed: number;
  unchanged: number;
  failed: number;
  failedPaths: string[];
  rows: number;
  search: string;
}

function index(dir: string, db: string, model = MODEL): Summary {
  const r = cli(['search', 'index', dir, '--db', db, '--model', model, '--json']);
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

function query(q: string, db: string, ...args: string[]): { rank: number; path: string; score: number }[] {
  const r = cli(['search', 'query', q, '--db', db, '--model', MODEL, '--json', ...args]);
  assert.is(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

function counts(s: Summary) {
  return { added: s.added, updated: s.updated, removed: s.removed, unchanged: s.unchanged, failed: s.failed, rows: s.rows };
}

Search('index a folder, then query it by text and by image', () => {
  const dir = imageFolder(), db = join(scratchDir('db'), 'photos.lancedb');
  const s = index(dir, db);
  assert.equal(counts(s), { added: 9, updated: 0, removed: 0, unchanged: 0, failed: 0, rows: 9 });
  assert.is(s.search, 'exact', `9 rows are searched exactly (the ANN index starts at ${ANN_MIN_ROWS})`);

  const byText = query('一只猫的照片', db, '-k', '4');
  assert.equal(byText.map((h) => h.rank), [1, 2, 3, 4]);
  for (let i = 1; i < byText.length; i++) assert.ok(byText[i - 1].score >= byText[i].score, 'scores descend');
  for (const h of byText) assert.ok(h.path.startsWith(dir) && h.score >= -1 && h.score <= 1 + 1e-6, JSON.stringify(h));

  const self = join(dir, 'pokemon.JPEG');
  const byImage = query(self, db);
  assert.is(byImage.length, 9, 'k defaults to 10; all 9 rows come back');
  assert.is(byImage[0].path, self, 'an indexed image queried by itself ranks first');
  assert.ok(Math.abs(byImage[0].score - 1) < 1e-4, `its score is ≈ 1: ${byImage[0].score}`);
  assert.ok(byImage[1].score < 0.999, 'the others score below it');

  const table = cli(['search', 'query', self, '--db', db, '--model', MODEL, '-k', '2']);
  assert.is(table.status, 0, table.stderr);
  const lines = table.stdout.trim().split('\n');
  assert.match(lines[0], /^rank\s+score\s+path$/);
  assert.match(lines[1], new RegExp(`^1\\s+1\\.0000\\s+${self.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  assert.is(lines.length, 3);
});

Search('a second run embeds only what changed: added, updated (touched or rewritten), removed, unchanged', () => {
  const dir = imageFolder(), db = scratchDir('db');
  index(dir, db);
  copyFileSync(join(IMAGES, 'pokemon.jpeg'), join(dir, 'sub', 'new.jpg')); // added
  const touched = join(dir, 'gray_l.png');
  const later = new Date(statSync(touched).mtimeMs + 60_000);
  utimesSync(touched, later, later); // same bytes, new mtime
  const rewritten = join(dir, 'alpha_rgba.png');
  copyFileSync(join(IMAGES, 'palette_p.png'), rewritten); // new content
  rmSync(join(dir, '000000005082.jpg')); // removed
  const s = index(dir, db);
  assert.equal(counts(s), { added: 1, updated: 2, removed: 1, unchanged: 6, failed: 0, rows: 9 });

  // The rewritten file was embedded again: the palette image now finds two copies of itself at ≈ 1.
  const hits = query(join(dir, 'palette_p.png'), db, '-k', '2');
  assert.equal(hits.map((h) => h.path).sort(), [rewritten, join(dir, 'palette_p.png')].sort());
  for (const h of hits) assert.ok(Math.abs(h.score - 1) < 1e-4, JSON.stringify(h));
  assert.not.ok(query(join(dir, 'gray_l.png'), db).some((h) => h.path.endsWith('000000005082.jpg')), 'the deleted file is gone');

  assert.equal(counts(index(dir, db)), { added: 0, updated: 0, removed: 0, unchanged: 9, failed: 0, rows: 9 });
});

Search('an undecodable .jpg is reported on stderr and in the summary, skipped; the rest are indexed', () => {
  const dir = imageFolder(), db = scratchDir('db');
  const bad = join(dir, 'sub', 'broken.jpg');
  writeFileSync(bad, 'this is not a JPEG file');
  const r = cli(['search', 'index', dir, '--db', db, '--model', MODEL]);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, `skipped ${bad}: `);
  assert.match(r.stdout, /^added\s+updated\s+removed\s+unchanged\s+failed\s+rows\s+search\n9\s+0\s+0\s+0\s+1\s+9\s+exact\n/);
  assert.match(r.stdout, `1 image could not be read (skipped):\n  ${bad}: `);

  const again = cli(['search', 'index', dir, '--db', db, '--model', MODEL, '--json']);
  assert.is(again.status, 0, again.stderr);
  const s = JSON.parse(again.stdout) as Summary;
  assert.equal(counts(s), { added: 0, updated: 0, removed: 0, unchanged: 9, failed: 1, rows: 9 }, 'tried again, still reported');
  assert.equal(s.failedPaths, [bad]);
});

Search('an index being updated by another process is refused, and free again once it is done', () => {
  const dir = imageFolder(), db = join(scratchDir('db'), '图库 été.lancedb');
  mkdirSync(db, { recursive: true });
  const held = FileLock.acquire(join(db, INDEX_LOCK), 'held by this test, as another indexer would');
  try {
    const r = cli(['search', 'index', dir, '--db', db, '--model', MODEL]);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, `The image index ${db} is being updated by another process`);
  } finally {
    held.release();
  }
  assert.is(index(dir, db).added, 9);
  assert.is(query('a cat', db).length, 9, 'the index works after the refusal');
});

/** Every file under dir, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

Search('a stored vector damaged in the data file is reported by query and embedded again by index', async () => {
  const dir = imageFolder(), db = scratchDir('db');
  index(dir, db);
  // Overwrite one row's vector in the Lance data file with NaNs, as flipped bytes might.
  const victim = join(dir, 'gray_l.png');
  const [vector] = await (await loadModel(MODEL)).encodeImage(victim);
  const needle = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
  const hit = filesUnder(db).find((f) => f.endsWith('.lance') && readFileSync(f).includes(needle));
  assert.ok(hit, 'the vector is stored as it is in a data file');
  const bytes = readFileSync(hit!);
  const at = bytes.indexOf(needle);
  for (let i = 0; i < 4; i++) bytes.writeUInt32LE(0x7fc00000, at + 4 * i); // NaN
  writeFileSync(hit!, bytes);

  const q = cli(['search', 'query', 'a cat', '--db', db, '--model', MODEL, '--json', '-k', '9']);
  assert.is(q.status, 0, q.stderr);
  assert.match(q.stderr, `1 row of ${db} is damaged (stored vector not finite or not unit length) and cannot be found: ${victim}`);
  assert.is(q.stdout.trim().split('\n').length, 8, 'the other 8 are found');

  const r = cli(['search', 'index', dir, '--db', db, '--model', MODEL, '--json']);
  assert.is(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as Summary & { damaged: string[] };
  assert.equal(s.damaged, [victim]);
  assert.equal(counts(s), { added: 0, updated: 1, removed: 0, unchanged: 8, failed: 0, rows: 9 });
  const again = cli(['search', 'query', 'a cat', '--db', db, '--model', MODEL, '--json', '-k', '9']);
  assert.is(again.stderr, '');
  assert.is(again.stdout.trim().split('\n').length, 9, 'all found again');
});

Search('errors from the store name the database and carry a code, without Rust source locations', () => {
  const dir = imageFolder(), db = scratchDir('db');
  index(dir, db);
  for (const f of filesUnder(db).filter((f) => f.endsWith('.lance'))) writeFileSync(f, readFileSync(f).subarray(0, 40));
  const q = cli(['search', 'query', 'a cat', '--db', db, '--model', MODEL]);
  assert.is(q.status, 1);
  assert.match(q.stderr, `in the image index ${db} (its files look damaged): `);
  assert.not.match(q.stderr, /\.rs:\d+/);
});

Search('a database built with another model is refused, naming both models', () => {
  const dir = imageFolder(), db = scratchDir('db');
  index(dir, db);
  for (const args of [['index', dir], ['query', 'a cat']]) {
    const r = cli(['search', ...args, '--db', db, '--model', OTHER_MODEL]);
    assert.is(r.status, 1, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, `was built with model ${JSON.stringify(MODEL)} (dim 64) but this run uses ${JSON.stringify(OTHER_MODEL)}`);
    assert.match(r.stderr, 'a new --db');
  }
  assert.is(index(dir, db).unchanged, 9, 'the index is untouched');

  const empty = scratchDir('db');
  const none = cli(['search', 'query', 'a cat', '--db', empty, '--model', MODEL]);
  assert.is(none.status, 1);
  assert.match(none.stderr, `No image index in ${empty}: build one with clipkit search index DIR --db ${empty}`);
});

const withChromium = hasProgram('chromium', 'rendering the --html page (Debian: apt-get install chromium)') ? Search : Search.skip;
withChromium('--html writes a page headless Chromium renders: k decoded data-URI thumbnails in score order, escaped paths', () => {
  const chromium = spawnSync('chromium', ['--version'], { encoding: 'utf8' });
  assert.is(chromium.status, 0, `chromium --version: ${chromium.error?.message ?? chromium.stderr}`);
  const dir = imageFolder(), db = scratchDir('db'), out = scratchDir('html');
  const odd = join(dir, `a&b <c> "d" 'e'.png`);
  renameSync(join(dir, 'extreme_aspect.png'), odd);
  index(dir, db);
  const page = join(out, 'results.html'), k = 4;
  const hits = query(odd, db, '-k', String(k), '--html', page);
  assert.is(hits[0].path, odd);

  const html = readFileSync(page, 'utf8');
  assert.ok(html.includes('a&amp;b &lt;c&gt; &quot;d&quot; &#39;e&#39;.png'), 'the path is escaped');
  assert.not.ok(html.includes('<c>'), 'no raw path markup');

  const run = (...args: string[]) => {
    const profile = scratchDir('chromium');
    const r = spawnSync('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', `--user-data-dir=${profile}`, ...args], {
      encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20,
    });
    assert.is(r.status, 0, `chromium ${args.join(' ')}: ${r.error?.message ?? r.stderr}`);
    return r.stdout;
  };

  const shot = join(out, 'results.png');
  run(`--screenshot=${shot}`, '--window-size=1200,900', pathToFileURL(page).href);
  const png = readFileSync(shot);
  assert.ok(png.length > 1000 && png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), `a PNG screenshot (${png.length} bytes)`);

  // A copy of the page that records, once loaded, whether each image decoded (naturalWidth).
  const probe = join(out, 'probe.html');
  writeFileSync(probe, html.replace('</body>', `<script>addEventListener('load', () => {
  for (const img of document.images) img.setAttribute('data-natural-width', img.complete ? String(img.naturalWidth) : 'incomplete');
  document.body.setAttribute('data-probed', 'yes');
});</script></body>`));
  const dom = run('--virtual-time-budget=5000', '--dump-dom', pathToFileURL(probe).href);
  assert.match(dom, 'data-probed="yes"');
  const items = [...dom.matchAll(/<li data-rank="(\d+)" data-score="([^"]+)">.*?<img src="([^"]{0,40})[^"]*" alt="([^"]*)" data-natural-width="([^"]+)">/gs)];
  assert.is(items.length, k, `${k} thumbnails in the DOM`);
  items.forEach(([, rank, score, src, alt, width], i) => {
    assert.is(Number(rank), i + 1);
    assert.ok(src.startsWith('data:image/jpeg;base64,'), src);
    assert.ok(Number(width) > 0, `thumbnail ${rank} decoded (naturalWidth ${width})`);
    assert.ok(Math.abs(Number(score) - hits[i].score) < 1e-6, `rank ${rank} is hit ${i + 1}`);
    if (i > 0) assert.ok(Number(items[i - 1][2]) >= Number(score), 'scores descend');
    assert.is(alt.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'"), hits[i].path);
  });
});

Search(`ImageStore: IVF-PQ above ${ANN_MIN_ROWS} rows, recall@10 against brute force; exact again below`, async () => {
  const D = 64, N = 5000, QUERIES = 50;
  const unit = (seed: number) => {
    const v = normal(D, seed);
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  };
  const rows = Array.from({ length: N }, (_, i) => ({ path: `/synthetic/${i}.jpg`, size: 1000 + i, mtime: 1.5e12 + i, vector: unit(i + 1) }));
  const store = await ImageStore.create(scratchDir('ann'), { model: 'synthetic', dim: D });
  try {
    for (let i = 0; i < N; i += 1024) await store.upsert(rows.slice(i, i + 1024)); // as indexFolder writes them
    const ann = await store.updateAnnIndex();
    assert.equal(ann, { search: 'ivf_pq', rows: N, partitions: 19, action: 'trained' });
    const probe = unit(1e6);
    assert.match(await store.explainSearch(probe), /ANNIvfPartition[^\n]*minimum_nprobes=20/, 'the query goes through the IVF-PQ index');

    const recallAt10 = async () => {
      let found = 0;
      for (let q = 0; q < QUERIES; q++) {
        const v = unit(1e6 + q);
        const exact = rows
          .map((r) => ({ path: r.path, score: r.vector.reduce((s, x, j) => s + x * v[j], 0) }))
          .sort((a, b) => b.score - a.score)
          .slice(0, 10);
        const got = await store.search(v, { k: 10 });
        const want = new Map(exact.map((e) => [e.path, e.score]));
        for (const h of got) {
          if (!want.has(h.path)) continue;
          found++;
          assert.ok(Math.abs(h.score - want.get(h.path)!) < 1e-5, `re-ranked scores are exact cosines: ${h.score} vs ${want.get(h.path)}`);
        }
      }
      return found / (10 * QUERIES);
    };
    const recall = await recallAt10();
    console.log(`  IVF-PQ recall@10 = ${recall.toFixed(3)} (${N} × ${D}, 19 partitions, nprobes ${DEFAULT_NPROBES}, refineFactor ${DEFAULT_REFINE_FACTOR})`);
    assert.ok(recall >= 0.9, `recall@10 ${recall} >= 0.9`);

    // A row added after training is folded into the index and found.
    const extra = { path: '/synthetic/extra.jpg', size: 1, mtime: 1, vector: unit(7e6) };
    await store.upsert([extra]);
    assert.equal(await store.updateAnnIndex(), { search: 'ivf_pq', rows: N + 1, partitions: 19, action: 'updated' });
    assert.is((await store.search(extra.vector, { k: 1 }))[0].path, extra.path);

    // Twice the rows it was trained on: trained again, with more partitions (10001 / 256 = 39).
    const more = Array.from({ length: N }, (_, i) => ({ path: `/synthetic/more-${i}.jpg`, size: 1, mtime: 1, vector: unit(2e6 + i) }));
    for (let i = 0; i < N; i += 1024) await store.upsert(more.slice(i, i + 1024));
    assert.equal(await store.updateAnnIndex(), { search: 'ivf_pq', rows: 2 * N + 1, partitions: 39, action: 'trained' });

    // Below the threshold the index is dropped and the search is exact.
    await store.remove([extra.path, ...more.map((r) => r.path), ...rows.slice(ANN_MIN_ROWS - 1).map((r) => r.path)]);
    assert.equal(await store.updateAnnIndex(), { search: 'exact', rows: ANN_MIN_ROWS - 1, action: 'dropped' });
    rows.length = ANN_MIN_ROWS - 1;
    assert.is(await recallAt10(), 1, 'exact search finds the exact top 10');
  } finally {
    store.close();
  }
});

Search.run();
