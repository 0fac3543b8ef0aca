/** bench/markdown.ts: the sections the benches write into a markdown file, and how a rerun replaces its own. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { commandLine, commitOf, machineId, MarkerError, parseSections, renderSection, replaceSection, SectionContent, sig3, times, writeSection } from '../../bench/markdown';
import { tempDir } from '../helpers';

const Markdown = suite('bench markdown sections');

const ZEN5 = machineId({ isa: 'avx512', avx512bf16: true }, { model: 'AMD EPYC', detail: 'family 26 model 2' });
const XEON = machineId({ isa: 'amx', avx512bf16: true }, { model: 'Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz', detail: 'family 6 model 143' });

function content(machine = ZEN5, table = '| a |\n|---|\n| 1 |', kind: SectionContent['kind'] = 'model'): SectionContent {
  return { kind, machine, what: 'Towers', facts: { date: '2026-12-07', commit: 'abc1234', node: 'v20.0.0', threads: 2, command: 'node dist/bench/model.js --quick' }, table };
}
const section = (c: SectionContent) => renderSection(c);

Markdown('the machine heading and key name the CPU and the ISA in use', () => {
  assert.is(ZEN5.title, 'AMD EPYC (family 26 model 2): avx512, avx512-bf16');
  assert.is(ZEN5.key, 'amd-epyc-family-26-model-2-avx512-avx512-bf16');
  // Forced down to AVX2 the bf16 dot product is not used, and the machine counts as another one.
  assert.is(machineId({ isa: 'avx2', avx512bf16: true }, { model: 'AMD EPYC' }).title, 'AMD EPYC: avx2');
  assert.is(machineId({ isa: 'neon', avx512bf16: false }, { model: ' ' }).key, 'unknown-cpu-neon');
});

Markdown('a section: markers, heading, the facts line, the table and the command', () => {
  const s = section(content());
  const lines = s.split('\n');
  assert.is(lines[0], `<!-- bench:model machine="${ZEN5.key}" -->`);
  assert.is(lines[1], `## ${ZEN5.title}`);
  assert.ok(lines.includes('Towers: 2026-12-07, commit `abc1234`, node v20.0.0, 2 threads'), s);
  assert.ok(s.includes('| a |\n|---|\n| 1 |'), s);
  assert.ok(s.includes('```sh\nnode dist/bench/model.js --quick\n```'), s);
  assert.is(lines[lines.length - 1], '<!-- /bench:model -->');
});

Markdown('into an empty file: just the section', () => {
  assert.is(replaceSection('', 'model', ZEN5.key, section(content())), section(content()) + '\n');
  assert.is(replaceSection('\n\n', 'model', ZEN5.key, section(content())), section(content()) + '\n');
});

Markdown('no section of that kind yet: appended after the text', () => {
  const out = replaceSection('# Benchmarks\n\nintro\n\n\n', 'model', ZEN5.key, section(content()));
  assert.is(out, `# Benchmarks\n\nintro\n\n${section(content())}\n`);
});

Markdown('the same machine again: replaced in place, the text around it byte for byte', () => {
  const before = '# Benchmarks\r\n\nintro  \n\n', after = '\n\n## Running the benches\n\ntext\n';
  const file = before + section(content()) + after;
  const newer = section(content(ZEN5, '| b |\n|---|\n| 2 |'));
  const out = replaceSection(file, 'model', ZEN5.key, newer);
  assert.is(out, before + newer + after);
  assert.not.ok(out.includes('| 1 |'));
  assert.is(replaceSection(out, 'model', ZEN5.key, newer), out, 'rerunning with the same section changes nothing');
});

Markdown('a second machine: after the last section of its kind; other kinds and text untouched', () => {
  const kernels = section(content(ZEN5, '| k |', 'kernels'));
  const file = `# B\n\n${section(content())}\n\nbetween\n\n${kernels}\n\n## Running\n`;
  const xeon = section(content(XEON));
  const out = replaceSection(file, 'model', XEON.key, xeon);
  assert.is(out, `# B\n\n${section(content())}\n\n${xeon}\n\nbetween\n\n${kernels}\n\n## Running\n`);
  assert.equal(parseSections(out).map((s) => `${s.kind}/${s.key}`), [`model/${ZEN5.key}`, `model/${XEON.key}`, `kernels/${ZEN5.key}`]);
  // And the first machine's section is still replaced in place with the second one present.
  const zen = section(content(ZEN5, '| new |'));
  assert.is(replaceSection(out, 'model', ZEN5.key, zen), `# B\n\n${zen}\n\n${xeon}\n\nbetween\n\n${kernels}\n\n## Running\n`);
});

Markdown('a marker quoted inline in prose is not a marker', () => {
  const file = 'Sections sit between `<!-- bench:model machine="..." -->` and `<!-- /bench:model -->`.\n';
  assert.is(replaceSection(file, 'model', ZEN5.key, section(content())), file + '\n' + section(content()) + '\n');
});

function refuses(text: string, match: RegExp) {
  try {
    replaceSection(text, 'model', ZEN5.key, section(content()), 'BENCH.md');
  } catch (err) {
    assert.instance(err, MarkerError);
    assert.match((err as Error).message, match);
    assert.match((err as Error).message, /^BENCH\.md, line \d+: .*nothing was written/);
    return;
  }
  assert.unreachable(`accepted ${JSON.stringify(text)}`);
}

Markdown('markers that do not pair up: a clear error, not a guess', () => {
  const open = `<!-- bench:model machine="${ZEN5.key}" -->`, close = '<!-- /bench:model -->';
  refuses(`# B\n\n${open}\n## old\n\n## Running\n`, /line 3: the bench:model section opened here is never closed/);
  refuses(`# B\n${close}\n`, /line 2: .* closes a section that was not opened/);
  refuses(`${open}\nx\n${open}\ny\n${close}\n`, /line 3: bench:model opens inside the bench:model section opened at line 1/);
  refuses(`${open}\nx\n<!-- /bench:kernels -->\n`, /line 3: .* closes the bench:model section opened at line 1/);
  refuses(`a\n<!-- bench:model machine=amd-epyc -->\nb\n${close}\n`, /line 2: malformed marker/);
  refuses(`a\n<!-- bench:model machine="x"\n`, /line 2: malformed marker/);
  refuses(`${open}\n${close}\n${open}\n${close}\n`, /line 3: a second bench:model section for machine/);
});

Markdown('writeSection: creates the file, replaces in place, leaves no temp file, and writes nothing on a bad marker', () => {
  const dir = tempDir('clipkit-bench-md-');
  const file = path.join(dir, 'BENCH.md');
  writeSection(file, content());
  assert.is(fs.readFileSync(file, 'utf8'), section(content()) + '\n');
  fs.writeFileSync(file, `# B\n\n${section(content())}\n\ntail\n`);
  writeSection(file, content(ZEN5, '| z |'));
  assert.is(fs.readFileSync(file, 'utf8'), `# B\n\n${section(content(ZEN5, '| z |'))}\n\ntail\n`);
  const broken = `# B\n<!-- bench:model machine="${ZEN5.key}" -->\nno end\n`;
  fs.writeFileSync(file, broken);
  assert.throws(() => writeSection(file, content()), (e: Error) => e instanceof MarkerError);
  assert.is(fs.readFileSync(file, 'utf8'), broken);
  assert.equal(fs.readdirSync(dir), ['BENCH.md']);
});

Markdown('number formats: 3 significant digits for rates, ratios as 1.27x', () => {
  assert.equal([1234.4, 509.3, 35.24, 1.024, 0.5].map(sig3), ['1234', '509', '35.2', '1.02', '0.50']);
  assert.equal([sig3(undefined), sig3(NaN), times(undefined), times(NaN)], ['-', '-', '-', '-']);
  assert.is(times(1.2749), '1.27x');
});

Markdown('the command line: script relative to the current folder, arguments quoted where a shell needs it', () => {
  const cwd = path.resolve('/', 'repo');
  assert.is(commandLine(['node', path.join(cwd, 'dist', 'bench', 'model.js'), '--quick', '--markdown', 'BENCHMARKS.md'], [], cwd), 'node dist/bench/model.js --quick --markdown BENCHMARKS.md');
  assert.is(commandLine(['node', path.join(cwd, 'dist', 'src', 'cli.js'), 'bench', '--markdown', 'my file.md'], ['-r', 'tsx/cjs'], cwd), "node -r tsx/cjs dist/src/cli.js bench --markdown 'my file.md'");
  assert.is(commandLine(['node', path.join(cwd, 'node_modules', '.bin', 'clipkit'), 'bench'], [], cwd), 'clipkit bench');
});

Markdown('the commit: a short hash of this checkout (+dirty with tracked changes), "unknown" outside one', () => {
  assert.match(commitOf(path.join(__dirname, '..', '..', 'bench')), /^([0-9a-f]{4,}(\+dirty)?|unknown)$/);
  assert.is(commitOf(tempDir('clipkit-bench-md-')), 'unknown');
});

Markdown.run();
