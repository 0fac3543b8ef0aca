/**
 * The one reader of model weights: a model folder or a checkpoint file → its tensors under Hugging
 * Face names. loadModel (source.ts), loadClipWeights (weights.ts) and convertCheckpoint
 * (convert.ts) all read through it, so they accept the same files:
 *
 *   a folder  model.safetensors, the shards of model.safetensors.index.json, pytorch_model.bin (or
 *             model.bin), the shards of pytorch_model.bin.index.json: the first found, in that order
 *   a file    .safetensors by its extension; anything else a torch.save file (zip or legacy) or a
 *             TorchScript archive, read by io/pytorch.ts without Python
 *
 * Nothing is copied: the entries are the readers' views (tensor_entry.ts). Tensors under Hugging
 * Face names beside a config.json are kept as they are (the config gives the geometry, which for
 * AltCLIP the shapes cannot); every other checkpoint is renamed by layouts.ts, which also infers
 * the config its shapes describe.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClipkitError } from '../errors';
import { readTorchCheckpoint, TorchFormat } from '../io/pytorch';
import { readJson } from '../io/read_json';
import { ReadOptions, readSafetensors, readSafetensorsIndex } from '../io/safetensors';
import { TensorEntry } from '../io/tensor_entry';
import { GeometryOptions, HfConfigJson } from './infer_geometry';
import { CheckpointLayout, toHfLayout } from './layouts';

/** How the weights were stored. */
export type WeightFormat = TorchFormat | 'safetensors';

/** Weight files as read, their tensors under the names they were saved with. */
export interface StoredWeights {
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  /** The weight files read: one, or the shards an index names. */
  readonly files: string[];
  /** How they are stored (a torch index: its first shard's format). */
  readonly format: WeightFormat;
  /** Names the weights in messages: the one file, or the index with its number of shards. */
  readonly source: string;
}

export interface ModelWeights extends StoredWeights {
  /** Tensors under Hugging Face names. */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  /** How many tensors the files hold, under their own names. */
  readonly storedCount: number;
  readonly layout: CheckpointLayout;
  /** The config.json the shapes describe; absent when names were kept for a config.json. */
  readonly inferred?: HfConfigJson;
  /** Stored names that map to no Hugging Face name (buffers, dropped poolers, unknown keys), sorted. */
  readonly unused: string[];
}

export interface HfNameOptions extends GeometryOptions {
  /**
   * A config.json describes the model: tensors already under Hugging Face names are kept as they
   * are and no geometry is inferred. Without one the geometry always comes from the shapes.
   */
  readonly hasConfig?: boolean;
}

/** A folder's or a file's weights under Hugging Face names (see the file comment). */
export function readWeights(location: string, options: HfNameOptions = {}): ModelWeights {
  return toHfWeights(readStoredWeights(location), options);
}

/**
 * A folder's weights (the first of the files the file comment lists), or a checkpoint file's.
 * What is not a folder is read as a file, so a missing path is the file reader's E_IO naming it.
 */
export function readStoredWeights(location: string, o: ReadOptions = {}): StoredWeights {
  return isDirectory(location) ? readFolderWeights(location, o) : readWeightFile(location, o);
}

/** Tensors under Hugging Face names: kept as they are (HF names and a config.json), else renamed by layouts.ts. */
export function toHfWeights(stored: StoredWeights, options: HfNameOptions = {}): ModelWeights {
  const { hasConfig = false, ...geometry } = options;
  const storedCount = stored.tensors.size;
  if (hasConfig && stored.tensors.has('vision_model.embeddings.patch_embedding.weight'))
    return { ...stored, storedCount, layout: 'hf', unused: [] };
  const hf = toHfLayout(stored.tensors, { ...geometry, source: stored.source });
  return { ...stored, tensors: hf.tensors, storedCount, layout: hf.layout, inferred: hf.config, unused: hf.unused };
}

/**
 * One checkpoint file: `.safetensors` by its extension, anything else read as a PyTorch file.
 * `o.mapped`: files already mapped, whose tensors are then views into their mappings.
 */
export function readWeightFile(file: string, o: ReadOptions = {}): StoredWeights {
  if (path.extname(file).toLowerCase() === '.safetensors') return { tensors: readSafetensors(file, o).tensors, files: [file], format: 'safetensors', source: file };
  const ckpt = readTorchCheckpoint(file, o);
  return { tensors: ckpt.tensors, files: [file], format: ckpt.format, source: file };
}

function readFolderWeights(dir: string, o: ReadOptions): StoredWeights {
  const at = (f: string) => path.join(dir, f);
  if (fs.existsSync(at('model.safetensors'))) return readWeightFile(at('model.safetensors'), o);
  if (fs.existsSync(at('model.safetensors.index.json'))) {
    const ck = readSafetensorsIndex(dir, undefined, o);
    return sharded(ck.tensors, ck.files.map(at), 'safetensors', at('model.safetensors.index.json'));
  }
  for (const name of ['pytorch_model.bin', 'model.bin']) if (fs.existsSync(at(name))) return readWeightFile(at(name), o);
  if (fs.existsSync(at('pytorch_model.bin.index.json'))) return readTorchShards(dir, at('pytorch_model.bin.index.json'), o);
  throw new ClipkitError(
    'E_IO',
    `No weights in ${dir}: expected model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json`,
  );
}

/**
 * The weight files readStoredWeights(location) reads, without reading them: a file is itself; a
 * folder's are found in readFolderWeights' order, an index's shards named by its weight_map (first
 * listed first). For keying what was read from them (the weight cache), which checks the list
 * against the files the read reports.
 */
export function weightFileList(location: string): string[] {
  if (!isDirectory(location)) return [location];
  const at = (f: string) => path.join(location, f);
  const shards = (index: string) => {
    const map = readJson(at(index), 'weights index').weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map))
      throw new ClipkitError('E_FORMAT', `Invalid ${at(index)}: expected a weight_map object`);
    return [...new Set(Object.values(map as Record<string, unknown>).map(String))].map(at);
  };
  if (fs.existsSync(at('model.safetensors'))) return [at('model.safetensors')];
  if (fs.existsSync(at('model.safetensors.index.json'))) return shards('model.safetensors.index.json');
  for (const name of ['pytorch_model.bin', 'model.bin']) if (fs.existsSync(at(name))) return [at(name)];
  if (fs.existsSync(at('pytorch_model.bin.index.json'))) return shards('pytorch_model.bin.index.json');
  throw new ClipkitError('E_IO', `No weights in ${location}`);
}

function sharded(tensors: ReadonlyMap<string, TensorEntry>, files: string[], format: WeightFormat, index: string): StoredWeights {
  return { tensors, files, format, source: files.length === 1 ? files[0] : `${index} (${files.length} shards)` };
}

/** pytorch_model.bin.index.json: `weight_map` name → shard file; every shard read once. */
function readTorchShards(dir: string, indexPath: string, o: ReadOptions): StoredWeights {
  const map = readJson(indexPath, 'PyTorch index').weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map))
    throw new ClipkitError('E_FORMAT', `Invalid ${indexPath}: expected a weight_map object`);
  const weightMap = map as Record<string, unknown>;
  const shards = [...new Set(Object.values(weightMap))];
  const tensors = new Map<string, TensorEntry>();
  let format: TorchFormat | undefined;
  for (const shard of shards) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.'))
      throw new ClipkitError('E_FORMAT', `Invalid ${indexPath}: shard ${JSON.stringify(shard)} is not a file name in the folder`);
    const ckpt = readTorchCheckpoint(path.join(dir, shard), o);
    format ??= ckpt.format;
    for (const [name, t] of ckpt.tensors) if (weightMap[name] === shard) tensors.set(name, t);
  }
  const missing = Object.keys(weightMap).filter((n) => !tensors.has(n));
  if (missing.length) throw new ClipkitError('E_WEIGHTS', `${indexPath} lists ${missing.length} tensors its shards lack, e.g. ${missing.slice(0, 3).join(', ')}`);
  // An empty weight_map names no shard to take the format from, and holds no tensor either.
  return sharded(tensors, shards.map((s) => path.join(dir, s as string)), format ?? 'zip', indexPath);
}

function isDirectory(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
