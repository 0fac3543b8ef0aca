/**
 * `clipkit cache ls | rm [KEY…|--all] | prune`: the weight cache's files (loading/weight_cache.ts),
 * listed with the model each holds, its dtype, size and when it was last used; removed by key (a
 * unique prefix of the file name is enough) or all at once; pruned of what can no longer be used.
 * Each prints the total size it concerns. The folder is --dir, else the one loadModel uses.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ClipkitError } from '../errors';
import { CacheEntry, invalidReason, listCacheFiles, pruneWeightCache, Removed, removeCacheFiles, totalBytes, weightCacheFolder } from '../loading/weight_cache';
import { table } from './common';

interface FolderOptions {
  dir?: string;
  json?: boolean;
}

const DIR_HELP = 'the cache folder (default: $CLIPKIT_CACHE, else ~/.cache/clipkit/weights, or under $XDG_CACHE_HOME)';

export function registerCache(program: Command): void {
  const cache = program
    .command('cache')
    .description("the weight cache: the packed weights a model's first load writes and later loads map");

  cache
    .command('ls')
    .description('list the cache files: key, model, dtype, size, last used')
    .option('--dir <folder>', DIR_HELP)
    .option('--json', 'print one JSON object per file')
    .action(async (o: FolderOptions) => {
      const folder = folderOf(o);
      const entries = await listCacheFiles(folder);
      if (o.json) {
        for (const e of entries) console.log(JSON.stringify(entryJson(e)));
        return;
      }
      if (entries.length) console.log(table(['key', 'model', 'dtype', 'size', 'last used'], entries.map((e) => [e.id, modelOf(e), dtypeOf(e), formatBytes(e.size), formatDate(e.lastUsed)])));
      console.log(`${count(entries.length, 'file')}, ${formatBytes(totalBytes(entries))} in ${folder}`);
    });

  cache
    .command('rm')
    .description('remove cache files by key (a unique prefix is enough), or all of them')
    .argument('[key...]', 'keys as `clipkit cache ls` shows them')
    .option('--all', 'remove every cache file (and unfinished writes)')
    .option('--dir <folder>', DIR_HELP)
    .option('--json', 'print one JSON object per file removed')
    .action(async (keys: string[], o: FolderOptions & { all?: boolean }) => {
      if (!o.all && keys.length === 0) throw new ClipkitError('E_ARG', 'clipkit cache rm: name the keys to remove, or --all');
      if (o.all && keys.length) throw new ClipkitError('E_ARG', 'clipkit cache rm: give keys or --all, not both');
      const folder = folderOf(o);
      report(await removeCacheFiles(folder, { ids: keys, all: o.all }), folder, o.json === true);
    });

  cache
    .command('prune')
    .description('remove unfinished writes, damaged files and files whose model changed or vanished')
    .option('--older-than <days>', 'also remove files not used for this many days', nonNegative('--older-than'))
    .option('--dir <folder>', DIR_HELP)
    .option('--json', 'print one JSON object per file removed')
    .action(async (o: FolderOptions & { olderThan?: number }) => {
      const folder = folderOf(o);
      report(await pruneWeightCache(folder, { olderThanMs: o.olderThan === undefined ? undefined : o.olderThan * 86_400_000 }), folder, o.json === true);
    });
}

function folderOf(o: FolderOptions): string {
  const folder = weightCacheFolder(o.dir);
  if (folder === undefined) throw new ClipkitError('E_ARG', 'The weight cache is off (CLIPKIT_CACHE=off); name its folder with --dir');
  return folder;
}

function report(removed: Removed[], folder: string, json: boolean): void {
  if (json) {
    for (const r of removed) console.log(JSON.stringify(r));
    return;
  }
  for (const r of removed) console.log(`removed ${r.file} (${formatBytes(r.bytes)}): ${r.reason}`);
  console.log(`${count(removed.length, 'file')} removed, ${formatBytes(totalBytes(removed))} freed in ${folder}`);
}

function entryJson(e: CacheEntry) {
  return { key: e.id, file: e.file, model: e.key?.location ?? null, dtype: e.key?.dtype ?? null, size: e.size, lastUsed: e.lastUsed.toISOString(), ...(e.invalid && { invalid: e.invalid }) };
}

const modelOf = (e: CacheEntry) => (e.key ? e.key.location : `(${invalidReason(e)})`);
const dtypeOf = (e: CacheEntry) => (e.key ? (e.key.dtype === 'bfloat16' ? 'bf16' : 'fp32') : '');
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** Bytes in binary units, one decimal from KiB up. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** Local date and time to the minute. */
function formatDate(d: Date): string {
  const p = (v: number) => String(v).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function nonNegative(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a number of days >= 0`);
    return n;
  };
}
