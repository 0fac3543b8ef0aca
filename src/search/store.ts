/**
 * ImageStore: image embeddings in a LanceDB table (embedded, `uri` a folder on disk, or any URI
 * LanceDB's `connect` accepts), searched by cosine similarity.
 *
 *   const store = await ImageStore.create('photos.lancedb', { model: 'OFA-Sys/chinese-clip-vit-base-patch16', dim: 512 });
 *   await store.upsert([{ path: '/photos/cat.jpg', size: 48213, mtime: 1718000000000, vector }]);
 *   await store.updateAnnIndex();                   // IVF-PQ from ANN_MIN_ROWS rows on, exact below
 *   const hits = await store.search(query, { k: 10 }); // [{ rank, path, score }], best first
 *
 * One table, `images`, one row per file: path (absolute, the key), size (bytes), mtime (ms),
 * model and dim (who embedded it), vector (fixed-size list of float32, unit length). The model id
 * and dim are also kept in the table's schema metadata, so a table, even an empty one, knows which
 * model it belongs to; vectors of another model are refused, never mixed.
 *
 * Search: below ANN_MIN_ROWS rows, exact (LanceDB's flat scan). From ANN_MIN_ROWS rows on, an
 * IVF-PQ index (cosine): IVF k-means samples 256 rows per partition and PQ trains 256 centroids (its
 * 8-bit codes) per sub-vector, so the smallest index, MIN_PARTITIONS partitions, needs
 * 16 × 256 = 4096 rows; partitions grow with the table (256 rows each, at most √rows), and PQ
 * codes 8 dimensions per byte (dim / 8 sub-vectors). Rows added after training are folded into the index's partitions by
 * `optimize`; the index is retrained when the table has doubled or halved since training.
 * Queries probe `nprobes` partitions and re-rank `refineFactor × k` PQ candidates on the stored
 * vectors, so the scores returned are exact cosine similarities.
 *
 * LanceDB and Arrow are loaded on first use: importing clipkit does not load them.
 */
import type { Connection, Table, VectorQuery } from '@lancedb/lancedb';
import { describe, expectInt, expectOptions, expectPath, OptionKeys } from '../check';
import { ClipkitError, rangeError, typeError } from '../errors';

/** The table's name inside the database. */
export const TABLE_NAME = 'images';

/** The fewest IVF partitions an index is built with. */
const MIN_PARTITIONS = 16;
/** Rows per partition the IVF k-means trains on (LanceDB's sampleRate); also PQ's 2^8 centroids per sub-vector. */
const TRAINING_ROWS_PER_PARTITION = 256;
/** Rows from which an IVF-PQ index is built: 16 partitions × 256 training rows each = 4096. Below, search is exact. */
export const ANN_MIN_ROWS = MIN_PARTITIONS * TRAINING_ROWS_PER_PARTITION;

/** Partitions probed per query (LanceDB's default). */
export const DEFAULT_NPROBES = 20;
/** PQ candidates re-ranked on the stored vectors per result (k × this many). */
export const DEFAULT_REFINE_FACTOR = 40;

/** The ANN index's name records the row count it was trained on: `vector_ivfpq_<rows>`. */
const ANN_INDEX_PREFIX = 'vector_ivfpq_';

const META_MODEL = 'clipkit.model';
const META_DIM = 'clipkit.dim';

/** Which model the vectors come from: the model id as given (hub id or folder) and its embedding dim. */
export interface StoreIdentity {
  model: string;
  dim: number;
}

/** A file's size and modification time, as stat reports them. */
export interface FileStamp {
  /** Bytes. */
  size: number;
  /** Modification time in ms since the epoch (fractional where the file system keeps more). */
  mtime: number;
}

export interface ImageRow extends FileStamp {
  /** Absolute path of the image file. */
  path: string;
  /** Unit-length embedding of `dim` values. */
  vector: Float32Array;
}

export interface SearchOptions {
  /** Results to return; default 10. */
  k?: number;
  /** IVF partitions probed (ANN only); default DEFAULT_NPROBES. */
  nprobes?: number;
  /** Re-rank refineFactor × k PQ candidates on the stored vectors (ANN only); default DEFAULT_REFINE_FACTOR. */
  refineFactor?: number;
}

export interface SearchHit {
  /** 1 for the best match. */
  rank: number;
  path: string;
  /** Cosine similarity with the query, in [-1, 1]. */
  score: number;
}

/** How the table is searched after updateAnnIndex. */
export interface AnnState {
  /** 'exact': flat scan (fewer than ANN_MIN_ROWS rows); 'ivf_pq': the ANN index. */
  search: 'exact' | 'ivf_pq';
  rows: number;
  /** IVF partitions of the index (ivf_pq only). */
  partitions?: number;
  /** What this call did: trained a new index, folded changes into the old one, dropped it, or nothing. */
  action: 'trained' | 'updated' | 'dropped' | 'none';
}

type LanceDb = typeof import('@lancedb/lancedb');
type Arrow = typeof import('apache-arrow');

/** LanceDB and the Arrow build it uses, required on first use (one Arrow instance: LanceDB checks types by class). */
function load(): { lancedb: LanceDb; arrow: Arrow } {
  // optimize() reads the index statistics, which warn on stderr that they will stop carrying the
  // IVF centroids; we never read them, so take the announced behaviour now (unless set otherwise).
  process.env.LANCE_INCLUDE_VECTOR_CENTROIDS ??= 'false';
  return { lancedb: require('@lancedb/lancedb') as LanceDb, arrow: require('apache-arrow') as Arrow };
}

const SEARCH_OPTIONS: OptionKeys<SearchOptions> = { k: true, nprobes: true, refineFactor: true };

export class ImageStore {
  private constructor(
    private readonly db: Connection,
    private readonly table: Table,
    /** The database URI or folder. */
    readonly uri: string,
    /** The model the table's vectors come from. */
    readonly identity: StoreIdentity,
  ) {}

  /** Opens the image table at `uri`; undefined when there is none (nothing indexed there yet). */
  static async open(uri: string): Promise<ImageStore | undefined> {
    const db = await connect(uri);
    let table: Table, schema: Awaited<ReturnType<Table['schema']>>;
    try {
      if (!(await lanceCall(uri, 'list the tables', () => db.tableNames())).includes(TABLE_NAME)) {
        db.close();
        return undefined;
      }
      table = await lanceCall(uri, 'open the table', () => db.openTable(TABLE_NAME));
      schema = await lanceCall(uri, 'read the schema', () => table.schema());
    } catch (err) {
      db.close();
      throw err;
    }
    const model = schema.metadata.get(META_MODEL);
    const dim = Number(schema.metadata.get(META_DIM));
    const names = schema.fields.map((f) => f.name);
    const missing = ['path', 'size', 'mtime', 'vector'].filter((c) => !names.includes(c));
    if (model === undefined || !Number.isInteger(dim) || missing.length > 0) {
      table.close();
      db.close();
      throw new ClipkitError('E_FORMAT', `The table "${TABLE_NAME}" in ${uri} was not written by clipkit search (${missing.length ? `no column ${missing.join(', ')}` : `no ${META_MODEL} / ${META_DIM} metadata`}); use another --db`);
    }
    return new ImageStore(db, table, uri, { model, dim });
  }

  /** Creates an empty image table at `uri` for vectors of `identity`; fails if one exists. */
  static async create(uri: string, identity: StoreIdentity): Promise<ImageStore> {
    if (identity === null || typeof identity !== 'object' || typeof identity.model !== 'string')
      throw typeError('E_ARG', `Expected { model: string, dim: number } for identity but received ${describe(identity)}`);
    expectInt('identity.dim', identity.dim, 1);
    const { arrow } = load();
    const db = await connect(uri);
    const schema = new arrow.Schema(
      [
        new arrow.Field('path', new arrow.Utf8(), false),
        new arrow.Field('size', new arrow.Int64(), false),
        new arrow.Field('mtime', new arrow.Float64(), false),
        new arrow.Field('model', new arrow.Utf8(), false),
        new arrow.Field('dim', new arrow.Int32(), false),
        new arrow.Field('vector', new arrow.FixedSizeList(identity.dim, new arrow.Field('item', new arrow.Float32(), true)), false),
      ],
      new Map([[META_MODEL, identity.model], [META_DIM, String(identity.dim)]]),
    );
    const table = await lanceCall(uri, 'create the table', () => db.createEmptyTable(TABLE_NAME, schema));
    return new ImageStore(db, table, uri, { model: identity.model, dim: identity.dim });
  }

  /**
   * Throws E_ARG unless the table's vectors come from `model` (and `dim`, when given): embeddings of
   * two models live in different spaces and must not be compared or mixed.
   */
  checkModel(model: string, dim?: number): void {
    const have = this.identity;
    if (model !== have.model || (dim !== undefined && dim !== have.dim))
      throw new ClipkitError(
        'E_ARG',
        `The index in ${this.uri} was built with model ${JSON.stringify(have.model)} (dim ${have.dim}) but this run uses ${JSON.stringify(model)}${dim === undefined ? '' : ` (dim ${dim})`}; ` +
          `use --model ${JSON.stringify(have.model)}, or a new --db for the other model`,
      );
  }

  /** Rows in the table. */
  count(): Promise<number> {
    return lanceCall(this.uri, 'count the rows', () => this.table.countRows());
  }

  /** Every indexed path with the size and mtime it had when embedded. */
  async stamps(): Promise<Map<string, FileStamp>> {
    const rows = await lanceCall(this.uri, 'read the rows', () => this.table.query().select(['path', 'size', 'mtime']).toArray());
    return new Map(rows.map((r: { path: string; size: bigint; mtime: number }) => [r.path, { size: Number(r.size), mtime: r.mtime }]));
  }

  /**
   * The rows whose stored vector is damaged: a value that is not finite, or a length off unit by
   * more than 1e-3 (every vector is stored normalised). A data file with flipped bytes is otherwise
   * used silently: a NaN vector is never found by any search.
   */
  async damaged(): Promise<string[]> {
    const out: string[] = [];
    // Streamed batch by batch: the whole table's vectors are never in memory at once.
    await lanceCall(this.uri, 'read the vectors', async () => {
      for await (const batch of this.table.query().select(['path', 'vector'])) {
        const paths = batch.getChild('path')!, vectors = batch.getChild('vector')!;
        for (let r = 0; r < batch.numRows; r++) {
          const v = vectors.get(r) as { toArray(): Float32Array } | null;
          if (!v || !isUnitVector(v.toArray())) out.push(String(paths.get(r)));
        }
      }
    });
    return out;
  }

  /** Inserts rows, replacing those with the same path. */
  async upsert(rows: readonly ImageRow[]): Promise<void> {
    if (rows.length === 0) return;
    const { dim, model } = this.identity;
    rows.forEach((r, i) => {
      if (!(r.vector instanceof Float32Array) || r.vector.length !== dim)
        throw rangeError('E_SHAPE', `Expected rows[${i}].vector to be a Float32Array of length ${dim} (the index's dim) but received ${describe(r.vector)}`);
    });
    const { arrow } = load();
    const schema = await this.table.schema();
    const flat = new Float32Array(rows.length * dim);
    rows.forEach((r, i) => flat.set(r.vector, i * dim));
    const vectorType = schema.fields.find((f) => f.name === 'vector')!.type;
    const data = new arrow.Table(schema, {
      path: arrow.vectorFromArray(rows.map((r) => r.path), new arrow.Utf8()),
      size: arrow.vectorFromArray(rows.map((r) => BigInt(r.size)), new arrow.Int64()),
      mtime: arrow.vectorFromArray(rows.map((r) => r.mtime), new arrow.Float64()),
      model: arrow.vectorFromArray(rows.map(() => model), new arrow.Utf8()),
      dim: arrow.vectorFromArray(rows.map(() => dim), new arrow.Int32()),
      vector: arrow.makeVector(
        arrow.makeData({
          type: vectorType,
          length: rows.length,
          nullCount: 0,
          child: arrow.makeData({ type: new arrow.Float32(), length: flat.length, data: flat }),
        }),
      ),
    });
    await lanceCall(this.uri, 'write rows', () => this.table.mergeInsert('path').whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(data));
  }

  /** Deletes the rows of these paths. */
  async remove(paths: readonly string[]): Promise<void> {
    const PER_STATEMENT = 512;
    for (let i = 0; i < paths.length; i += PER_STATEMENT)
      await lanceCall(this.uri, 'delete rows', () => this.table.delete(`path IN (${paths.slice(i, i + PER_STATEMENT).map(sqlString).join(', ')})`));
  }

  /**
   * Brings the ANN index in line with the table's size, and compacts the table: below ANN_MIN_ROWS
   * rows no index (exact search); from there an IVF-PQ index, trained when missing or when the table
   * has doubled or halved since it was trained, else updated in place (new rows folded into the
   * existing partitions, deleted ones dropped).
   */
  async updateAnnIndex(): Promise<AnnState> {
    return lanceCall(this.uri, 'update the search index', () => this.updateAnnIndexUnwrapped());
  }

  private async updateAnnIndexUnwrapped(): Promise<AnnState> {
    const { lancedb } = load();
    await this.table.optimize();
    const rows = await this.table.countRows();
    const index = await this.annIndex();
    if (rows < ANN_MIN_ROWS) {
      if (index) await this.table.dropIndex(index.name);
      return { search: 'exact', rows, action: index ? 'dropped' : 'none' };
    }
    if (index && rows < 2 * index.trainedRows && 2 * rows > index.trainedRows)
      return { search: 'ivf_pq', rows, partitions: numPartitions(index.trainedRows), action: 'updated' };
    if (index) await this.table.dropIndex(index.name);
    const partitions = numPartitions(rows), dim = this.identity.dim;
    await this.table.createIndex('vector', {
      name: `${ANN_INDEX_PREFIX}${rows}`,
      config: lancedb.Index.ivfPq({
        distanceType: 'cosine',
        numPartitions: partitions,
        // 8 dimensions per 8-bit code (LanceDB's default of 16 loses too much for re-ranking to recover).
        numSubVectors: dim % 8 === 0 ? dim / 8 : undefined,
        sampleRate: TRAINING_ROWS_PER_PARTITION,
      }),
    });
    return { search: 'ivf_pq', rows, partitions, action: 'trained' };
  }

  /** The k rows nearest to `vector` by cosine similarity, best first. */
  async search(vector: Float32Array, opts: SearchOptions = {}): Promise<SearchHit[]> {
    expectOptions('search', opts, SEARCH_OPTIONS);
    const query = this.query(vector, opts);
    const rows = await lanceCall(this.uri, 'search', () => query.select(['path', '_distance']).toArray());
    // Cosine distance is 1 - similarity; float32 rounding can step just past ±1.
    return rows.map((r: { path: string; _distance: number }, i: number) => ({ rank: i + 1, path: r.path, score: Math.min(1, Math.max(-1, 1 - r._distance)) }));
  }

  /** The plan LanceDB runs for search(vector, opts): shows whether the ANN index is used. */
  explainSearch(vector: Float32Array, opts: SearchOptions = {}): Promise<string> {
    return this.query(vector, opts).explainPlan();
  }

  /** Releases the table and the connection. */
  close(): void {
    this.table.close();
    this.db.close();
  }

  private query(vector: Float32Array, opts: SearchOptions): VectorQuery {
    if (!(vector instanceof Float32Array) || vector.length !== this.identity.dim)
      throw rangeError('E_SHAPE', `Expected a query Float32Array of length ${this.identity.dim} (the index's dim) but received ${describe(vector)}`);
    if (opts === null || typeof opts !== 'object') throw typeError('E_ARG', `Expected an options object but received ${describe(opts)}`);
    return this.table
      .vectorSearch(vector)
      .column('vector')
      .distanceType('cosine')
      .nprobes(expectInt('nprobes', opts.nprobes ?? DEFAULT_NPROBES, 1))
      .refineFactor(expectInt('refineFactor', opts.refineFactor ?? DEFAULT_REFINE_FACTOR, 1))
      .limit(expectInt('k', opts.k ?? 10, 1));
  }

  private async annIndex(): Promise<{ name: string; trainedRows: number } | undefined> {
    const index = (await this.table.listIndices()).find((i) => i.columns.includes('vector') && i.name.startsWith(ANN_INDEX_PREFIX));
    return index && { name: index.name, trainedRows: Number(index.name.slice(ANN_INDEX_PREFIX.length)) };
  }
}

/** IVF partitions for `rows` rows: 256 training rows each, at most √rows (LanceDB's classic default). */
function numPartitions(rows: number): number {
  return Math.max(MIN_PARTITIONS, Math.min(Math.floor(rows / TRAINING_ROWS_PER_PARTITION), Math.ceil(Math.sqrt(rows))));
}

/** Stored vectors are unit length; a damaged one is not (NaN, infinity, or bytes that changed). */
function isUnitVector(v: Float32Array): boolean {
  let ss = 0;
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) return false;
    ss += v[i] * v[i];
  }
  return Math.abs(Math.sqrt(ss) - 1) <= 1e-3;
}

/**
 * Runs a LanceDB call, turning its errors into clipkit's: E_FORMAT where the data reads as damaged,
 * else E_IO, with the database named and the Rust source locations LanceDB appends left out.
 */
async function lanceCall<T>(uri: string, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    // Ours (argument checks) pass through; LanceDB's own carry napi codes such as GenericFailure.
    const code = (err as { code?: unknown })?.code;
    if (err instanceof ClipkitError || (typeof code === 'string' && code.startsWith('E_'))) throw err;
    const raw = err instanceof Error ? err.message : String(err);
    const message = raw.replace(/,?\s*(?:\/[\w.-]+)*\/?[\w.-]+\.rs:\d+(?::\d+)?/g, '').replace(/\s+/g, ' ').trim();
    const damaged = /corrupt|invalid|decode|parse|checksum|unexpected|malformed|out of range|not a valid|truncat|fill whole buffer|eof/i.test(raw);
    throw new ClipkitError(damaged ? 'E_FORMAT' : 'E_IO', `Cannot ${what} in the image index ${uri}${damaged ? ' (its files look damaged)' : ''}: ${message}`);
  }
}

async function connect(uri: string): Promise<Connection> {
  expectPath('uri', uri);
  const { lancedb } = load();
  try {
    return await lancedb.connect(uri);
  } catch (err) {
    throw new ClipkitError('E_IO', `Cannot open the database ${uri}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A SQL string literal (quotes doubled). */
function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
