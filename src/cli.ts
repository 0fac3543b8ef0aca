#!/usr/bin/env node
/** The clipkit command line. `clipkit bench` runs the kernel microbenchmarks. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ISAS } from './runtime';

function positiveInt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

export function buildProgram(): Command {
  const program = new Command('clipkit').description('CLIP-family image–text models natively from Node.js').showHelpAfterError();
  program
    .command('bench')
    .description('time each kernel at CLIP shapes against the peaks of this machine, measured in the same run')
    .option('--op <name>', 'run only this kernel (e.g. gemm, attention, layer_norm); --list-ops shows them')
    .option('--list-ops', 'print the kernels that have benchmark cases and exit')
    .option('--json', 'print one JSON object per line: { op, shape, isa, threads, median_ms, gflops|gbps, peak, ratio }')
    .option('--threads <n>', 'threads (0: one per physical core)', positiveInt('--threads'), 0)
    .addOption(new Option('--isa <isa>', 'force an instruction set').choices([...ISAS]))
    .option('--samples <n>', 'samples per case (the median is reported)', positiveInt('--samples'), 7)
    .action(async (o: { op?: string; listOps?: boolean; json?: boolean; threads: number; isa?: (typeof ISAS)[number]; samples: number }) => {
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
      const rows = await bench.runBench({
        op: o.op,
        threads: o.threads,
        isa: o.isa,
        samples: Math.max(1, o.samples),
        onRow: o.json ? (r) => console.log(JSON.stringify(r)) : (r) => process.stderr.write(`  ${r.op} ${r.shape}: ${r.median_ms} ms\n`),
      });
      if (!o.json) console.log(bench.formatTable(rows));
    });
  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: Error & { code?: string }) => {
      console.error(`clipkit: ${err.message}`);
      process.exitCode = 1;
    });
}
