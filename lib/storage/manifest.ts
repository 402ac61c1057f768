import { pipeline } from 'node:stream/promises';
import { pipeline as pipelineCallback, Writable, type Readable } from 'node:stream';
import { z } from 'zod';
import { forEachLimit } from '../common';
import { ChecksumMismatch, CorruptManifest, ObjectNotFound } from './errors';
import { sha256Hex, VerifyingStream } from './hashing';
import { isTierUri, parseTierUri, type TieredStore } from './tiered-store';

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex sha256 (64 characters)');

/** What a workflow carries instead of data: where an object is, and the hash and size it must have. */
export const ArtifactRef = z.object({
  uri: z.string().refine(isTierUri, { message: "a tier URI such as 'warm://datasets/x/manifest.json'" }),
  sha256: Sha256Hex,
  bytes: z.number().int().nonnegative(),
});
export type ArtifactRef = z.infer<typeof ArtifactRef>;

export const ManifestObject = ArtifactRef;
export type ManifestObject = ArtifactRef;

export const Manifest = z.object({
  version: z.literal(1),
  /** What the artifact is, e.g. 'dataset', 'checkpoint', 'storage-check'. */
  kind: z.string().min(1),
  name: z.string().min(1),
  createdAt: z.iso.datetime(),
  objects: z.array(ManifestObject),
  meta: z.record(z.string(), z.unknown()),
});
export type Manifest = z.infer<typeof Manifest>;

export interface CommitManifestInput {
  kind: string;
  name: string;
  objects: readonly ManifestObject[];
  /** What this kind of artifact records besides its objects: a JSON object, which readers parse with their schema. */
  meta?: object;
  /** Defaults to now; pass a fixed time to make a retried commit write byte-identical JSON. */
  createdAt?: Date | string;
}

const HEAD_CONCURRENCY = 8;
const VERIFY_CONCURRENCY = 4;

/**
 * Commits an artifact: checks that every listed object exists with the listed size (and hash, where the store
 * kept one), then writes the manifest, last, so readers never see a manifest whose objects are not all there.
 */
export async function commitManifest(
  tiered: TieredStore,
  manifestUri: string,
  input: CommitManifestInput,
): Promise<ArtifactRef> {
  parseTierUri(manifestUri);
  const parsed = Manifest.safeParse({
    version: 1,
    kind: input.kind,
    name: input.name,
    createdAt: input.createdAt === undefined ? new Date().toISOString() : new Date(input.createdAt).toISOString(),
    objects: input.objects.map(({ uri, sha256, bytes }) => ({ uri, sha256, bytes })),
    meta: input.meta ?? {},
  });
  if (!parsed.success) {
    throw new CorruptManifest(manifestUri, `refusing to write an invalid manifest:\n${z.prettifyError(parsed.error)}`);
  }
  const manifest = parsed.data;

  await forEachLimit(manifest.objects, HEAD_CONCURRENCY, async (entry) => {
    let info;
    try {
      info = await tiered.head(entry.uri);
    } catch (err) {
      if (!(err instanceof ObjectNotFound)) throw err;
      throw new ObjectNotFound(
        entry.uri,
        `listed in manifest ${manifestUri} but not in the store (${tiered.backendUri(entry.uri)}); ` +
          'write every data object before committing its manifest',
        { cause: err },
      );
    }
    if (info.bytes !== entry.bytes || (info.sha256 !== undefined && info.sha256 !== entry.sha256)) {
      throw new ChecksumMismatch(
        entry.uri,
        {
          expectedSha256: entry.sha256,
          actualSha256: info.sha256,
          expectedBytes: entry.bytes,
          actualBytes: info.bytes,
        },
        `while committing manifest ${manifestUri}`,
      );
    }
  });

  const text = `${JSON.stringify(manifest, null, 2)}\n`;
  const written = await tiered.put(manifestUri, text, { contentType: 'application/json' });
  return { uri: manifestUri, sha256: written.sha256, bytes: written.bytes };
}

/** A manifest whose `meta` was parsed by a schema: what one kind of artifact records besides its objects. */
export type ManifestWithMeta<S extends z.ZodType> = Manifest & { meta: z.output<S> };

/**
 * Reads and validates a manifest; with a ref, the manifest's own bytes must match the ref's hash and size. With a
 * schema, `meta` is parsed by it too (see `parseManifestMeta`).
 */
export async function readManifest(tiered: TieredStore, refOrUri: ArtifactRef | string): Promise<Manifest>;
export async function readManifest<S extends z.ZodType<Record<string, unknown>>>(
  tiered: TieredStore,
  refOrUri: ArtifactRef | string,
  metaSchema: S,
): Promise<ManifestWithMeta<S>>;
export async function readManifest(
  tiered: TieredStore,
  refOrUri: ArtifactRef | string,
  metaSchema?: z.ZodType<Record<string, unknown>>,
): Promise<Manifest> {
  const uri = typeof refOrUri === 'string' ? refOrUri : refOrUri.uri;
  let bytes: Buffer;
  try {
    bytes = await tiered.getBytes(uri);
  } catch (err) {
    if (!(err instanceof ObjectNotFound)) throw err;
    throw new ObjectNotFound(uri, `no manifest at ${tiered.backendUri(uri)}`, { cause: err });
  }
  if (typeof refOrUri !== 'string') {
    const actual = sha256Hex(bytes);
    if (actual !== refOrUri.sha256 || bytes.length !== refOrUri.bytes) {
      throw new ChecksumMismatch(
        uri,
        {
          expectedSha256: refOrUri.sha256,
          actualSha256: actual,
          expectedBytes: refOrUri.bytes,
          actualBytes: bytes.length,
        },
        'manifest',
      );
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new CorruptManifest(uri, `not valid JSON (${err instanceof Error ? err.message : String(err)})`, {
      cause: err,
    });
  }
  const parsed = Manifest.safeParse(json);
  if (!parsed.success)
    throw new CorruptManifest(uri, `does not match the manifest schema:\n${z.prettifyError(parsed.error)}`);
  return metaSchema === undefined ? parsed.data : parseManifestMeta(uri, parsed.data, metaSchema);
}

/**
 * The manifest at `uri` with its `meta` parsed by `metaSchema`, or CorruptManifest naming the uri and every bad
 * field (`meta.splits.train.tokens: ...`). Make the schema loose where later writers may add fields.
 */
export function parseManifestMeta<S extends z.ZodType<Record<string, unknown>>>(
  uri: string,
  manifest: Manifest,
  metaSchema: S,
): ManifestWithMeta<S> {
  const parsed = metaSchema.safeParse(manifest.meta);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${['meta', ...i.path.map(String)].join('.')}: ${i.message}`);
    throw new CorruptManifest(
      uri,
      `its ${manifest.kind} meta is invalid (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.join('\n'),
    );
  }
  return { ...manifest, meta: parsed.data };
}

/**
 * Opens an object listed in a manifest as a stream that hashes as it goes and fails with ChecksumMismatch
 * (naming the object's URI) if the bytes differ from the manifest; consumers must read to the end to be sure.
 */
export async function openVerified(tiered: TieredStore, entry: ArtifactRef): Promise<Readable> {
  let source: Readable;
  try {
    source = await tiered.get(entry.uri);
  } catch (err) {
    if (!(err instanceof ObjectNotFound)) throw err;
    throw new ObjectNotFound(entry.uri, `listed in a manifest but missing at ${tiered.backendUri(entry.uri)}`, {
      cause: err,
    });
  }
  const verifier = new VerifyingStream(entry.uri, entry, `stored at ${tiered.backendUri(entry.uri)}`);
  // Errors reach the reader through `verifier`; the callback only keeps them from being reported twice.
  pipelineCallback(source, verifier, () => undefined);
  return verifier;
}

/** Streams every object of a manifest through openVerified; throws the first mismatch or missing object. */
export async function verifyManifest(
  tiered: TieredStore,
  manifest: Manifest,
  opts: { concurrency?: number; onVerified?: (progress: { objects: number; bytes: number }) => void } = {},
): Promise<{ objects: number; bytes: number }> {
  let bytes = 0;
  let objects = 0;
  await forEachLimit(manifest.objects, opts.concurrency ?? VERIFY_CONCURRENCY, async (entry) => {
    const stream = await openVerified(tiered, entry);
    await pipeline(stream, discard());
    bytes += entry.bytes;
    objects += 1;
    opts.onVerified?.({ objects, bytes });
  });
  return { objects: manifest.objects.length, bytes };
}

function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, callback) => callback() });
}

/**
 * A manifest already committed at `uri`, with the ref that names its exact bytes; undefined when there is none or
 * it does not parse (a damaged manifest is never trusted: the caller rebuilds the artifact).
 */
export async function findCommittedManifest(
  tiered: TieredStore,
  uri: string,
): Promise<{ ref: ArtifactRef; manifest: Manifest } | undefined> {
  if (!(await tiered.exists(uri))) return undefined;
  const bytes = await tiered.getBytes(uri);
  const ref = { uri, sha256: sha256Hex(bytes), bytes: bytes.length };
  try {
    return { ref, manifest: await readManifest(tiered, ref) };
  } catch (err) {
    if (err instanceof CorruptManifest) return undefined;
    throw err;
  }
}
