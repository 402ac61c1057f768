import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Client, Connection } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect';
import type { PipelineInput } from '../lib/contracts/pipeline';
import type { ArtifactRef } from '../lib/contracts/pipeline-results';
import { readManifest, tieredStoreFromConfig } from '../lib/storage';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { temporalAddress, testConfig } from './support/temporal';

/**
 * JSON lines files of real prose (paragraphs of the bundled corpus, so most pass the quality filters): one large,
 * one medium that repeats some of the large one's paragraphs (exact dedup across batches), a gzipped one and a
 * small one.
 */
function makeCorpus(dir: string): void {
  const paragraphs = sampleCorpus('moby-dick')
    .documents.flatMap((d) => d.text.split(/\n\s*\n/))
    .map((p) => p.replace(/\s+/g, ' ').trim())
    .filter((p) => p.length > 200);
  const texts = Array.from({ length: Math.floor(paragraphs.length / 4) }, (_, i) =>
    paragraphs.slice(4 * i, 4 * i + 4).join('\n\n'),
  );
  const jsonl = (ts: string[], from: number) =>
    ts.map((text, i) => JSON.stringify({ id: `p${from + i}`, text })).join('\n') + '\n';
  const large = texts.slice(0, 100);
  fs.writeFileSync(path.join(dir, 'a-large.jsonl'), jsonl(large, 0));
  const medium = [...texts.slice(100, 125), ...large.slice(10, 20)];
  fs.writeFileSync(path.join(dir, 'b-medium.jsonl'), jsonl(medium, 1000).replace(/\n/g, '\r\n'));
  fs.writeFileSync(path.join(dir, 'c-packed.jsonl.gz'), gzipSync(jsonl(texts.slice(125, 140), 2000)));
  fs.writeFileSync(path.join(dir, 'd-small.jsonl'), jsonl(texts.slice(140, 142), 3000));
}

describe('the data pipeline with collection units by bytes', () => {
  let connection: Connection;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let flywheel: FlywheelClient;
  const inputs = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-units-'));

  before(async () => {
    makeCorpus(inputs);
    const address = await temporalAddress();
    config = testConfig(address);
    workers = await createWorkers(config);
    running = workers.run();
    connection = await Connection.connect({ address });
    flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: config.worker.taskQueuePrefix });
  });

  after(async () => {
    await workers.shutdown();
    await running;
    await connection.close();
    fs.rmSync(inputs, { recursive: true, force: true });
  });

  const spec = (dataset: string, unitBytes: number): PipelineInput => ({
    dataset,
    sources: [{ type: 'path', path: inputs }],
    shards: { targetBytes: 64 * 1024, validationFraction: 0.1 },
    unitBytes,
  });

  /** How many times each stage activity ran, and the shards the dataset lists (by name, sha256 and size). */
  async function run(input: PipelineInput) {
    const handle = await flywheel.startPipeline(input);
    const summary = await handle.result();
    const scheduled = ((await handle.fetchHistory()).events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter((name): name is string => Boolean(name));
    const count = (name: string) => scheduled.filter((n) => n === name).length;
    const store = tieredStoreFromConfig(config);
    const shards = async (manifest: ArtifactRef) =>
      (await readManifest(store, manifest)).objects.map((o) => `${path.basename(o.uri)} ${o.sha256} ${o.bytes}`);
    return {
      summary,
      collect: count('collectBatch'),
      filter: count('filterBatch'),
      shards: await shards(summary.manifest),
    };
  }

  it('cuts large files into several batches and writes the dataset one batch writes, byte for byte', async (t) => {
    const corpusBytes = fs.readdirSync(inputs).reduce((n, f) => n + fs.statSync(path.join(inputs, f)).size, 0);
    const unitBytes = 48 * 1024;
    const many = await run(spec('units-small', unitBytes));
    const one = await run(spec('units-huge', 1024 * 1024 * 1024));

    t.diagnostic(
      `${corpusBytes} bytes: ${many.collect} batches at ${unitBytes} bytes, ${one.collect} at 1 GiB; ` +
        `${many.summary.documents} documents in ${many.shards.length} shards`,
    );
    assert.equal(one.collect, 1);
    assert.ok(many.collect >= Math.floor(corpusBytes / unitBytes), `${many.collect} collect batches`);
    assert.equal(many.filter, many.collect, 'filtering follows the collect batches');
    assert.ok(many.summary.documents > 100, JSON.stringify(many.summary.stages));
    assert.ok((many.summary.stages.dedup?.dropped['dedup.exact'] ?? 0) >= 5, 'repeats across files are dropped');
    assert.deepEqual(many.summary.stages, one.summary.stages);
    assert.equal(many.summary.tokens, one.summary.tokens);
    assert.ok(many.shards.length >= 2);
    assert.deepEqual(many.shards, one.shards);
  });
});
