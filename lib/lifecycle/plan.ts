import type { LifecycleAction, LifecyclePlan, LifecyclePolicy } from '../contracts/storage-lifecycle';
import { LifecyclePolicyRefused, type LifecycleConflict } from './errors';
import type { StoredObject } from './inventory';
import type { ReferenceGraph } from './references';

/** An action with the objects it touches (deleted, or moved to cold), which a plan's summary leaves out. */
export interface PlannedAction extends LifecycleAction {
  uris: string[];
}

export interface PlannedLifecycle extends Omit<LifecyclePlan, 'actions'> {
  actions: PlannedAction[];
}

const DAY_MS = 86_400_000;
const RUN_FOLDER = /^pipelines\/([^/]+)\/([^/]+)\/([^/]+)\//;

/**
 * What a policy does to the store as it stands: pure, so every rule is tested without a store. Ages are measured from
 * `now` to each object's LastModified. Throws LifecyclePolicyRefused, naming each object and what needs it, when an
 * expire rule would delete something a manifest still needs.
 */
export function planLifecycle(
  policy: LifecyclePolicy,
  inventory: readonly StoredObject[],
  graph: ReferenceGraph,
  now: Date,
  opts: { coldIsWarm?: boolean } = {},
): PlannedLifecycle {
  const ageDays = (modified: Date) => (now.getTime() - modified.getTime()) / DAY_MS;
  const actions: PlannedAction[] = [];
  const retained: LifecyclePlan['retained'] = [];
  const byUri = new Map(inventory.map((o) => [o.uri, o]));
  const bytesOf = (uris: readonly string[]) => uris.reduce((n, u) => n + (byUri.get(u)?.bytes ?? 0), 0);

  if (policy.intermediates) {
    const days = policy.intermediates.deleteAfterDays;
    const folders = new Map<string, StoredObject[]>();
    for (const o of inventory) {
      const match = o.tier === 'warm' ? RUN_FOLDER.exec(o.key) : null;
      if (!match) continue;
      const folder = `warm://${match[0]}`;
      folders.set(folder, [...(folders.get(folder) ?? []), o]);
    }
    for (const [folder, objects] of [...folders].sort(([a], [b]) => a.localeCompare(b))) {
      const [, dataset, version, digest] = RUN_FOLDER.exec(folder.slice('warm://'.length))!;
      const committed = graph.datasets.find(
        (d) => d.dataset === dataset && d.version === version && d.specDigest === digest,
      );
      // A run not (yet) committed may be running or be resumed: its intermediates are its progress.
      if (!committed) continue;
      const newest = Math.max(...objects.map((o) => o.modified.getTime()));
      if (ageDays(new Date(newest)) < days) continue;
      const uris = objects.filter((o) => !graph.needed.has(o.uri)).map((o) => o.uri);
      if (uris.length === 0) continue;
      actions.push({
        action: 'delete',
        rule: 'intermediates',
        target: folder,
        objects: uris.length,
        bytes: bytesOf(uris),
        kept: objects.length - uris.length,
        reason: `intermediates of the committed dataset ${committed.manifestUri}, older than ${days} days`,
        uris,
      });
    }
  }

  if (policy.datasets) {
    const days = policy.datasets.coldAfterDays;
    for (const d of [...graph.datasets].sort((a, b) => a.manifestUri.localeCompare(b.manifestUri))) {
      const coldFolder = `cold://${d.folder.slice('warm://'.length)}`;
      const own = d.manifest.objects.filter((o) => o.uri.startsWith(d.folder)).map((o) => o.uri);
      // A move that stopped after its manifest was rewritten leaves warm copies behind: finishing it deletes them.
      const leftovers = d.manifest.objects
        .filter((o) => o.uri.startsWith(coldFolder))
        .map((o) => `warm://${o.uri.slice('cold://'.length)}`)
        .filter((u) => byUri.has(u));
      if (own.length + leftovers.length === 0 || ageDays(d.modified) < days) continue;
      if (opts.coldIsWarm) {
        // Copying to cold would copy onto itself, and deleting the warm copy would delete the only one.
        retained.push({
          target: d.manifestUri,
          reason: 'the cold tier is the warm tier (FLYWHEEL_COLD): nothing to move to',
        });
        continue;
      }
      const users = graph.datasetUsers.get(d.manifestUri) ?? [];
      if (users.length > 0) {
        retained.push({ target: d.manifestUri, reason: `needed by ${users.join(', ')}` });
        continue;
      }
      const uris = [...own, ...leftovers];
      actions.push({
        action: 'cold',
        rule: 'dataset',
        target: d.manifestUri,
        objects: uris.length,
        bytes: bytesOf(uris),
        reason: `dataset version older than ${days} days that no registered model or newer dataset references`,
        uris,
      });
    }
  }

  const conflicts: LifecycleConflict[] = [];
  for (const rule of policy.expire) {
    const name = `expire ${rule.prefix} after ${rule.afterDays} days`;
    const expired = inventory.filter((o) => o.uri.startsWith(rule.prefix) && ageDays(o.modified) >= rule.afterDays);
    const doomed = new Set(expired.map((o) => o.uri));
    // Within the folder, a manifest that stays lists objects that would go: the manifest would lie.
    const listedBy = new Map<string, string>();
    for (const [manifest, objects] of graph.manifests)
      if (!doomed.has(manifest)) for (const o of objects) if (!listedBy.has(o)) listedBy.set(o, manifest);
    for (const o of expired) {
      const by = graph.needed.get(o.uri) ?? listedBy.get(o.uri);
      if (by !== undefined) conflicts.push({ rule: name, object: o.uri, neededBy: by });
    }
    if (expired.length > 0 && conflicts.length === 0)
      actions.push({
        action: 'delete',
        rule: 'expire',
        target: rule.prefix,
        objects: expired.length,
        bytes: bytesOf([...doomed]),
        reason: `${name}`,
        uris: [...doomed],
      });
  }
  if (conflicts.length > 0) throw new LifecyclePolicyRefused(conflicts);

  // An object two rules select is deleted once, by the first.
  const seen = new Set<string>();
  for (const a of actions) {
    a.uris = a.uris.filter((u) => !seen.has(u) && seen.add(u));
    a.objects = a.uris.length;
    a.bytes = bytesOf(a.uris);
  }
  const live = actions.filter((a) => a.uris.length > 0);
  const total = (action: LifecycleAction['action'], field: 'objects' | 'bytes') =>
    live.filter((a) => a.action === action).reduce((n, a) => n + a[field], 0);
  return {
    now: now.toISOString(),
    actions: live,
    retained,
    deleteObjects: total('delete', 'objects'),
    deleteBytes: total('delete', 'bytes'),
    coldObjects: total('cold', 'objects'),
    coldBytes: total('cold', 'bytes'),
  };
}

/** The plan as a workflow carries it: counts and folders, not every object's URI. */
export function summarizePlan(plan: PlannedLifecycle): LifecyclePlan {
  return { ...plan, actions: plan.actions.map(summarizeAction) };
}

export function summarizeAction(action: PlannedAction): LifecycleAction {
  const { action: kind, rule, target, objects, bytes, kept, reason } = action;
  return { action: kind, rule, target, objects, bytes, ...(kept === undefined ? {} : { kept }), reason };
}
