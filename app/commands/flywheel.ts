import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { WorkflowHandle } from '@temporalio/client';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { loadConfig } from '../../lib/config';
import { FlywheelSpec, type FlywheelProgress, type FlywheelResult } from '../../lib/contracts/flywheel';
import type { FlywheelClient } from '../../client/flywheel-client';
import { followWorkflow } from './follow';
import { readCheckedSpec } from './pipeline';

function describeProgress(p: FlywheelProgress): string {
  return (
    `[flywheel] ${p.stage}` +
    (p.events !== undefined ? `, ${p.events} feedback events` : '') +
    (p.newDocs !== undefined ? `, ${p.newDocs} new documents` : '') +
    (p.challenger ? `, challenger run ${p.challenger}` : '')
  );
}

export function followFlywheel(handle: WorkflowHandle, print: (line: string) => void): Promise<FlywheelResult> {
  return followWorkflow<FlywheelResult, FlywheelProgress>(handle, describeProgress, print);
}

const fixed = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(4));

/** The decision and its numbers, as a person reads them. */
export function describeFlywheel(r: FlywheelResult): string[] {
  const lines = [
    `flywheel ${r.model}: ${r.decision.toUpperCase()} — ${r.events} feedback events → ${r.newDocs} new documents`,
  ];
  if (r.scores) {
    lines.push(`  metric               champion ${r.champion}   challenger ${r.challenger}`);
    for (const metric of ['heldout.valLoss', 'heldout.perplexity', 'feedback.valLoss', 'feedback.perplexity'] as const)
      lines.push(
        `  ${metric.padEnd(20)} ${fixed(r.scores.champion[metric]).padStart(11)}   ${fixed(r.scores.challenger[metric]).padStart(13)}`,
      );
  }
  for (const reason of r.reasons) lines.push(`  ${reason}`);
  lines.push(`  champion now: ${r.championAfter ?? 'none'}`);
  return lines;
}

function parseDate(value: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError('an ISO date or time, e.g. 2026-11-26T02:00:00Z');
  return d;
}

/** `flywheel flywheel ...` (one turn, approvals) and `flywheel schedule ...` (the nightly Temporal Schedule). */
export function registerFlywheelCommands(program: Command, deps: { connect: () => Promise<FlywheelClient> }): void {
  const flywheel = program
    .command('flywheel')
    .description('the data flywheel: feedback → data → challenger → gate → champion');
  flywheel
    .command('run')
    .description('run one turn of the flywheel now, from a JSON spec (examples/sample-flywheel.json)')
    .requiredOption('--spec <file>', 'the flywheel spec, a JSON file')
    .option('--wait', 'wait for the decision, showing the stage')
    .option('--json', 'print the result (or the started workflow) as JSON on stdout')
    .action(async (opts: { spec: string; wait?: boolean; json?: boolean }) => {
      loadConfig();
      const spec = readCheckedSpec(opts.spec, 'flywheelRun', FlywheelSpec);
      const client = await deps.connect();
      const handle = await client.startFlywheel(spec);
      const say = (line: string) => (opts.json ? console.error : console.log)(line);
      say(`started ${handle.workflowId}`);
      if (!opts.wait) {
        if (opts.json) console.log(JSON.stringify({ workflowId: handle.workflowId }));
        return;
      }
      const result = await followFlywheel(handle, (line) => console.error(line));
      if (opts.json) console.log(JSON.stringify(result));
      else for (const line of describeFlywheel(result)) console.log(line);
    });
  for (const [name, signal] of [
    ['approve', 'approve'],
    ['reject', 'reject'],
  ] as const)
    flywheel
      .command(`${name} <workflowId>`)
      .description(`${name} a challenger that passed the gate and waits for a human (spec.approval)`)
      .option('--by <name>', 'who decides, kept with the decision')
      .option('--note <text>', 'why, kept with the decision')
      .action(async (workflowId: string, opts: { by?: string; note?: string }) => {
        loadConfig();
        const client = await deps.connect();
        await client.client.workflow.getHandle(workflowId).signal(signal, { by: opts.by, note: opts.note });
        console.log(`${name}: sent to ${workflowId}`);
      });

  const schedule = program
    .command('schedule')
    .description("the flywheel's nightly Temporal Schedule (one per model: flywheel-<model>)");
  schedule
    .command('create')
    .description('create the schedule from a flywheel spec: its cron, time zone and catch-up window')
    .requiredOption('--spec <file>', 'the flywheel spec, a JSON file')
    .option('--json', 'print {scheduleId} as JSON')
    .action(async (opts: { spec: string; json?: boolean }) => {
      loadConfig();
      const spec = readCheckedSpec(opts.spec, 'flywheelRun', FlywheelSpec);
      const handle = await (await deps.connect()).createFlywheelSchedule(spec);
      const d = await handle.describe();
      if (opts.json) console.log(JSON.stringify({ scheduleId: handle.scheduleId }));
      else
        console.log(
          `created schedule ${handle.scheduleId}; next runs ${d.info.nextActionTimes
            .slice(0, 3)
            .map((t) => t.toISOString())
            .join(', ')}`,
        );
    });
  const onSchedule = (
    name: string,
    description: string,
    act: (handle: ReturnType<FlywheelClient['flywheelSchedule']>, opts: Record<string, unknown>) => Promise<unknown>,
    configure: (c: Command) => Command = (c) => c,
  ) =>
    configure(schedule.command(`${name} <model>`).description(description)).action(
      async (model: string, opts: Record<string, unknown>) => {
        loadConfig();
        const handle = (await deps.connect()).flywheelSchedule(model);
        const out = await act(handle, opts);
        if (out !== undefined) console.log(typeof out === 'string' ? out : JSON.stringify(out, null, 2));
      },
    );
  onSchedule(
    'describe',
    'the schedule: cron, policies, next and recent runs, paused or not',
    async (h, opts) => {
      const d = await h.describe();
      const summary = {
        scheduleId: d.scheduleId,
        cron: d.memo?.cron,
        timezone: d.spec.timezone,
        paused: d.state.paused,
        note: d.state.note,
        policies: d.policies,
        nextRuns: d.info.nextActionTimes.map((t) => t.toISOString()),
        running: d.info.runningActions.map((a) => a.workflow.workflowId),
        recent: d.info.recentActions.map((a) => ({
          scheduledAt: a.scheduledAt.toISOString(),
          workflowId: a.action.workflow.workflowId,
        })),
        skippedOverlap: d.info.numActionsSkippedOverlap,
      };
      return opts.json ? JSON.stringify(summary) : summary;
    },
    (c) => c.option('--json', 'one line of JSON'),
  );
  onSchedule(
    'pause',
    'pause the schedule',
    async (h, opts) => {
      await h.pause((opts.note as string | undefined) ?? 'paused from the command line');
      return `paused ${h.scheduleId}`;
    },
    (c) => c.option('--note <text>', 'why'),
  );
  onSchedule(
    'resume',
    'resume a paused schedule (also after a failed run paused it)',
    async (h, opts) => {
      await h.unpause((opts.note as string | undefined) ?? 'resumed from the command line');
      return `resumed ${h.scheduleId}`;
    },
    (c) => c.option('--note <text>', 'why'),
  );
  onSchedule('trigger', 'start a run now (skipped if one is running)', async (h) => {
    await h.trigger(ScheduleOverlapPolicy.SKIP);
    return `triggered ${h.scheduleId}`;
  });
  onSchedule(
    'backfill',
    'run the schedule for the times it would have fired between --start and --end',
    async (h, opts) => {
      await h.backfill({
        start: opts.start as Date,
        end: opts.end as Date,
        overlap: ScheduleOverlapPolicy.BUFFER_ONE,
      });
      return `backfilling ${h.scheduleId} from ${(opts.start as Date).toISOString()} to ${(opts.end as Date).toISOString()}`;
    },
    (c) =>
      c
        .requiredOption('--start <time>', 'first time to consider (ISO)', parseDate)
        .requiredOption('--end <time>', 'last time to consider (ISO)', parseDate),
  );
  onSchedule('delete', 'delete the schedule (runs already started go on)', async (h) => {
    await h.delete();
    return `deleted ${h.scheduleId}`;
  });
}
