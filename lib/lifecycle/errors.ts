import { FlywheelError } from '../common';

/** One object an expire rule would delete, and the manifest (or record) that still needs it. */
export interface LifecycleConflict {
  rule: string;
  object: string;
  neededBy: string;
}

const SHOWN = 10;

/** A policy that would delete something a manifest still references: refused whole, naming both. Never retried. */
export class LifecyclePolicyRefused extends FlywheelError {
  constructor(readonly conflicts: LifecycleConflict[]) {
    const lines = conflicts.slice(0, SHOWN).map((c) => `  ${c.rule} would delete ${c.object}, needed by ${c.neededBy}`);
    if (conflicts.length > SHOWN) lines.push(`  … and ${conflicts.length - SHOWN} more`);
    super(
      'LifecyclePolicyRefused',
      `Refusing the storage lifecycle policy: it would delete ${conflicts.length} object${
        conflicts.length === 1 ? '' : 's'
      } a manifest still needs:\n${lines.join('\n')}\nNarrow the expire rule's folder or raise its age; nothing was changed.`,
      { retryable: false, details: conflicts.slice(0, 100) },
    );
  }
}

/** Cold and warm are the same store: a move to cold would delete the only copy. Never retried. */
export class ColdTierIsWarm extends FlywheelError {
  constructor(manifestUri: string) {
    super(
      'ColdTierIsWarm',
      `Not moving ${manifestUri} to cold: the cold tier is the warm tier, so the move would delete the only copy. ` +
        'Point FLYWHEEL_COLD at another folder or bucket prefix.',
      { retryable: false },
    );
  }
}
