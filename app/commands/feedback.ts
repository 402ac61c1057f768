import * as fs from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { forEachLimit } from '../../lib/common';
import { loadConfig } from '../../lib/config';
import { validateFeedbackBatch, type FeedbackProblem } from '../../lib/contracts/feedback';
import type { FeedbackReceipt } from '../../client/feedback';

/** Submits at once; a small pool keeps a large file moving without flooding the server. */
const PARALLEL_SUBMITS = 4;

export interface FeedbackLineProblem extends FeedbackProblem {
  /** 1-based line number in the file. */
  line: number;
}

/**
 * The events of a JSON-lines file (blank lines skipped) and every problem with them, by line. `index` is the line's
 * 0-based position in the file, so it points at the same line as `line`.
 */
export function readFeedbackLines(
  text: string,
  maxEventBytes: number,
): { events: unknown[]; problems: FeedbackLineProblem[] } {
  const events: unknown[] = [];
  const lineOf: number[] = [];
  const problems: FeedbackLineProblem[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    try {
      events.push(JSON.parse(line));
      lineOf.push(index);
    } catch (err) {
      problems.push({ index, line: index + 1, field: '(line)', message: `not valid JSON: ${(err as Error).message}` });
    }
  });
  for (const p of validateFeedbackBatch(events, { maxEventBytes })) {
    const index = lineOf[p.index];
    problems.push({ ...p, index, line: index + 1 });
  }
  problems.sort((a, b) => a.index - b.index);
  return { events, problems };
}

function parseBatch(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new InvalidArgumentError('a whole number from 1 to 100000');
  return n;
}

async function submitFile(file: string, opts: { json?: boolean; batch: number }): Promise<void> {
  const config = loadConfig();
  const feedback = config.feedback;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw Object.assign(new Error(`cannot read ${file}: ${(err as Error).message}`), { exitCode: 2 });
  }
  const { events, problems } = readFeedbackLines(text, feedback.maxEventBytes);
  if (problems.length > 0) {
    const lines = new Set(problems.map((p) => p.line)).size;
    if (opts.json) console.log(JSON.stringify({ ok: false, file, submitted: 0, problems }));
    else for (const p of problems) console.error(`${file}:${p.line}: ${p.field}: ${p.message}`);
    throw Object.assign(
      new Error(`${file}: ${lines} bad line${lines === 1 ? '' : 's'}; nothing submitted. Fix them and run again.`),
      { exitCode: 2 },
    );
  }
  // The SDK (and its native bridge) loads only once the file is known to be good.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { connectClient } =
    require('../../temporal/client-connection') as typeof import('../../temporal/client-connection');
  const { FlywheelClient } = require('../../client/flywheel-client') as typeof import('../../client/flywheel-client');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const client = await connectClient(config);
  try {
    const flywheel = new FlywheelClient(client, { taskQueuePrefix: config.worker.taskQueuePrefix, feedback });
    const batches: unknown[][] = [];
    for (let i = 0; i < events.length; i += opts.batch) batches.push(events.slice(i, i + opts.batch));
    const total: FeedbackReceipt = { accepted: 0, duplicates: 0, ledgers: [] };
    const ledgers = new Set<string>();
    await forEachLimit(batches, PARALLEL_SUBMITS, async (batch) => {
      const receipt = await flywheel.submitFeedback(batch);
      total.accepted += receipt.accepted;
      total.duplicates += receipt.duplicates;
      for (const l of receipt.ledgers) ledgers.add(l);
    });
    total.ledgers = [...ledgers].sort();
    if (opts.json) console.log(JSON.stringify({ ok: true, file, submitted: events.length, ...total }));
    else
      console.log(
        `${file}: ${events.length} events submitted: ${total.accepted} accepted, ${total.duplicates} duplicates ` +
          `dropped, in ${total.ledgers.length} ledger${total.ledgers.length === 1 ? '' : 's'} (${total.ledgers.join(', ')})`,
      );
  } finally {
    await client.connection.close();
  }
}

export function registerFeedbackCommands(program: Command): void {
  const feedback = program
    .command('feedback')
    .description('user feedback from services, kept durably in daily ledger workflows');
  feedback
    .command('submit')
    .description(
      'submit a JSON-lines file of feedback events; every line is checked first and nothing is sent unless all are good',
    )
    .argument('<file>', 'one event per line (see the Feedback section of README.md)')
    .option('--batch <n>', 'events per submit call', parseBatch, 500)
    .option('--json', 'print the receipt (or the problems) as JSON on stdout')
    .action((file: string, opts: { json?: boolean; batch: number }) => submitFile(file, opts));
}
