import type { z } from 'zod';
import { mapLimit } from '../common';
import { canonicalJson } from '../contracts/digest';
import { parseSpec } from '../contracts/invalid-spec';
import {
  ChecksumMismatch,
  commitManifest,
  CorruptManifest,
  ObjectNotFound,
  openVerified,
  readAll,
  readManifest,
  sha256Hex,
  type Manifest,
  type TieredStore,
} from '../storage';
import { promoted, rolledBack } from './champion-history';
import { codeVersion } from './code-version';
import { CorruptModelVersion, ModelNotFound, RegistryConflict } from './errors';
import { MODEL_VERSION_MANIFEST_KIND, RegistryLayout, versionName, versionNumber } from './layout';
import {
  AliasStateSchema,
  ModelName,
  ModelVersionMetaSchema,
  PromotionDecisionSchema,
  RegisterInputSchema,
  VersionName,
  type AliasState,
  type ModelVersion,
  type ModelVersionMeta,
  type PromotionDecision,
  type RegisterInput,
} from './schema';

const WEIGHTS_FILE = 'weights.f32';
/** Tries at a free version number before giving up with RegistryConflict (retryable). */
const REGISTER_ATTEMPTS = 8;
const READ_CONCURRENCY = 8;

export interface ModelRegistryOptions {
  /** Where models live; default 'warm://models'. */
  root?: string;
}

/**
 * Registered model versions with their files, the champion alias and the promotion decisions, kept in a
 * TieredStore. A version's files are copied into the registry, so checkpoint retention never breaks it, and its
 * manifest (every file's sha256 and the version's record) is written last: a version exists once its manifest does.
 */
export class ModelRegistry {
  readonly layout: RegistryLayout;

  constructor(
    private readonly store: TieredStore,
    opts: ModelRegistryOptions = {},
  ) {
    this.layout = new RegistryLayout(opts.root);
  }

  /**
   * Registers the next version of `input.model`. Idempotent: the same run, step and weights give back the version
   * registered before (a retried activity never makes a second one).
   *
   * Racing registrations: the store offers no compare-and-swap, so each registration claims a number by writing a
   * claim object beside it, then lists the claims there. It goes on only when its claim is the only one, and backs
   * off to another number otherwise; because every claim is written before it is listed, two registrations never
   * both go on with one number. With a store whose puts and lists are read-after-write consistent (S3, a local
   * folder) two registrations therefore never share a version number or overwrite each other's files. The manifest
   * is re-read after it is written to confirm it is this registration's. A number above the newest version is
   * allocated; racing registrations may leave a gap, and a registration that crashed after its claim keeps its number
   * for its retry (unused if it is never retried).
   */
  async register(input: RegisterInput): Promise<ModelVersion> {
    const spec = parseSpec('model registration', RegisterInputSchema, input);
    const model = spec.model;
    if (spec.parent) await this.get(spec.parent.model, spec.parent.version);
    const names = Object.keys(spec.files).sort();
    const hashes = Object.fromEntries(names.map((name) => [name, sha256Hex(spec.files[name])]));
    const weightsSha256 =
      hashes[WEIGHTS_FILE] ?? sha256Hex(canonicalJson(names.map((name) => [name, hashes[name]] as const)));
    const registration = sha256Hex(canonicalJson({ run: spec.run, step: spec.step, weightsSha256 })).slice(0, 32);

    for (let attempt = 0; attempt < REGISTER_ATTEMPTS; attempt++) {
      const scan = await this.scanVersions(model);
      const committed = await this.readVersions(model, scan.manifests);
      const existing = committed.find((v) => v.registration === registration);
      if (existing) return existing.version;

      const mine = [...scan.claims].find(([n, keys]) => keys.has(registration) && !scan.manifests.includes(n));
      const others = [...scan.claims].filter(([, keys]) => [...keys].some((k) => k !== registration)).map(([n]) => n);
      // The first number above every committed version that nobody else claims: a number whose claimant backed off
      // is taken again, one whose claimant is still writing (or crashed) is passed over.
      const taken = new Set(others);
      let number = mine ? mine[0] : Math.max(0, ...scan.manifests) + 1;
      while (!mine && taken.has(number)) number += 1;
      const version = versionName(number);
      const claimUri = this.layout.claimUri(model, version, registration);
      if (!mine) await this.store.put(claimUri, `${canonicalJson({ registration, run: spec.run, step: spec.step })}\n`);
      if (!(await this.claimIsSole(model, version, registration))) {
        await this.store.delete(claimUri);
        await backOff(attempt);
        continue;
      }

      const objects = [];
      for (const name of names) {
        const uri = this.layout.fileUri(model, version, name);
        const written = await this.store.put(uri, spec.files[name]);
        objects.push({ uri, sha256: written.sha256, bytes: written.bytes });
      }
      const meta: ModelVersionMeta = {
        model,
        version,
        createdAt: new Date().toISOString(),
        run: spec.run,
        dataset: spec.dataset,
        ...(spec.parent ? { parent: spec.parent } : {}),
        step: spec.step,
        specDigest: spec.specDigest,
        spec: spec.spec,
        codeVersion: spec.codeVersion ?? codeVersion(),
        metrics: spec.metrics,
        weightsSha256,
        registration,
        fileNames: names,
      };
      const ref = await commitManifest(this.store, this.layout.manifestUri(model, version), {
        kind: MODEL_VERSION_MANIFEST_KIND,
        name: `${model}/${version}`,
        objects,
        meta: { ...meta },
        createdAt: meta.createdAt,
      });
      const reread = this.toModelVersion(await readManifest(this.store, ref.uri), ref.uri);
      if (reread.registration !== registration)
        throw new RegistryConflict(model, `${version}'s manifest was overwritten while it was being registered`);
      return reread.version;
    }
    throw new RegistryConflict(model, `no free version number after ${REGISTER_ATTEMPTS} tries`);
  }

  /** Names of the models with at least one version, sorted. */
  async models(): Promise<string[]> {
    const found = new Set<string>();
    for await (const entry of this.store.listAll(this.layout.rootPrefix())) {
      const model = this.layout.modelOfManifest(entry.uri);
      if (model !== undefined) found.add(model);
    }
    return [...found].sort();
  }

  /** The versions of `model` (of every model when omitted), oldest first. */
  async list(model?: string): Promise<ModelVersion[]> {
    if (model === undefined) {
      const all: ModelVersion[] = [];
      for (const name of await this.models()) all.push(...(await this.list(name)));
      return all;
    }
    const name = parseSpec('model registry', ModelName, model);
    const scan = await this.scanVersions(name);
    return (await this.readVersions(name, scan.manifests)).map((v) => v.version);
  }

  /**
   * One version: by name ('v3'), 'latest' (the newest), 'champion' (the champion alias), or, when omitted, the
   * champion if there is one and else the newest. ModelNotFound names what exists when there is no such thing.
   */
  async get(model: string, version?: string): Promise<ModelVersion> {
    const name = parseSpec('model registry', ModelName, model);
    // A listing names the versions; only the one wanted has its manifest read.
    const names = (await this.scanVersions(name)).manifests.map((n) => versionName(n));
    if (names.length === 0) throw ModelNotFound.model(name, this.layout.root, await this.models());
    let wanted = version;
    if (version === undefined || version === 'champion') {
      const { champion } = await this.aliases(name);
      if (champion === undefined && version === 'champion') throw ModelNotFound.champion(name, names);
      wanted = champion ?? names[names.length - 1];
    } else if (version === 'latest') wanted = names[names.length - 1];
    if (wanted === undefined || !names.includes(wanted)) throw ModelNotFound.version(name, String(wanted), names);
    const [found] = await this.readVersions(name, [versionNumber(wanted)]);
    return found.version;
  }

  /** Every file of a version, each read back and checked against its sha256 (CorruptModelVersion if not). */
  async loadFiles(mv: ModelVersion): Promise<Record<string, Buffer>> {
    const loaded = await mapLimit(mv.files, READ_CONCURRENCY, async (file) => {
      try {
        // The verifying stream fails at its end when the bytes differ from the manifest.
        return [file.name, await readAll(await openVerified(this.store, file))] as const;
      } catch (err) {
        if (err instanceof ChecksumMismatch)
          throw new CorruptModelVersion(mv.model, mv.version, file.name, file.uri, describeMismatch(err), {
            cause: err,
          });
        if (err instanceof ObjectNotFound)
          throw new CorruptModelVersion(mv.model, mv.version, file.name, file.uri, 'is missing', { cause: err });
        throw err;
      }
    });
    return Object.fromEntries(loaded);
  }

  /** The champion alias and its history; empty for a model never promoted. */
  async aliases(model: string): Promise<AliasState> {
    const name = parseSpec('model registry', ModelName, model);
    const uri = this.layout.aliasesUri(name);
    if (!(await this.store.exists(uri))) return { model: name, history: [] };
    return parseStored(uri, AliasStateSchema, await this.store.getBytes(uri));
  }

  /** Makes `version` the champion; a no-op when it already is (a retried promotion adds no second event). */
  async promote(model: string, version: string, reason: string): Promise<AliasState> {
    const name = parseSpec('model registry', ModelName, model);
    const target = parseSpec('model registry', VersionName, version);
    await this.get(name, target);
    const state = await this.aliases(name);
    const next = promoted(state, target, reason, new Date());
    return next === state ? state : this.writeAliases(next);
  }

  /**
   * Returns the champion to the one before it (NoPreviousChampion when there is none). With `from`, a no-op unless
   * `from` is still the champion, so a retried rollback does not roll back twice.
   */
  async rollback(model: string, reason = 'rollback', opts: { from?: string } = {}): Promise<AliasState> {
    const name = parseSpec('model registry', ModelName, model);
    const state = await this.aliases(name);
    if (opts.from !== undefined && state.champion !== opts.from) return state;
    return this.writeAliases(rolledBack(state, reason, new Date()));
  }

  /** Stores a promotion decision once: a decision with an id already recorded is left as it was. */
  async recordDecision(decision: PromotionDecision): Promise<void> {
    const d = parseSpec('promotion decision', PromotionDecisionSchema, decision);
    const uri = this.layout.decisionUri(d.model, d.id);
    if (await this.store.exists(uri)) return;
    await this.store.put(uri, `${JSON.stringify(d, null, 2)}\n`, { contentType: 'application/json' });
  }

  /** The model's promotion decisions, oldest first. */
  async decisions(model: string): Promise<PromotionDecision[]> {
    const name = parseSpec('model registry', ModelName, model);
    const uris: string[] = [];
    for await (const entry of this.store.listAll(this.layout.decisionsPrefix(name)))
      if (entry.uri.endsWith('.json')) uris.push(entry.uri);
    const decisions = await mapLimit(uris, READ_CONCURRENCY, async (uri) =>
      parseStored(uri, PromotionDecisionSchema, await this.store.getBytes(uri)),
    );
    return decisions.sort((a, b) => a.at.localeCompare(b.at) || a.id.localeCompare(b.id));
  }

  /** Version numbers with a manifest, and the registrations claiming each number. */
  private async scanVersions(model: string): Promise<{ manifests: number[]; claims: Map<number, Set<string>> }> {
    const manifests: number[] = [];
    const claims = new Map<number, Set<string>>();
    for await (const entry of this.store.listAll(this.layout.versionsPrefix(model))) {
      const key = this.layout.parseVersionKey(model, entry.uri);
      if (key === undefined) continue;
      if ('manifest' in key) manifests.push(key.number);
      else claims.set(key.number, (claims.get(key.number) ?? new Set()).add(key.claim));
    }
    return { manifests: manifests.sort((a, b) => a - b), claims };
  }

  private async claimIsSole(model: string, version: string, registration: string): Promise<boolean> {
    if (await this.store.exists(this.layout.manifestUri(model, version))) return false;
    for await (const entry of this.store.listAll(this.layout.claimsPrefix(model, version))) {
      const key = this.layout.parseVersionKey(model, entry.uri);
      if (key && 'claim' in key && key.claim !== registration) return false;
    }
    return true;
  }

  private async readVersions(
    model: string,
    numbers: readonly number[],
  ): Promise<{ version: ModelVersion; registration: string }[]> {
    return mapLimit(numbers, READ_CONCURRENCY, async (n) => {
      const uri = this.layout.manifestUri(model, versionName(n));
      return this.toModelVersion(await readManifest(this.store, uri), uri);
    });
  }

  private toModelVersion(manifest: Manifest, uri: string): { version: ModelVersion; registration: string } {
    if (manifest.kind !== MODEL_VERSION_MANIFEST_KIND)
      throw new CorruptManifest(uri, `kind is '${manifest.kind}', expected '${MODEL_VERSION_MANIFEST_KIND}'`);
    const parsed = ModelVersionMetaSchema.safeParse(manifest.meta);
    if (!parsed.success) throw new CorruptManifest(uri, `meta is not a model version record: ${parsed.error.message}`);
    const { registration, fileNames, ...record } = parsed.data;
    if (fileNames.length !== manifest.objects.length)
      throw new CorruptManifest(uri, `names ${fileNames.length} files but lists ${manifest.objects.length} objects`);
    const files = manifest.objects.map((o, i) => ({
      name: fileNames[i],
      uri: o.uri,
      sha256: o.sha256,
      bytes: o.bytes,
    }));
    return { version: { ...record, manifest: uri, files }, registration };
  }

  /** Writes the alias state and reads it back; RegistryConflict when another writer's state is there instead. */
  private async writeAliases(state: AliasState): Promise<AliasState> {
    const uri = this.layout.aliasesUri(state.model);
    const text = `${JSON.stringify(state, null, 2)}\n`;
    await this.store.put(uri, text, { contentType: 'application/json' });
    if ((await this.store.getBytes(uri)).toString('utf8') !== text)
      throw new RegistryConflict(state.model, 'the champion alias changed while it was being updated');
    return state;
  }
}

/** A registry record read back from the store; CorruptManifest when it is not one. */
function parseStored<T>(uri: string, schema: z.ZodType<T>, bytes: Buffer): T {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new CorruptManifest(uri, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new CorruptManifest(uri, `unexpected content: ${parsed.error.message}`);
  return parsed.data;
}

function describeMismatch(err: ChecksumMismatch): string {
  return err.actualSha256 === undefined
    ? `has ${err.actualBytes} bytes, the manifest says ${err.expectedBytes}`
    : `has sha256 ${err.actualSha256} (${err.actualBytes} bytes), the manifest says ${err.expectedSha256} ` +
        `(${err.expectedBytes} bytes)`;
}

/** Random waits that grow with the attempt, so two registrations that collided rarely collide again. */
function backOff(attempt: number): Promise<void> {
  const ms = (10 + Math.random() * 40) * 2 ** Math.min(attempt, 5);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
