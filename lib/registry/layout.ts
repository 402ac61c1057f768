import { InvalidTierUri, parseTierPrefix, sha256Hex } from '../storage';

export const MODEL_VERSION_MANIFEST_KIND = 'model-version';

/**
 * Where the registry keeps things, under one root (default warm://models):
 * ```
 * <model>/versions/<version>/files/<name>          the version's files
 * <model>/versions/<version>/claims/<key>.json     a registration's claim on the version number
 * <model>/versions/<version>/manifest.json         every file's sha256 and the version's record, written last
 * <model>/aliases.json                             the champion and its history
 * <model>/decisions/<id>.json                      promotion decisions, one object each
 * ```
 */
export class RegistryLayout {
  readonly root: string;

  constructor(root = 'warm://models') {
    const trimmed = root.replace(/\/+$/, '');
    const { key } = parseTierPrefix(`${trimmed}/`);
    if (key === '/' || key === '') throw new InvalidTierUri(root, 'the registry needs a folder, not a whole tier');
    this.root = trimmed;
  }

  rootPrefix(): string {
    return `${this.root}/`;
  }

  versionsPrefix(model: string): string {
    return `${this.root}/${model}/versions/`;
  }

  manifestUri(model: string, version: string): string {
    return `${this.root}/${model}/versions/${version}/manifest.json`;
  }

  fileUri(model: string, version: string, name: string): string {
    return `${this.root}/${model}/versions/${version}/files/${name}`;
  }

  claimsPrefix(model: string, version: string): string {
    return `${this.root}/${model}/versions/${version}/claims/`;
  }

  claimUri(model: string, version: string, registration: string): string {
    return `${this.claimsPrefix(model, version)}${registration}.json`;
  }

  aliasesUri(model: string): string {
    return `${this.root}/${model}/aliases.json`;
  }

  decisionsPrefix(model: string): string {
    return `${this.root}/${model}/decisions/`;
  }

  /** Ids that are safe keys keep their name; any other id is stored under its sha256. */
  decisionUri(model: string, id: string): string {
    const safe = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/.test(id) ? id : `sha256-${sha256Hex(id)}`;
    return `${this.decisionsPrefix(model)}${safe}.json`;
  }

  /** What a key under the versions prefix is: a manifest or a claim of a numbered version, or anything else. */
  parseVersionKey(
    model: string,
    uri: string,
  ): { number: number; manifest: true } | { number: number; claim: string } | undefined {
    const prefix = this.versionsPrefix(model);
    if (!uri.startsWith(prefix)) return undefined;
    const parts = uri.slice(prefix.length).split('/');
    const match = /^v([1-9][0-9]*)$/.exec(parts[0]);
    if (!match) return undefined;
    const number = Number(match[1]);
    if (parts.length === 2 && parts[1] === 'manifest.json') return { number, manifest: true };
    if (parts.length === 3 && parts[1] === 'claims' && parts[2].endsWith('.json'))
      return { number, claim: parts[2].slice(0, -'.json'.length) };
    return undefined;
  }

  /** The model a committed manifest URI belongs to, for listing models. */
  modelOfManifest(uri: string): string | undefined {
    const match = /^([^/]+)\/versions\/v[1-9][0-9]*\/manifest\.json$/.exec(uri.slice(this.rootPrefix().length));
    return uri.startsWith(this.rootPrefix()) && match ? match[1] : undefined;
  }
}

export const versionName = (n: number): string => `v${n}`;
export const versionNumber = (version: string): number => Number(version.slice(1));
