/**
 * Markdown sections written by the benches themselves (`--markdown FILE` on `clipkit bench` and on
 * bench/model.ts): one section per machine and bench kind, between HTML comment markers,
 *
 *   <!-- bench:model machine="amd-epyc-family-26-model-2-avx512-avx512-bf16" -->
 *   ## AMD EPYC (family 26 model 2): avx512, avx512-bf16
 *   ...
 *   <!-- /bench:model -->
 *
 * so that a rerun on the same machine replaces its own section in place and leaves the rest of the
 * file as it was. A machine without a section yet gets one after the last section of the same kind
 * (or at the end of the file when there is none). Markers that do not pair up stop the write with an
 * error naming the line: guessing would risk overwriting text that is not a bench's.
 *
 * The number formats here are the ones the benches print to the terminal, so that a table in the
 * file reads the same as the run that produced it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// ---------------------------------------------------------------------------------------------
// Numbers

/** A rate or size to 3 significant digits (never dropping integer digits): 1234, 509, 35.2, 1.02. */
export function sig3(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** A ratio between two engines: `1.27x`. */
export function times(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}x`;
}

/** A fraction of a peak: `95.0 %`. */
export function percent(x: number): string {
  return `${(x * 100).toFixed(1)} %`;
}

// ---------------------------------------------------------------------------------------------
// Tables

/**
 * A pipe table padded to fixed widths: readable in a terminal and valid markdown. Columns whose
 * `right` flag is set are right-aligned (and marked so in the rule line).
 */
export function pipeTable(head: string[], body: string[][], right: (i: number) => boolean = () => false): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (right(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ') + ' |';
  const rule = '|' + widths.map((w, i) => (right(i) ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|';
  return [line(head), rule, ...body.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// What a section says about its run

/** The part of the addon's cpuInfo() a section names. */
export interface IsaInfo {
  isa: string;
  avx512bf16: boolean;
}

export interface MachineId {
  /** The heading text: CPU model name (with the x86 family and model where the OS gives them) and ISA. */
  title: string;
  /** The marker's machine="..." value: the title in lower case, runs of other characters as "-". */
  key: string;
}

/** x86 family and model from /proc/cpuinfo on Linux: VMs often report a bare vendor name as the model. */
function familyModel(): string | undefined {
  if (os.platform() !== 'linux') return undefined;
  let text: string;
  try {
    text = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
  const family = /^cpu family\s*:\s*(\d+)/m.exec(text)?.[1], model = /^model\s*:\s*(\d+)/m.exec(text)?.[1];
  return family && model ? `family ${family} model ${model}` : undefined;
}

/** The ISA clipkit runs, plus the bf16 dot product when that ISA uses it. */
function isaLabel(info: IsaInfo): string {
  const parts = [info.isa];
  if (info.avx512bf16 && (info.isa === 'avx512' || info.isa === 'amx')) parts.push('avx512-bf16');
  return parts.join(', ');
}

/** The CPU's model name as the OS reports it, and where known its family and model numbers. */
export interface CpuName {
  model: string;
  detail?: string;
}

export function hostCpu(): CpuName {
  return { model: os.cpus()[0]?.model ?? '', detail: familyModel() };
}

export function machineId(info: IsaInfo, cpu: CpuName = hostCpu()): MachineId {
  const name = cpu.model.replace(/\s+/g, ' ').trim() || 'unknown CPU';
  const title = `${name}${cpu.detail ? ` (${cpu.detail})` : ''}: ${isaLabel(info)}`;
  return { title, key: slug(title) };
}

export function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/** The folder holding clipkit's package.json above `start` (bench/ in the sources, dist/bench/ compiled). */
function packageRoot(start: string): string | undefined {
  for (let dir = start; ; dir = path.dirname(dir)) {
    try {
      if (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name === 'clipkit') return dir;
    } catch {
      // not here; keep climbing
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

function git(cwd: string, ...args: string[]): string | undefined {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/**
 * The commit of the code that ran: `git rev-parse --short HEAD` of clipkit's own checkout, with
 * "+dirty" when tracked files differ from it; "unknown" outside a checkout, including a clipkit
 * installed inside another project's repository (that repository's commit would say nothing).
 */
export function commitOf(start = __dirname): string {
  const root = packageRoot(start);
  const top = root && git(root, 'rev-parse', '--show-toplevel');
  if (!root || !top || fs.realpathSync(top) !== fs.realpathSync(root)) return 'unknown';
  const head = git(root, 'rev-parse', '--short', 'HEAD');
  if (!head) return 'unknown';
  const status = git(root, 'status', '--porcelain', '--untracked-files=no');
  return status ? `${head}+dirty` : head;
}

/** One word of a command line as a POSIX shell would need it written. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that is running, as it could be typed again from the current folder: node's own
 * options, the script relative to the current folder (`clipkit` for the installed bin), its
 * arguments.
 */
export function commandLine(argv = process.argv, execArgv = process.execArgv, cwd = process.cwd()): string {
  const script = argv[1] ?? '';
  const rel = path.relative(cwd, script);
  const program = path.basename(script) === 'clipkit' ? ['clipkit'] : ['node', ...execArgv, rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : path.basename(script)];
  return [...program, ...argv.slice(2)].map(shellWord).join(' ');
}

export interface RunFacts {
  date: string; // UTC, YYYY-MM-DD
  commit: string;
  node: string;
  threads: number;
  command: string;
}

/** The facts of the run in progress. */
export function runFacts(threads: number, now = new Date()): RunFacts {
  return { date: now.toISOString().slice(0, 10), commit: commitOf(), node: process.version, threads, command: commandLine() };
}

// ---------------------------------------------------------------------------------------------
// Sections

/** The bench kinds that write sections; the marker name is `bench:<kind>`. */
export type SectionKind = 'model' | 'kernels';

export interface SectionContent {
  kind: SectionKind;
  machine: MachineId;
  /** What was measured, leading the facts line: "Towers", "Kernels". */
  what: string;
  facts: RunFacts;
  table: string;
  /** Lines printed under the table (how to read it, what did not run). */
  notes?: string[];
}

export function openMarker(kind: string, key: string): string {
  return `<!-- bench:${kind} machine="${key}" -->`;
}
export function closeMarker(kind: string): string {
  return `<!-- /bench:${kind} -->`;
}

/** A whole section, markers included, without a trailing newline. */
export function renderSection(s: SectionContent): string {
  const f = s.facts;
  return [
    openMarker(s.kind, s.machine.key),
    `## ${s.machine.title}`,
    '',
    `${s.what}: ${f.date}, commit \`${f.commit}\`, node ${f.node}, ${f.threads} thread${f.threads === 1 ? '' : 's'}`,
    '',
    s.table,
    ...(s.notes?.length ? ['', ...s.notes] : []),
    '',
    '```sh',
    f.command,
    '```',
    closeMarker(s.kind),
  ].join('\n');
}

interface Marked {
  kind: string;
  key: string;
  start: number; // offset of the opening marker
  end: number; // offset just past the closing marker
}

/**
 * A line that starts like a bench marker, well-formed or not: each must parse exactly. Only lines
 * that start with one count, so prose can quote a marker inline (in backticks) without opening a section.
 */
const LOOSE = /^[ \t]*<!--\s*\/?\s*bench:[^\r\n]*/gm;
const OPEN = /^<!-- bench:([a-z][a-z0-9_-]*) machine="([a-z0-9-]+)" -->$/;
const CLOSE = /^<!-- \/bench:([a-z][a-z0-9_-]*) -->$/;

export class MarkerError extends Error {
  override name = 'MarkerError';
}

/** Every bench section of `text`, in order; throws a MarkerError when the markers do not pair up. */
export function parseSections(text: string, file = 'the file'): Marked[] {
  const lineOf = (offset: number) => text.slice(0, offset).split('\n').length;
  const fail = (offset: number, why: string): never => {
    throw new MarkerError(`${file}, line ${lineOf(offset)}: ${why}; fix or remove the bench markers there and run again (nothing was written)`);
  };
  const sections: Marked[] = [];
  let open: { kind: string; key: string; start: number } | undefined;
  for (const m of text.matchAll(LOOSE)) {
    const at = m.index!, marker = m[0].trim();
    const o = OPEN.exec(marker), c = CLOSE.exec(marker);
    if (!o && !c) fail(at, `malformed marker ${JSON.stringify(marker)} (expected ${openMarker('<kind>', '<machine>')} or ${closeMarker('<kind>')})`);
    if (o) {
      if (open) fail(at, `bench:${o[1]} opens inside the bench:${open.kind} section opened at line ${lineOf(open.start)}`);
      open = { kind: o[1], key: o[2], start: at };
    } else {
      if (!open) fail(at, `${marker} closes a section that was not opened`);
      if (c![1] !== open!.kind) fail(at, `${marker} closes the bench:${open!.kind} section opened at line ${lineOf(open!.start)}`);
      if (sections.some((s) => s.kind === open!.kind && s.key === open!.key))
        fail(open!.start, `a second bench:${open!.kind} section for machine "${open!.key}"`);
      sections.push({ ...open!, end: at + m[0].length });
      open = undefined;
    }
  }
  if (open) fail(open.start, `the bench:${open.kind} section opened here is never closed`);
  return sections;
}

/**
 * `text` with `section` (a rendered section of `kind` for machine `key`) in place of that machine's
 * section; else after the last section of the same kind; else appended. Text outside the replaced
 * section is kept byte for byte.
 */
export function replaceSection(text: string, kind: SectionKind, key: string, section: string, file?: string): string {
  const sections = parseSections(text, file).filter((s) => s.kind === kind);
  const same = sections.find((s) => s.key === key);
  if (same) return text.slice(0, same.start) + section + text.slice(same.end);
  const last = sections[sections.length - 1];
  if (last) return text.slice(0, last.end) + '\n\n' + section + text.slice(last.end);
  if (text.trim() === '') return section + '\n';
  return text.trimEnd() + '\n\n' + section + '\n';
}

/** Writes `data` to `file` through a temp file in the same folder and a rename: readers see the old file or the new one, never a part. */
export function writeAtomic(file: string, data: string): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  let mode: number | undefined;
  try {
    mode = fs.statSync(file).mode & 0o777;
  } catch {
    // a new file: the default mode
  }
  try {
    fs.writeFileSync(tmp, data, mode === undefined ? undefined : { mode });
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** The text of `file`, or '' when there is none yet. */
function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** Throws (a MarkerError) now if `file`'s markers would stop writeSection later: checked before a long run, not after it. */
export function checkSectionFile(file: string): void {
  parseSections(readOrEmpty(file), file);
}

/** Puts the section into `file` (created when missing), replacing this machine's section of that kind. */
export function writeSection(file: string, s: SectionContent): void {
  writeAtomic(file, replaceSection(readOrEmpty(file), s.kind, s.machine.key, renderSection(s), file));
}
