import type { Readable } from 'node:stream';
import { planEviction } from './eviction';
import type {
  GetOptions,
  ListEntry,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  PutBody,
  PutOptions,
  PutResult,
} from './object-store';

/**
 * The hot tier as a cache bounded to `maxBytes`: after each write, least recently used objects are deleted until the
 * tier fits. "Used" is the later of the object's modification time and its last read or write through this process
 * (file access times are unreliable: many mounts use noatime). The object just written is never evicted.
 */
export class BoundedStore implements ObjectStore {
  readonly name: string;
  private readonly lastUsed = new Map<string, number>();
  private evicting: Promise<void> = Promise.resolve();

  constructor(
    readonly inner: ObjectStore,
    readonly maxBytes: number,
  ) {
    this.name = inner.name;
  }

  async put(key: string, body: PutBody, opts?: PutOptions): Promise<PutResult> {
    const result = await this.inner.put(key, body, opts);
    this.touch(key);
    // One eviction pass at a time; each sees the writes that finished before it.
    const pass = this.evicting.then(() => this.evict(key));
    // A failed pass must not poison later writes: the next one starts fresh.
    this.evicting = pass.catch(() => undefined);
    await pass;
    return result;
  }

  async get(key: string, opts?: GetOptions): Promise<Readable> {
    const stream = await this.inner.get(key, opts);
    this.touch(key);
    return stream;
  }

  async getBytes(key: string): Promise<Buffer> {
    const bytes = await this.inner.getBytes(key);
    this.touch(key);
    return bytes;
  }

  head(key: string): Promise<ObjectInfo> {
    return this.inner.head(key);
  }

  list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    return this.inner.list(prefix, opts);
  }

  listAll(prefix: string): AsyncIterable<ListEntry> {
    return this.inner.listAll(prefix);
  }

  exists(key: string): Promise<boolean> {
    return this.inner.exists(key);
  }

  async delete(key: string): Promise<void> {
    await this.inner.delete(key);
    this.lastUsed.delete(key);
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    await this.inner.copy(fromKey, toKey);
    this.touch(toKey);
  }

  uri(key: string): string {
    return this.inner.uri(key);
  }

  private touch(key: string): void {
    this.lastUsed.set(key, Date.now());
  }

  private async evict(justWritten: string): Promise<void> {
    const entries: ListEntry[] = [];
    for await (const entry of this.inner.listAll('')) {
      if (entry.key === justWritten) continue;
      const used = Math.max(entry.modified.getTime(), this.lastUsed.get(entry.key) ?? 0);
      entries.push({ ...entry, modified: new Date(used) });
    }
    const written = await this.inner.head(justWritten).catch(() => undefined);
    const plan = planEviction(entries, Math.max(0, this.maxBytes - (written?.bytes ?? 0)));
    for (const entry of plan.evict) await this.delete(entry.key);
  }
}
