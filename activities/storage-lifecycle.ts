import { Context } from '@temporalio/activity';
import type { LifecycleAction, LifecyclePlan, LifecyclePolicy } from '../lib/contracts/storage-lifecycle';
import {
  applyAction,
  buildReferences,
  coldIsWarm,
  listInventory,
  planLifecycle,
  summarizeAction,
  summarizePlan,
  type PlannedLifecycle,
} from '../lib/lifecycle';
import type { TieredStore } from '../lib/storage';
import { withFailureMapping } from './failures';

export interface LifecycleInput {
  policy: LifecyclePolicy;
  /** Ages are measured from this time: the workflow's, so a replay plans the same way. */
  now: string;
}

interface ApplyCursor {
  done: LifecycleAction[];
}

async function planNow(store: TieredStore, input: LifecycleInput): Promise<PlannedLifecycle> {
  const ctx = Context.current();
  const inventory = await listInventory(store, (listed) => ctx.heartbeat({ listed }));
  ctx.heartbeat({ listed: inventory.length, stage: 'references' });
  const graph = await buildReferences(
    store,
    inventory,
    input.policy.expire.map((rule) => rule.prefix),
  );
  return planLifecycle(input.policy, inventory, graph, new Date(input.now), { coldIsWarm: coldIsWarm(store) });
}

export function createStorageLifecycleActivities({ store }: { store: TieredStore }) {
  return {
    /** What the policy would move and delete, from the store's listings and the manifests that still need objects. */
    async planStorageLifecycle(input: LifecycleInput): Promise<LifecyclePlan> {
      return withFailureMapping(async () => summarizePlan(await planNow(store, input)));
    },

    /**
     * Plans again (references are checked at the moment of acting, not when the dry run was made) and carries the
     * plan out, action by action. A retry re-plans: what an earlier attempt finished is no longer in the store's way.
     */
    async applyStorageLifecycle(input: LifecycleInput): Promise<LifecyclePlan> {
      return withFailureMapping(async () => {
        const ctx = Context.current();
        const cursor: ApplyCursor = (ctx.info.heartbeatDetails as ApplyCursor | undefined) ?? { done: [] };
        const plan = await planNow(store, input);
        for (const action of plan.actions) {
          await applyAction(store, action, (objects) => ctx.heartbeat({ ...cursor, target: action.target, objects }));
          cursor.done.push(summarizeAction(action));
          ctx.heartbeat(cursor);
        }
        const total = (kind: LifecycleAction['action'], field: 'objects' | 'bytes') =>
          cursor.done.filter((a) => a.action === kind).reduce((n, a) => n + a[field], 0);
        return {
          ...summarizePlan(plan),
          actions: cursor.done,
          deleteObjects: total('delete', 'objects'),
          deleteBytes: total('delete', 'bytes'),
          coldObjects: total('cold', 'objects'),
          coldBytes: total('cold', 'bytes'),
        };
      });
    },
  };
}
