import { inspect } from 'node:util';

/** AES-256 wants 32 key bytes. */
export const KEY_BYTES = 32;

// Shorter than any 32-byte key in base64, so a pasted key is never taken for an id and echoed in an error.
const KEY_ID = /^[A-Za-z0-9._-]{1,32}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+)$/;

/**
 * The encryption keys by id. The first key encrypts; every key decrypts, so a key can be rotated out of use for
 * writing while old history stays readable. Key bytes never leave through JSON or `inspect`: both show the ids only.
 */
export class KeyRing {
  readonly #keys: Map<string, Buffer>;
  readonly currentKeyId: string;

  constructor(keys: readonly { id: string; key: Uint8Array }[]) {
    const problems = keyProblems(keys);
    if (keys.length === 0) problems.push('at least one key');
    if (problems.length) throw new RangeError(`invalid key ring: ${problems.join('; ')}`);
    this.#keys = new Map(keys.map(({ id, key }) => [id, Buffer.from(key)]));
    this.currentKeyId = keys[0].id;
  }

  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  /** The key bytes for an id, or undefined when the ring does not hold it. */
  key(id: string): Buffer | undefined {
    return this.#keys.get(id);
  }

  toJSON(): { current: string; keyIds: string[] } {
    return { current: this.currentKeyId, keyIds: this.keyIds };
  }

  [inspect.custom](): string {
    return `KeyRing { current: ${this.currentKeyId}, keyIds: ${this.keyIds.join(', ')} }`;
  }
}

function keyProblems(keys: readonly { id: string; key: Uint8Array; position?: number }[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  keys.forEach(({ id, key, position }, i) => {
    // A malformed id may be a pasted key, so it is not quoted back.
    if (!KEY_ID.test(id)) {
      problems.push(`the id of key ${position ?? i + 1} to be 1-32 letters, digits, . _ - (a key id, not the key)`);
      return;
    }
    if (key.length !== KEY_BYTES)
      problems.push(
        `key ${JSON.stringify(id)} to be ${KEY_BYTES} bytes (it is ${key.length}); make one with \`openssl rand -base64 32\``,
      );
    if (seen.has(id)) problems.push(`key ids to be unique (${JSON.stringify(id)} appears twice)`);
    seen.add(id);
  });
  return problems;
}

/**
 * Parses `id1:base64key,id2:base64key` (commas, spaces or newlines between entries; the first key encrypts).
 * Problems are phrased as what was expected and never quote key material, so they can be shown as they are.
 */
export function parseKeyRing(text: string): { ring: KeyRing; problems: [] } | { ring?: undefined; problems: string[] } {
  const entries = text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length === 0) return { problems: ['a key ring: id:base64key[,id:base64key...], the first key encrypts'] };
  const keys: { id: string; key: Buffer; position: number }[] = [];
  const problems: string[] = [];
  entries.forEach((entry, i) => {
    const colon = entry.indexOf(':');
    if (colon < 0) {
      problems.push(`key ${i + 1} to be id:base64key`);
      return;
    }
    const id = entry.slice(0, colon);
    const encoded = entry.slice(colon + 1);
    if (!BASE64.test(encoded)) {
      problems.push(`key ${i + 1} to be base64`);
      return;
    }
    const alphabet = /[-_]/.test(encoded) ? 'base64url' : 'base64';
    keys.push({ id, key: Buffer.from(encoded, alphabet), position: i + 1 });
  });
  problems.push(...keyProblems(keys));
  if (problems.length) return { problems };
  return { ring: new KeyRing(keys), problems: [] };
}
