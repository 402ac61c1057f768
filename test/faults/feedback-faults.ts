import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FlywheelClient } from '../../client/flywheel-client';
import { parseFeedbackPartitionUri } from '../../lib/feedback';
import { feedbackLedgerId, type FeedbackEvent } from '../../lib/contracts/feedback';
import { feedbackIdsInStorage } from '../support/feedback-storage';
import { startS3Gate } from '../support/s3-gate';
import type { TestS3Server } from '../support/s3-server';
import { s3WarmTier, scenarioSetup, type FaultContext } from './context';
import { recoveredAfter, sleep, type Scenario } from './harness';
import { startWorker, type WorkerProcess } from '../support/worker-process';

/** A far-off day: its ledgers stay open for the whole suite. */
const DAY = '2093-03-01';

function feedbackEvent(n: number): FeedbackEvent {
  return {
    id: `evt-${DAY}-${n}`,
    ts: `${DAY}T${String(n % 24).padStart(2, '0')}:15:00.000Z`,
    modelVersion: 'faults-v1',
    prompt: `question ${n}`,
    response: `answer ${n}`,
    rating: n % 2 === 0 ? { thumbs: 'up' } : { thumbs: 'down' },
    user: createHash('sha256')
      .update(`user-${n % 7}`)
      .digest('hex'),
  };
}

const events = (from: number, count: number) => Array.from({ length: count }, (_, i) => feedbackEvent(from + i));

/**
 * SIGKILL of the worker while a ledger flushes a partition to warm (S3): the object is stored but the worker never
 * hears so. A second wave, with 100 ids of the first resubmitted, goes in while no worker runs. The retried flush
 * rewrites the same object: every id is in storage exactly once.
 */
export function feedbackFlushKilled(ctx: FaultContext, s3: TestS3Server): Scenario {
  return {
    name: 'worker SIGKILL during a feedback flush',
    async run() {
      const gate = await startS3Gate(s3.endpoint);
      let first: WorkerProcess | undefined;
      let second: WorkerProcess | undefined;
      try {
        const warm = await s3WarmTier(s3, `faults-feedback-${Date.now().toString(36)}`, gate.endpoint);
        const setup = scenarioSetup(ctx, 'kill-flush', warm);
        const flywheel = new FlywheelClient(ctx.client, {
          taskQueuePrefix: setup.config.worker.taskQueuePrefix,
          feedback: { ledger: { flushIntervalMs: 200 } },
        });
        const wave1 = events(0, 2000);
        const wave2 = [...events(1900, 100), ...events(2000, 500)];
        const held = gate.holdNext(new RegExp(`/feedback/${DAY}/`));
        first = startWorker(setup.env);
        await first.ready;
        assert.equal((await flywheel.submitFeedback(wave1)).accepted, 2000);

        const heldPath = await held;
        await first.kill();
        const killedAt = Date.now();
        gate.releaseHeld();
        const secondWave = flywheel.submitFeedback(wave2);
        await sleep(1000);
        second = startWorker(setup.env);
        const receipt = await secondWave;
        assert.deepEqual([receipt.accepted, receipt.duplicates], [500, 100]);

        const ledgers = [0, 1, 2, 3].map((shard) => feedbackLedgerId(DAY, shard));
        await flywheel.waitFeedbackFlushed(ledgers, 120_000);
        const { counts } = await feedbackIdsInStorage(setup.store);
        const expected = new Set([...wave1, ...wave2].map((e) => e.id));
        assert.deepEqual(
          [...expected].filter((id) => counts.get(id) !== 1),
          [],
          'every id is in storage exactly once: none lost, none doubled',
        );
        assert.equal(counts.size, expected.size);
        assert.ok(
          gate.puts.filter((p) => p === heldPath).length >= 2,
          'the killed flush was retried and rewrote the same object',
        );
        const shard = parseFeedbackPartitionUri(
          `warm://${heldPath.split('?')[0].slice(heldPath.indexOf('feedback/'))}`,
        )?.shard;
        assert.ok(shard !== undefined, `the held write ${heldPath} is a feedback partition`);
        const ledger = ctx.client.workflow.getHandle(feedbackLedgerId(DAY, shard));
        return {
          outcome: `${expected.size} event ids each stored exactly once (100 resubmitted)`,
          recoverSeconds: await recoveredAfter(ledger, 'flushFeedback', killedAt),
        };
      } finally {
        await first?.kill();
        await second?.stop();
        await gate.close();
      }
    },
  };
}
