import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { WorkflowFailedError } from '@temporalio/client';
import { loadConfig } from '../../lib/config';
import { parseSpec } from '../../lib/contracts/invalid-spec';
import {
  StorageLifecycleSpec,
  type LifecyclePlan,
  type StorageLifecycleInput,
  type StorageLifecycleResult,
} from '../../lib/contracts/storage-lifecycle';
import { listInventory, storageUsage, STORAGE_KINDS, type StorageUsage } from '../../lib/lifecycle';
import { TIERS, tieredStoreFromConfig } from '../../lib/storage';
import type { FlywheelClient } from '../../client/flywheel-client';
import { readCheckedSpec } from './pipeline';

/** 1234567 → '1.2 MB': decimal units, as storage is billed. */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let x = n;
  while (x >= 1000 && i < units.length - 1) {
    x /= 1000;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${x.toFixed(1)} ${units[i]}`;
}

function parseDays(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('a number of days ≥ 0');
  return n;
}

function collectExpire(value: string, previous: { prefix: string; afterDays: number }[] = []) {
  const at = value.lastIndexOf('=');
  if (at <= 0) throw new InvalidArgumentError('FOLDER=DAYS, e.g. hot://runs/=14');
  return [...previous, { prefix: value.slice(0, at), afterDays: parseDays(value.slice(at + 1)) }];
}

interface GcOptions {
  apply?: boolean;
  spec?: string;
  intermediatesDays?: number;
  coldDays?: number;
  expire?: { prefix: string; afterDays: number }[];
  json?: boolean;
}

/** The lifecycle spec of `storage gc` / `storage schedule create`: a spec file, or the policy flags. */
export function lifecycleSpecOf(opts: GcOptions): StorageLifecycleInput {
  const flags = opts.intermediatesDays !== undefined || opts.coldDays !== undefined || opts.expire !== undefined;
  if (opts.spec && flags)
    throw usageError('give either --spec or policy flags (--intermediates-days, --cold-days, --expire), not both');
  if (!opts.spec && !flags)
    throw usageError('give a policy: --spec FILE, or --intermediates-days, --cold-days, --expire');
  const spec: StorageLifecycleInput = opts.spec
    ? readCheckedSpec(opts.spec, 'storageLifecycle', StorageLifecycleSpec)
    : {
        policy: {
          ...(opts.intermediatesDays === undefined
            ? {}
            : { intermediates: { deleteAfterDays: opts.intermediatesDays } }),
          ...(opts.coldDays === undefined ? {} : { datasets: { coldAfterDays: opts.coldDays } }),
          ...(opts.expire === undefined ? {} : { expire: opts.expire }),
        },
      };
  // --apply turns a dry-run spec into a run that acts; without it the spec file decides.
  const checked = { ...spec, apply: opts.apply === true || spec.apply === true };
  parseSpec('storageLifecycle', StorageLifecycleSpec, checked);
  return checked;
}

/** A command line that names no policy, or two: exit code 2, like a bad spec. */
function usageError(message: string): Error {
  return Object.assign(new Error(message), { exitCode: 2 });
}

/** The plan as a person checks it: one line per folder moved or deleted, what stays and why, and the totals. */
export function describePlan(result: StorageLifecycleResult): string[] {
  const { plan, applied } = result;
  const lines = [
    `storage lifecycle ${applied ? 'applied' : 'plan (dry run; --apply carries it out)'}, ages measured from ${plan.now}`,
  ];
  for (const a of plan.actions)
    lines.push(
      `  ${(a.action === 'cold' ? 'to cold' : 'delete').padEnd(8)} ${a.target}  ${a.objects} objects, ${formatBytes(a.bytes)}` +
        (a.kept ? ` (${a.kept} kept: a manifest lists them)` : '') +
        `\n             ${a.reason}`,
    );
  for (const r of plan.retained) lines.push(`  keep     ${r.target}\n             ${r.reason}`);
  if (plan.actions.length === 0) lines.push('  nothing to move or delete');
  lines.push(totals(plan, applied));
  return lines;
}

function totals(plan: LifecyclePlan, applied: boolean): string {
  const verb = applied ? ['deleted', 'moved'] : ['would delete', 'would move'];
  return (
    `${verb[0]} ${plan.deleteObjects} objects (${formatBytes(plan.deleteBytes)}); ` +
    `${verb[1]} ${plan.coldObjects} objects (${formatBytes(plan.coldBytes)}) to cold`
  );
}

/** Bytes and objects per tier, and per kind within each tier. */
export function describeUsage(usage: StorageUsage): string[] {
  const lines = [`${'tier'.padEnd(6)} ${'kind'.padEnd(10)} ${'objects'.padStart(9)} ${'bytes'.padStart(12)}`];
  for (const tier of TIERS) {
    const t = usage.tiers[tier];
    lines.push(
      `${tier.padEnd(6)} ${'(all)'.padEnd(10)} ${String(t.objects).padStart(9)} ${formatBytes(t.bytes).padStart(12)}`,
    );
    for (const kind of STORAGE_KINDS) {
      const k = t.kinds[kind];
      if (k.objects > 0)
        lines.push(
          `${''.padEnd(6)} ${kind.padEnd(10)} ${String(k.objects).padStart(9)} ${formatBytes(k.bytes).padStart(12)}`,
        );
    }
  }
  lines.push(
    `total  ${''.padEnd(10)} ${String(usage.total.objects).padStart(9)} ${formatBytes(usage.total.bytes).padStart(12)}`,
  );
  return lines;
}

/** The innermost reason of a failed run (a refused policy, a bad spec), with the exit code scripts check. */
function lifecycleFailure(err: unknown): Error {
  if (!(err instanceof WorkflowFailedError)) return err as Error;
  // The deepest failure with a type: the activity's ApplicationFailure (its own cause is the error it mapped).
  let e: { message?: string; cause?: unknown; type?: string } = err;
  for (let c = err.cause as typeof e | undefined; c; c = c.cause as typeof e | undefined) if (c.type) e = c;
  const refused = e.type === 'LifecyclePolicyRefused' || e.type === 'InvalidSpec';
  return Object.assign(new Error(e.message ?? String(err)), { exitCode: refused ? 2 : 1 });
}

const policyOptions = (c: Command) =>
  c
    .option('--spec <file>', 'a storageLifecycle spec, a JSON file (examples/storage-lifecycle.json)')
    .option('--intermediates-days <days>', "delete committed datasets' pipeline intermediates this old", parseDays)
    .option('--cold-days <days>', 'move dataset versions nothing references to cold at this age', parseDays)
    .option('--expire <folder=days>', 'delete everything under a folder at this age (repeatable)', collectExpire)
    .option('--apply', 'carry the plan out (without it: a dry run that changes nothing)');

/** `flywheel storage gc | usage | schedule create`: the storage lifecycle. */
export function registerStorageCommands(program: Command, deps: { connect: () => Promise<FlywheelClient> }): void {
  const storage = program.command('storage').description('storage lifecycle: what is stored where, and cleaning up');
  policyOptions(storage.command('gc'))
    .description('plan (and with --apply, carry out) the lifecycle policy as a workflow: what moves to cold, what goes')
    .option('--json', 'print the result as JSON')
    .action(async (opts: GcOptions) => {
      loadConfig();
      const spec = lifecycleSpecOf(opts);
      const handle = await (await deps.connect()).startStorageLifecycle(spec);
      (opts.json ? console.error : console.log)(`started ${handle.workflowId}`);
      const result = await handle.result().catch((err: unknown) => {
        throw lifecycleFailure(err);
      });
      if (opts.json) console.log(JSON.stringify(result));
      else for (const line of describePlan(result)) console.log(line);
    });
  storage
    .command('usage')
    .description('bytes and objects per tier and per kind (datasets, pipelines, runs, models, feedback, flywheel)')
    .option('--json', 'print the usage as JSON')
    .action(async (opts: { json?: boolean }) => {
      const usage = storageUsage(await listInventory(tieredStoreFromConfig(loadConfig())));
      if (opts.json) console.log(JSON.stringify(usage));
      else for (const line of describeUsage(usage)) console.log(line);
    });
  const schedule = storage.command('schedule').description('the lifecycle as a Temporal Schedule (storage-lifecycle)');
  policyOptions(schedule.command('create'))
    .description("create the schedule: the spec's cron and time zone (default 03:00 UTC daily)")
    .option('--json', 'print {scheduleId} as JSON')
    .action(async (opts: GcOptions) => {
      loadConfig();
      const handle = await (await deps.connect()).createStorageLifecycleSchedule(lifecycleSpecOf(opts));
      const d = await handle.describe();
      if (opts.json) console.log(JSON.stringify({ scheduleId: handle.scheduleId }));
      else
        console.log(
          `created schedule ${handle.scheduleId} (${d.memo?.apply ? 'applies the policy' : 'dry runs'}); next runs ` +
            d.info.nextActionTimes
              .slice(0, 3)
              .map((t) => t.toISOString())
              .join(', '),
        );
    });
}
