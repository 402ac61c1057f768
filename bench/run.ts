import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatTable, runBenchmark, type Benchmark, type BenchmarkResult } from './harness';
import { storageBenchmarks } from './storage.bench';

/** `npm run bench [-- name-filter]`: every registered benchmark, a table on stdout, the numbers in a JSON file. */
async function main() {
  const filter = process.argv[2];
  const all: Benchmark[] = [...storageBenchmarks()];
  const selected = filter ? all.filter((b) => b.name.includes(filter)) : all;
  const results: BenchmarkResult[] = [];
  for (const b of selected) {
    process.stderr.write(`running: ${b.name}\n`);
    results.push(await runBenchmark(b));
  }
  console.log(formatTable(results));
  const out = path.resolve(process.env.FLYWHEEL_HOME ?? '.flywheel', 'bench', 'results.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const record = {
    at: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
    },
    results,
  };
  fs.writeFileSync(out, JSON.stringify(record, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(process.cwd(), out)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
