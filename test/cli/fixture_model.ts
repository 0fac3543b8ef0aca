/** Complete model folders for command-line tests: a copy of a tiny model's folder (weights, configs, tokenizer). */
import { copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync, SpawnSyncReturns } from 'node:child_process';
import { modelDir, TinyName } from '../models/reference';
import { REF_IMAGES } from '../reference_fixtures';
import { tempDir } from '../helpers';

export const ROOT = join(__dirname, '..', '..');
export const IMAGES = REF_IMAGES;

/** A fresh folder holding everything loadModel needs for `name` (weights, configs, tokenizer). */
export function modelFolder(name: TinyName): string {
  const dir = tempDir(`clipkit-${name}-`);
  for (const f of readdirSync(modelDir(name))) copyFileSync(join(modelDir(name), f), join(dir, f));
  return dir;
}

const CLI = [process.execPath, '-r', 'tsx/cjs', join(ROOT, 'src', 'cli.ts')];

/** Runs `clipkit args…` to completion (stdout/stderr are pipes, so no progress bars). */
export function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(CLI[0], [...CLI.slice(1), ...args], {
    cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, input: opts.input, encoding: 'utf8', timeout: 300_000,
  });
}

/** Runs `clipkit args…` without blocking this process's event loop (needed when it serves the child). */
export function cliRun(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = cliAsync(args, opts);
  let stdout = '', stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

/** Starts `clipkit args…` without waiting (to kill it part way). */
export function cliAsync(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return spawn(CLI[0], [...CLI.slice(1), ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
}
