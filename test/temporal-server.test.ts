import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { findTemporalCli, startDevServer } from '../temporal/dev-server';
import { createWorkers } from '../worker/workers';
import { FlywheelClient } from '../client/flywheel-client';
import { testConfig } from './support/temporal';

describe('the Temporal dev server helper', () => {
  it('prefers $TEMPORAL_CLI and rejects one that is not executable', async () => {
    await assert.rejects(
      findTemporalCli({ env: { TEMPORAL_CLI: '/nonexistent/temporal', PATH: '' } }),
      /TEMPORAL_CLI=\/nonexistent\/temporal is not an executable/,
    );
  });

  it('finds the CLI on PATH', async (t) => {
    const found = await findTemporalCli().catch(() => undefined);
    if (!found || found.source === 'sdk-download') return t.skip('no temporal CLI installed on this machine');
    assert.ok(fs.existsSync(found.path));
  });

  it('keeps workflow history across a kill -9 and restart on the same SQLite file', { timeout: 180_000 }, async (t) => {
    const cli = await findTemporalCli().catch(() => undefined);
    if (!cli) return t.skip('no temporal CLI: the SDK fallback server cannot be restarted on its file');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-restart-'));
    const dbFile = path.join(dir, 'temporal.db');
    let server = await startDevServer({ cli, dbFile });
    const config = testConfig(server.address);

    // A finished run, and a run left waiting because no worker serves it yet.
    let workers = await createWorkers(config);
    let running = workers.run();
    let connection = await Connection.connect({ address: server.address });
    let flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: config.worker.taskQueuePrefix });
    const done = await flywheel.startStorageCheck({ name: 'before-crash', objects: 2, objectBytes: 4096 });
    await done.result();
    const historyBefore = await done.fetchHistory();
    await workers.shutdown();
    await running;
    const pending = await flywheel.startStorageCheck({ name: 'across-crash', objects: 3, objectBytes: 4096 });
    await connection.close();

    await server.kill();
    server = await startDevServer({ cli, dbFile });
    t.after(() => server.stop());
    const restarted = testConfig(server.address, {
      FLYWHEEL_TASK_QUEUE_PREFIX: config.worker.taskQueuePrefix,
      FLYWHEEL_HOME: config.home,
    });

    connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection });
    t.after(() => connection.close());
    const historyAfter = await client.workflow.getHandle(done.workflowId).fetchHistory();
    assert.equal(historyAfter.events?.length, historyBefore.events?.length);
    assert.deepEqual(
      historyAfter.events?.map((e) => e.eventType),
      historyBefore.events?.map((e) => e.eventType),
    );
    const described = await client.workflow.getHandle(done.workflowId).describe();
    assert.equal(described.status.name, 'COMPLETED');

    // The run that was waiting survives too, and completes once a worker comes.
    workers = await createWorkers(restarted);
    running = workers.run();
    flywheel = new FlywheelClient(client, { taskQueuePrefix: config.worker.taskQueuePrefix });
    const result = await client.workflow.getHandle(pending.workflowId).result();
    assert.equal(result.objects, 3);
    await workers.shutdown();
    await running;
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
