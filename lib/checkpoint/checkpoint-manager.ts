import { mapLimit } from '../common';
import {
  ChecksumMismatch,
  commitManifest,
  findCommittedManifest,
  ObjectNotFound,
  openVerified,
  parseTierUri,
  sha256Hex,
  TIERS,
  type ArtifactRef,
  type Manifest,
  type PutBody,
  type Tier,
  type TieredStore,
} from '../storage';
import { CheckpointNotFound, CorruptCheckpoint, IncompatibleCheckpoint } from './errors';
import {
  CHECKPOINT_MANIFEST_KIND,
  CheckpointLayout,
  CheckpointMeta,
  LatestPointer,
  validateFileName,
  validateStep,
} from './layout';
import { retain, type RetentionPlan, type RetentionPolicy } from './retention';

/** Checkpoint files up to this size are copied between tiers through memory rather than streamed. */
const IN_MEMORY_COPY_BYTES = 64 * 1024 * 1024;

/** A checkpoint's content: file name → bytes (weights, optimizer moments, RNG state, data cursor, ...). */
export type CheckpointFiles = Readonly<Record<string, PutBody>>;

export interface CheckpointMetaInput {
  runId: string;
  epoch: number;
  specDigest: string;
  metrics?: Readonly<Record<string, number>>;
}

export interface SavedCheckpoint {
  step: number;
  tier: Tier;
  manifest: ArtifactRef;
  meta: CheckpointMeta;
  /** The manifest's objects, one per file of `meta.files` in that order (each with its sha256 and size). */
  objects: ArtifactRef[];
}

/** One committed checkpoint and the tiers holding a committed copy of it. */
export interface CheckpointInfo {
  step: number;
  epoch: number;
  specDigest: string;
  metrics: Record<string, number>;
  tiers: Tier[];
  manifests: Partial<Record<Tier, ArtifactRef>>;
}

/** A checkpoint copy passed over (corrupt, unreadable manifest); restore reports these rather than failing. */
export interface CheckpointWarning {
  step: number;
  tier: Tier;
  message: string;
  error: Error;
}

export interface CheckpointExpectation {
  specDigest?: string;
  /** The exact file set the caller can load; a checkpoint with more or fewer files is refused. */
  files?: readonly string[];
}

export interface RestoreOptions {
  expect?: CheckpointExpectation;
}

export interface RestoredCheckpoint extends SavedCheckpoint {
  files: Record<string, Buffer>;
  /** Newer or preferred copies that did not verify and were skipped on the way to this one. */
  skipped: CheckpointWarning[];
}

export interface RetentionOutcome {
  plan: RetentionPlan;
  /** Milestones copied to cold:// in this call. */
  copiedToCold: number[];
  /** Steps removed from one or more tiers, with the tiers. */
  removed: { step: number; tiers: Tier[] }[];
  /** Leftovers of saves or copies that crashed before their manifest, older than the newest checkpoint. */
  orphansRemoved: { step: number; tier: Tier }[];
  /** Steps retention wanted to touch but left alone (warm commit in flight, cold copy failed). */
  deferred: { step: number; reason: string }[];
}

export interface CheckpointManagerOptions {
  store: TieredStore;
  /** e.g. 'runs/<id>/checkpoints'; the same keys are used in hot, warm and cold. */
  runPrefix: string;
  /** Retention policies (a union) used by applyRetention when it is called without any. */
  policy?: readonly RetentionPolicy[];
  /** Called for every skipped corrupt copy, e.g. to put a warning in the workflow history. */
  onWarning?: (warning: CheckpointWarning) => void;
  /** Files written or copied at once (default 4). */
  concurrency?: number;
}

/** Restore prefers the local copy, then the durable one, then the archive. */
const RESTORE_ORDER: readonly Tier[] = ['hot', 'warm', 'cold'];

/**
 * Saves checkpoints to hot://, commits them to warm:// in the background, restores the newest one that verifies
 * and applies retention across tiers. A checkpoint exists only once its manifest (every file's sha256) is
 * written, and the manifest is always written last and deleted first.
 */
export class CheckpointManager {
  readonly layout: CheckpointLayout;
  private readonly store: TieredStore;
  private readonly policy: readonly RetentionPolicy[];
  private readonly onWarning: ((warning: CheckpointWarning) => void) | undefined;
  private readonly concurrency: number;
  /** Warm commits run one at a time, in call order, so the latest pointer only moves forward. */
  private warmChain: Promise<void> = Promise.resolve();
  private readonly inFlight = new Map<number, number>();

  constructor(options: CheckpointManagerOptions) {
    this.store = options.store;
    this.layout = new CheckpointLayout(options.runPrefix);
    this.policy = options.policy ?? [];
    this.onWarning = options.onWarning;
    this.concurrency = options.concurrency ?? 4;
  }

  /** Writes every file to hot://, then the manifest; the checkpoint is visible only once this resolves. */
  async save(step: number, files: CheckpointFiles, metaInput: CheckpointMetaInput): Promise<SavedCheckpoint> {
    validateStep(step);
    const names = Object.keys(files).sort();
    if (names.length === 0) throw new RangeError(`checkpoint at step ${step} has no files`);
    names.forEach(validateFileName);
    // A retried save must not leave an older manifest pointing at files being rewritten.
    await this.removeFromTier('hot', step);
    const objects = await mapLimit(names, this.concurrency, async (name) => {
      const uri = this.layout.fileUri('hot', step, name);
      const written = await this.store.put(uri, files[name]);
      return { uri, sha256: written.sha256, bytes: written.bytes };
    });
    const meta: CheckpointMeta = CheckpointMeta.parse({
      runId: metaInput.runId,
      step,
      epoch: metaInput.epoch,
      specDigest: metaInput.specDigest,
      metrics: { ...(metaInput.metrics ?? {}) },
      files: names,
      savedAt: new Date().toISOString(),
    });
    const manifest = await commitManifest(this.store, this.layout.manifestUri('hot', step), {
      kind: CHECKPOINT_MANIFEST_KIND,
      name: `${meta.runId}/step-${step}`,
      objects,
      meta,
      createdAt: meta.savedAt,
    });
    return { step, tier: 'hot', manifest, meta, objects };
  }

  /**
   * Copies a saved checkpoint to warm:// (verifying every byte on the way), commits its warm manifest, then moves
   * the latest pointer. Returns at once; await the promise when the commit must be durable (e.g. segment end).
   */
  commitToWarm(step: number): Promise<SavedCheckpoint> {
    try {
      validateStep(step);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    this.inFlight.set(step, (this.inFlight.get(step) ?? 0) + 1);
    const run = this.warmChain.then(async () => {
      try {
        const saved = await this.copyCheckpoint(step, 'hot', 'warm');
        await this.moveLatest(saved);
        return saved;
      } finally {
        const left = (this.inFlight.get(step) ?? 1) - 1;
        if (left === 0) this.inFlight.delete(step);
        else this.inFlight.set(step, left);
      }
    });
    this.warmChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Resolves once every warm commit started so far has finished (successfully or not). */
  async drain(): Promise<void> {
    await this.warmChain;
  }

  /** The latest pointer, or undefined before the first warm commit (or when the pointer is unreadable). */
  async readLatest(): Promise<LatestPointer | undefined> {
    const uri = this.layout.latestUri();
    if (!(await this.store.exists(uri))) return undefined;
    const parsed = LatestPointer.safeParse(safeJson(await this.store.getBytes(uri)));
    return parsed.success ? parsed.data : undefined;
  }

  /** Every committed checkpoint (a copy counts only with its manifest), oldest first. */
  async list(): Promise<CheckpointInfo[]> {
    const byStep = new Map<number, CheckpointInfo>();
    for (const tier of TIERS) {
      for (const { step, ref, meta } of await this.committedIn(tier)) {
        const info = byStep.get(step) ?? {
          step,
          epoch: meta.epoch,
          specDigest: meta.specDigest,
          metrics: meta.metrics,
          tiers: [],
          manifests: {},
        };
        info.tiers.push(tier);
        info.manifests[tier] = ref;
        byStep.set(step, info);
      }
    }
    return [...byStep.values()].sort((a, b) => a.step - b.step);
  }

  /** The newest checkpoint that verifies, hot first, then warm, then cold; corrupt copies are skipped and reported. */
  async restoreLatest(opts: RestoreOptions = {}): Promise<RestoredCheckpoint> {
    const skipped: CheckpointWarning[] = [];
    const infos = (await this.list()).reverse();
    for (const info of infos) {
      const restored = await this.restoreFrom(info.step, info.tiers, opts, skipped);
      if (restored) return restored;
    }
    throw new CheckpointNotFound(
      this.layout.prefixUri('warm'),
      undefined,
      infos.length === 0
        ? 'no committed manifest in hot, warm or cold'
        : `all ${infos.length} committed checkpoints failed verification: ${skipped.map((s) => s.message).join(' | ')}`,
    );
  }

  /** The checkpoint at `step` from the first tier whose copy verifies. */
  async restore(step: number, opts: RestoreOptions = {}): Promise<RestoredCheckpoint> {
    validateStep(step);
    const skipped: CheckpointWarning[] = [];
    const info = (await this.list()).find((c) => c.step === step);
    if (info === undefined) throw new CheckpointNotFound(this.layout.prefixUri('warm'), step);
    const restored = await this.restoreFrom(step, info.tiers, opts, skipped);
    if (restored) return restored;
    throw skipped[0].error;
  }

  /**
   * Executes retain() across tiers: milestones are copied to cold:// (then leave hot and warm unless also kept),
   * everything no policy keeps is deleted from every tier, manifest first. The latest pointer's step and steps
   * with a warm commit in flight are never deleted.
   */
  async applyRetention(policies: readonly RetentionPolicy[] = this.policy): Promise<RetentionOutcome> {
    const infos = await this.list();
    const latest = await this.readLatest();
    const plan = retain(
      infos.map((i) => ({ step: i.step, metrics: i.metrics })),
      policies,
      latest?.step,
    );
    const byStep = new Map(infos.map((i) => [i.step, i]));
    const keep = new Set(plan.keep);
    const outcome: RetentionOutcome = { plan, copiedToCold: [], removed: [], orphansRemoved: [], deferred: [] };
    const removeElsewhere = async (step: number, tiers: readonly Tier[]): Promise<void> => {
      if (this.inFlight.has(step)) {
        outcome.deferred.push({ step, reason: 'a warm commit is in flight' });
        return;
      }
      const removed: Tier[] = [];
      for (const tier of tiers) {
        if (await this.removeFromTier(tier, step)) removed.push(tier);
      }
      if (removed.length > 0) outcome.removed.push({ step, tiers: removed });
    };

    for (const step of plan.milestonesToCold) {
      const info = byStep.get(step);
      if (info === undefined) continue;
      if (!info.tiers.includes('cold')) {
        const copied = await this.copyToColdFromAny(info);
        if (!copied) {
          outcome.deferred.push({ step, reason: 'no copy verified, so it was not moved to cold' });
          continue;
        }
        outcome.copiedToCold.push(step);
      }
      if (!keep.has(step)) await removeElsewhere(step, ['hot', 'warm']);
    }
    for (const step of plan.delete) {
      if (step === latest?.step) continue; // retain() already keeps it; this guards the pointer against any slip
      await removeElsewhere(step, TIERS);
    }
    const newest = infos.at(-1)?.step;
    if (newest !== undefined) outcome.orphansRemoved = await this.removeOrphans(newest);
    return outcome;
  }

  /**
   * Removes step folders without a committed manifest below `newest`: a save in progress is always newer than
   * every committed step, and warm commits in flight are left alone.
   */
  private async removeOrphans(newest: number): Promise<{ step: number; tier: Tier }[]> {
    const removed: { step: number; tier: Tier }[] = [];
    for (const tier of TIERS) {
      const present = new Set<number>();
      const committed = new Set<number>();
      for await (const entry of this.store.listAll(this.layout.prefixUri(tier))) {
        const key = parseTierUri(entry.uri).key;
        const step = this.layout.stepOfKey(key);
        if (step === undefined) continue;
        present.add(step);
        if (this.layout.stepOfManifestKey(key) === step) committed.add(step);
      }
      for (const step of present) {
        if (step >= newest || committed.has(step) || this.inFlight.has(step)) continue;
        await this.removeFromTier(tier, step);
        removed.push({ step, tier });
      }
    }
    return removed;
  }

  private async copyToColdFromAny(info: CheckpointInfo): Promise<boolean> {
    for (const source of ['warm', 'hot'] as const) {
      if (!info.tiers.includes(source)) continue;
      try {
        await this.copyCheckpoint(info.step, source, 'cold');
        return true;
      } catch (err) {
        if (!(err instanceof CorruptCheckpoint)) throw err;
        this.warn({ step: info.step, tier: source, message: err.message, error: err });
      }
    }
    return false;
  }

  /** Copies files (hash-verified as they stream) then the manifest; the target copy is invisible until the end. */
  private async copyCheckpoint(step: number, from: Tier, to: Tier): Promise<SavedCheckpoint> {
    const found = await findCommittedManifest(this.store, this.layout.manifestUri(from, step));
    if (found === undefined) {
      throw new CheckpointNotFound(this.layout.prefixUri(from), step, `no committed manifest in ${from}`);
    }
    const meta = this.metaOf(found.manifest, from, step);
    await this.removeFromTier(to, step);
    const objects = await mapLimit(found.manifest.objects, this.concurrency, async (entry, i) => {
      const name = meta.files[i];
      const uri = this.layout.fileUri(to, step, name);
      try {
        // Checkpoint files are already held in memory by the trainer; one read, one hash, one write each.
        const body =
          entry.bytes <= IN_MEMORY_COPY_BYTES ? await this.readChecked(entry) : await openVerified(this.store, entry);
        const written = await this.store.put(uri, body);
        return { uri, sha256: written.sha256, bytes: written.bytes };
      } catch (err) {
        throw toCorrupt(err, step, name, entry);
      }
    });
    const manifest = await commitManifest(this.store, this.layout.manifestUri(to, step), {
      kind: CHECKPOINT_MANIFEST_KIND,
      name: found.manifest.name,
      objects,
      meta,
      createdAt: found.manifest.createdAt,
    });
    return { step, tier: to, manifest, meta, objects };
  }

  /** A whole object, its size and sha256 checked against the manifest entry. */
  private async readChecked(entry: ArtifactRef): Promise<Buffer> {
    const bytes = await this.store.getBytes(entry.uri);
    const actual = sha256Hex(bytes);
    if (actual !== entry.sha256 || bytes.length !== entry.bytes)
      throw new ChecksumMismatch(entry.uri, {
        expectedSha256: entry.sha256,
        actualSha256: actual,
        expectedBytes: entry.bytes,
        actualBytes: bytes.length,
      });
    return bytes;
  }

  private async moveLatest(saved: SavedCheckpoint): Promise<void> {
    const current = await this.readLatest();
    if (current !== undefined && current.step > saved.step) return;
    const pointer: LatestPointer = {
      version: 1,
      runId: saved.meta.runId,
      step: saved.step,
      manifest: saved.manifest,
      committedAt: new Date().toISOString(),
    };
    await this.store.put(this.layout.latestUri(), `${JSON.stringify(pointer, null, 2)}\n`, {
      contentType: 'application/json',
    });
  }

  private async restoreFrom(
    step: number,
    tiers: readonly Tier[],
    opts: RestoreOptions,
    skipped: CheckpointWarning[],
  ): Promise<RestoredCheckpoint | undefined> {
    for (const tier of RESTORE_ORDER.filter((t) => tiers.includes(t))) {
      try {
        return { ...(await this.load(tier, step, opts.expect)), skipped };
      } catch (err) {
        if (!(err instanceof CorruptCheckpoint || err instanceof CheckpointNotFound)) throw err;
        const warning = { step, tier, message: `skipped step ${step} in ${tier}: ${err.message}`, error: err };
        skipped.push(warning);
        this.warn(warning);
      }
    }
    return undefined;
  }

  private async load(
    tier: Tier,
    step: number,
    expect: CheckpointExpectation | undefined,
  ): Promise<Omit<RestoredCheckpoint, 'skipped'>> {
    const manifestUri = this.layout.manifestUri(tier, step);
    const found = await findCommittedManifest(this.store, manifestUri);
    if (found === undefined)
      throw new CheckpointNotFound(manifestUri, step, `the ${tier} manifest vanished or is damaged`);
    const meta = this.metaOf(found.manifest, tier, step);
    checkCompatible(manifestUri, meta, expect);
    const loaded = await mapLimit(found.manifest.objects, this.concurrency, async (entry, i) => {
      const name = meta.files[i];
      let bytes: Buffer;
      try {
        bytes = await this.store.getBytes(entry.uri);
      } catch (err) {
        throw toCorrupt(err, step, name, entry);
      }
      const actual = sha256Hex(bytes);
      if (actual !== entry.sha256 || bytes.length !== entry.bytes) {
        throw new CorruptCheckpoint(entry.uri, {
          step,
          file: name,
          expectedSha256: entry.sha256,
          actualSha256: actual,
          expectedBytes: entry.bytes,
          actualBytes: bytes.length,
        });
      }
      return [name, bytes] as const;
    });
    return {
      step,
      tier,
      manifest: found.ref,
      meta,
      objects: found.manifest.objects,
      files: Object.fromEntries(loaded),
    };
  }

  private metaOf(manifest: Manifest, tier: Tier, step: number): CheckpointMeta {
    const parsed = CheckpointMeta.safeParse(manifest.meta);
    const uri = this.layout.manifestUri(tier, step);
    if (!parsed.success || manifest.kind !== CHECKPOINT_MANIFEST_KIND) {
      throw new CheckpointNotFound(uri, step, 'the manifest is not a checkpoint manifest');
    }
    if (parsed.data.files.length !== manifest.objects.length || parsed.data.step !== step) {
      throw new CheckpointNotFound(uri, step, 'the manifest lists other files or another step than its metadata');
    }
    return parsed.data;
  }

  private async committedIn(tier: Tier): Promise<{ step: number; ref: ArtifactRef; meta: CheckpointMeta }[]> {
    const out: { step: number; ref: ArtifactRef; meta: CheckpointMeta }[] = [];
    for await (const entry of this.store.listAll(this.layout.prefixUri(tier))) {
      const step = this.layout.stepOfManifestKey(parseTierUri(entry.uri).key);
      if (step === undefined) continue;
      const found = await findCommittedManifest(this.store, entry.uri);
      if (found === undefined) continue;
      try {
        out.push({ step, ref: found.ref, meta: this.metaOf(found.manifest, tier, step) });
      } catch (err) {
        if (!(err instanceof CheckpointNotFound)) throw err;
      }
    }
    return out;
  }

  /** Manifest first, so a half-deleted copy is never seen as committed; then every object under the step. */
  private async removeFromTier(tier: Tier, step: number): Promise<boolean> {
    const manifestUri = this.layout.manifestUri(tier, step);
    const hadManifest = await this.store.exists(manifestUri);
    if (hadManifest) await this.store.delete(manifestUri);
    const uris: string[] = [];
    for await (const entry of this.store.listAll(this.layout.stepPrefixUri(tier, step))) uris.push(entry.uri);
    await mapLimit(uris, this.concurrency, (uri) => this.store.delete(uri));
    return hadManifest || uris.length > 0;
  }

  private warn(warning: CheckpointWarning): void {
    this.onWarning?.(warning);
  }
}

function checkCompatible(uri: string, meta: CheckpointMeta, expect: CheckpointExpectation | undefined): void {
  if (expect === undefined) return;
  const differences: string[] = [];
  if (expect.specDigest !== undefined && expect.specDigest !== meta.specDigest) {
    differences.push(`specDigest is ${meta.specDigest}, this run's is ${expect.specDigest}`);
  }
  if (expect.files !== undefined) {
    const have = new Set(meta.files);
    const want = new Set(expect.files);
    const missing = [...want].filter((f) => !have.has(f)).sort();
    const extra = [...have].filter((f) => !want.has(f)).sort();
    if (missing.length > 0) differences.push(`missing files ${missing.join(', ')}`);
    if (extra.length > 0) differences.push(`unexpected files ${extra.join(', ')}`);
  }
  if (differences.length > 0) throw new IncompatibleCheckpoint(uri, meta.step, differences);
}

function toCorrupt(err: unknown, step: number, file: string, entry: ArtifactRef): unknown {
  if (err instanceof ObjectNotFound) {
    return new CorruptCheckpoint(
      entry.uri,
      { step, file, expectedSha256: entry.sha256, expectedBytes: entry.bytes },
      { cause: err },
    );
  }
  if (err instanceof ChecksumMismatch && err.uri === entry.uri) {
    return new CorruptCheckpoint(
      entry.uri,
      {
        step,
        file,
        expectedSha256: entry.sha256,
        actualSha256: err.actualSha256 ?? '(read past the expected size)',
        expectedBytes: entry.bytes,
        actualBytes: err.actualBytes,
      },
      { cause: err },
    );
  }
  return err;
}

function safeJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}
