#!/usr/bin/env node
/**
 * The clipkit command line: one file per command under src/cli/ (classify, embed, search, eval,
 * convert, cache, serve), and `clipkit bench` for the kernel microbenchmarks.
 */
import { Command, Option } from 'commander';
import { registerCache } from './cli/cache';
import { registerClassify } from './cli/classify';
import { positiveInt, table } from './cli/common';
import { registerConvert } from './cli/convert';
import { registerEmbed } from './cli/embed';
import { registerEval } from './cli/eval';
import { registerSearch } from './cli/search';
import { registerServe } from './cli/serve';
import { loadModel } from './models';
import { cpuInfo, ISAS, setIsa } from './runtime';

export function buildProgram(): Command {
  const program = new Command('clipkit').description('CLIP-family image–text models natively from Node.js').showHelpAfterError();
  registerClassify(program);
  registerConvert(program);
  registerEmbed(program);
  registerEval(program);
  registerSearch(program);
  registerServe(program);
  registerCache(program);
  registerBench(program);
  return program;
}

function registerBench(program: Command): void {
  program
    .command('bench')
    .description('time each kernel at CLIP shapes against the peaks of this machine, measured in the same run')
    .option('--op <name>', 'run only this kernel (e.g. gemm, attention, layer_norm); --list-ops shows them')
    .option('--list-ops', 'print the kernels that have benchmark cases and exit')
    .option('--json', 'print one JSON object per line: { op, shape, isa, threads, median_ms, gflops|gbps, peak, ratio }')
    .option('--threads <n>', 'threads (0: one per physical core)', positiveInt('--threads', 0), 0)
    .addOption(new Option('--isa <isa>', 'force an instruction set').choices([...ISAS]))
    .option('--samples <n>', 'samples per case (the median is reported)', positiveInt('--samples', 0), 7)
    .option('--model <id|dir>', 'instead of the kernels: whole-tower throughput of this model (images/s, texts/s at batch 1 and --batch-size)')
    .option('--batch-size <n>', 'with --model: the larger batch', positiveInt('--batch-size'), 8)
    .addOption(new Option('--dtype <dtype>', 'with --model: weights in the GEMMs').choices(['fp32', 'bf16']).default('fp32'))
    .option('--markdown <file>', "also write the table as this machine's section of a markdown file, replacing the one an earlier run on this machine wrote there")
    .action(async (o: { op?: string; listOps?: boolean; json?: boolean; threads: number; isa?: (typeof ISAS)[number]; samples: number; model?: string; batchSize: number; dtype: 'fp32' | 'bf16'; markdown?: string }) => {
      if (o.model !== undefined && o.markdown !== undefined) {
        console.error('clipkit bench: --markdown writes the kernel table; it does not apply to --model');
        process.exitCode = 2;
        return;
      }
      if (o.model !== undefined) return benchModel(o.model, o);
      // The bench harness is compiled next to src/ (dist/bench); loaded lazily so other commands stay light.
      const bench = require('../bench/index') as typeof import('../bench/index');
      if (o.listOps) {
        console.log((await bench.listOps()).join('\n'));
        return;
      }
      const known = await bench.listOps();
      if (o.op && !known.some((k) => bench.matchesOp(k, o.op))) {
        console.error(`clipkit bench: no kernel named ${o.op}; known: ${known.join(', ')}`);
        process.exitCode = 2;
        return;
      }
      if (o.markdown !== undefined) bench.checkSectionFile(o.markdown);
      const rows = await bench.runBench({
        op: o.op,
        threads: o.threads,
        isa: o.isa,
        samples: Math.max(1, o.samples),
        onRow: o.json ? (r) => console.log(JSON.stringify(r)) : (r) => process.stderr.write(`  ${r.op} ${r.shape}: ${r.median_ms} ms\n`),
      });
      if (!o.json) console.log(bench.formatTable(rows));
      if (o.markdown !== undefined) bench.writeMarkdown(o.markdown, rows);
    });
}

async function benchModel(name: string, o: { json?: boolean; threads: number; isa?: (typeof ISAS)[number]; samples: number; batchSize: number; dtype: 'fp32' | 'bf16' }): Promise<void> {
  const { towerThroughput } = require('../bench/throughput') as typeof import('../bench/throughput');
  if (o.isa) setIsa(o.isa);
  const model = await loadModel(name, { threads: o.threads || undefined, batchSize: o.batchSize, dtype: o.dtype, progress: process.stderr.isTTY === true });
  const rows = await towerThroughput(model, Math.max(1, o.samples));
  if (o.json) for (const r of rows) console.log(JSON.stringify({ model: name, dtype: o.dtype, isa: cpuInfo().isa, threads: cpuInfo().threads, ...r }));
  else
    console.log(table(['tower', 'batch', 'ms / batch', 'items/s', 'tokens'], rows.map((r) => [r.tower, r.batch, r.median_ms.toFixed(2), r.items_per_s.toFixed(1), r.tokens?.toFixed(1) ?? ''])));
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: Error & { code?: string }) => {
      console.error(`clipkit: ${err.message}`);
      process.exitCode = 1;
    });
}
