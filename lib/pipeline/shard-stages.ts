import type { Document } from '../document/schema';
import { decodeJsonlGz } from '../document/jsonl-partition';
import {
  commitManifest,
  findCommittedManifest,
  openVerified,
  readManifest,
  type ArtifactRef,
} from '../storage/manifest';
import { readAll } from '../storage/object-store';
import type { TieredStore } from '../storage/tiered-store';
import type { TokenizerEncoding } from '../tokenize/encodings';
import { DocumentTokenizer } from '../tokenize/tokenizer';
import type { TokenizerPool } from '../tokenize/pool';
import { npyBytes, tokenDtypeFor, type TokenDtype } from '../webdataset/npy';
import { ShardWriter, tarEntryBytes, type WrittenShard } from '../webdataset/shard-writer';
import { splitFor, type Split } from '../webdataset/split';
import { PartitionWriter } from './partition-writer';
import type { ShardedDataset } from './commit-dataset';
import { STAGE_EPOCH } from './stage-output';

/**
 * Tokenizing and sharding in three fanned-out steps, each idempotent and small enough to retry whole:
 *  1. tokenizePartition, one activity per document partition (parallel across workers and pool threads);
 *  2. planShards, one pass over the token partitions' sizes that fixes every shard's exact documents;
 *  3. writeShard, one activity per shard (parallel), each writing a byte-reproducible tar.
 * A crash costs at most one partition or one shard; the layout makes the result independent of timing.
 */

/** A tokenized document as token partitions store it: the sample's JSON and its ids (base64, little-endian u32). */
interface TokenRecord {
  split: Split;
  json: { id: string; source: string; tokens: number; created?: string; metadata: Record<string, unknown> };
  ids: string;
}

export interface TokenPartitionSummary {
  /** A manifest of one object (the token partition), so readers verify it like any other artifact. */
  ref: ArtifactRef;
  documents: number;
  tokens: number;
  textBytes: number;
  splits: Record<Split, { documents: number; tokens: number }>;
}

const factsByEncoding = new Map<TokenizerEncoding, { dtype: TokenDtype; eot: number; vocabSize: number }>();

/** dtype, end-of-text id and vocabulary size of an encoding; loading its BPE ranks once per process is enough. */
export function tokenizerFacts(encoding: TokenizerEncoding): { dtype: TokenDtype; eot: number; vocabSize: number } {
  let facts = factsByEncoding.get(encoding);
  if (!facts) {
    const t = new DocumentTokenizer(encoding);
    facts = { dtype: tokenDtypeFor(t.vocabSize), eot: t.eot, vocabSize: t.vocabSize };
    t.free();
    factsByEncoding.set(encoding, facts);
  }
  return facts;
}

function idsToBase64(ids: Uint32Array): string {
  return Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength).toString('base64');
}

function idsFromBase64(text: string): Uint32Array {
  const bytes = Buffer.from(text, 'base64');
  const out = new Uint32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes); // little-endian, as encodeNpy requires
  return out;
}

/** Tokenizes one document partition on the pool, keeping input order; reuses a committed result. */
export async function tokenizePartition(input: {
  store: TieredStore;
  partition: ArtifactRef;
  /** e.g. `<run>/tokens/part-000003` */
  outPrefix: string;
  encoding: TokenizerEncoding;
  validationFraction: number;
  pool: TokenizerPool;
  batchDocuments?: number;
  onProgress?: (documents: number) => void;
}): Promise<TokenPartitionSummary> {
  const manifestUri = `${input.outPrefix}.manifest.json`;
  const committed = await findCommittedManifest(input.store, manifestUri);
  if (committed)
    return { ...(committed.manifest.meta.summary as Omit<TokenPartitionSummary, 'ref'>), ref: committed.ref };

  const writer = new PartitionWriter(input.store, input.outPrefix, { maxRecords: Infinity, maxBytes: Infinity });
  const splits: TokenPartitionSummary['splits'] = {
    train: { documents: 0, tokens: 0 },
    validation: { documents: 0, tokens: 0 },
  };
  let textBytes = 0;
  // Per document, what planShards needs to size the tar entries: split, bytes of the sample's JSON, token count.
  const sizes: RecordSize[] = [];
  const batchSize = input.batchDocuments ?? 64;
  const window = input.pool.threads + 1;
  const inflight: { docs: Document[]; ids: Promise<Uint32Array[]> }[] = [];
  const drainOne = async () => {
    const batch = inflight.shift()!;
    const encoded = await batch.ids;
    for (let i = 0; i < batch.docs.length; i++) {
      const doc = batch.docs[i];
      const split = splitFor(doc.id, input.validationFraction);
      const ids = encoded[i];
      splits[split].documents += 1;
      splits[split].tokens += ids.length;
      textBytes += Buffer.byteLength(doc.text);
      const record: TokenRecord = {
        split,
        json: { id: doc.id, source: doc.source, tokens: ids.length, created: doc.created, metadata: doc.metadata },
        ids: idsToBase64(ids),
      };
      sizes.push([split === 'train' ? 0 : 1, Buffer.byteLength(JSON.stringify(record.json)), ids.length]);
      await writer.write(record);
    }
    input.onProgress?.(splits.train.documents + splits.validation.documents);
  };
  let batch: Document[] = [];
  const submit = async () => {
    const ids = input.pool.encode(
      input.encoding,
      batch.map((d) => d.text),
    );
    ids.catch(() => undefined); // awaited in order by drainOne
    inflight.push({ docs: batch, ids });
    batch = [];
    if (inflight.length >= window) await drainOne();
  };
  for await (const doc of decodeJsonlGz<Document>(await openVerified(input.store, input.partition))) {
    batch.push(doc);
    if (batch.length >= batchSize) await submit();
  }
  if (batch.length > 0) await submit();
  while (inflight.length > 0) await drainOne();
  const [part] = await writer.finish();
  const documents = splits.train.documents + splits.validation.documents;
  const objects = part ? [{ uri: part.uri, sha256: part.sha256, bytes: part.bytes }] : [];
  const summary = { documents, tokens: splits.train.tokens + splits.validation.tokens, textBytes, splits };
  const sizesPut = await input.store.put(`${input.outPrefix}.sizes.json`, JSON.stringify(sizes));
  const sizesRef: ArtifactRef = { uri: sizesPut.uri, sha256: sizesPut.sha256, bytes: sizesPut.bytes };
  // Written last, with the summary inside: a retry finds it and returns the same answer without tokenizing again.
  const ref = await commitManifest(input.store, manifestUri, {
    kind: 'token-partition',
    name: input.outPrefix,
    objects,
    meta: { summary, sizes: sizesRef },
    createdAt: STAGE_EPOCH,
  });
  return { ...summary, ref };
}

/** [split (0 train, 1 validation), bytes of the sample's JSON, tokens] of one tokenized document. */
type RecordSize = [0 | 1, number, number];

/**
 * The sizes of a token partition's documents, in order: from the small index tokenizePartition writes beside the
 * partition (verified), or, for a partition written without one, from the records themselves.
 */
async function* recordSizes(store: TieredStore, tokenManifest: ArtifactRef): AsyncGenerator<RecordSize> {
  const manifest = await readManifest(store, tokenManifest.uri);
  const index = (manifest.meta as { sizes?: ArtifactRef }).sizes;
  if (index) {
    yield* JSON.parse((await readAll(await openVerified(store, index))).toString('utf8')) as RecordSize[];
    return;
  }
  for await (const record of tokenRecords(store, tokenManifest)) {
    yield [record.split === 'train' ? 0 : 1, Buffer.byteLength(JSON.stringify(record.json)), record.json.tokens];
  }
}

async function* tokenRecords(store: TieredStore, tokenManifest: ArtifactRef): AsyncGenerator<TokenRecord> {
  const manifest = await readManifest(store, tokenManifest.uri);
  for (const object of manifest.objects) yield* decodeJsonlGz<TokenRecord>(await openVerified(store, object));
}

/** One shard of the plan: which documents of its split it holds, from where. */
export interface PlannedShard {
  split: Split;
  index: number;
  /** Ordinal (within the split) of its first sample: sample keys are `sample-<ordinal>`. */
  firstOrdinal: number;
  samples: number;
  tokens: number;
  bytes: number;
  /** Token partition and position (among that partition's documents of this split) of the first sample. */
  from: { part: number; offset: number };
}

export interface ShardLayout {
  dtype: TokenDtype;
  targetBytes: number;
  parts: ArtifactRef[];
  shards: PlannedShard[];
}

/**
 * Fixes the shard boundaries: documents in dataset order, per split, a shard closing once its tar reaches the target
 * size. Sizes come from each partition's size index (JSON bytes and token count per document, written with the
 * tokens), so the plan is exact and the same on every run, and reads a few bytes per document instead of its tokens.
 */
export async function planShards(input: {
  store: TieredStore;
  parts: ArtifactRef[];
  dtype: TokenDtype;
  targetBytes: number;
  layoutUri: string;
  /** Called per record read: long passes heartbeat through it. */
  onProgress?: (records: number) => void;
}): Promise<{ layout: ArtifactRef; shards: Record<Split, number> }> {
  let records = 0;
  const shards: PlannedShard[] = [];
  const open: Partial<Record<Split, PlannedShard>> = {};
  const ordinal: Record<Split, number> = { train: 0, validation: 0 };
  const count: Record<Split, number> = { train: 0, validation: 0 };
  for (let part = 0; part < input.parts.length; part++) {
    const offset: Record<Split, number> = { train: 0, validation: 0 };
    for await (const [splitCode, jsonBytes, tokens] of recordSizes(input.store, input.parts[part])) {
      const split: Split = splitCode === 0 ? 'train' : 'validation';
      let shard = open[split];
      if (!shard) {
        shard = {
          split,
          index: count[split]++,
          firstOrdinal: ordinal[split],
          samples: 0,
          tokens: 0,
          bytes: 0,
          from: { part, offset: offset[split] },
        };
        open[split] = shard;
        shards.push(shard);
      }
      shard.samples += 1;
      shard.tokens += tokens;
      shard.bytes += tarEntryBytes(jsonBytes) + tarEntryBytes(npyBytes(tokens, input.dtype));
      ordinal[split] += 1;
      offset[split] += 1;
      input.onProgress?.(++records);
      if (shard.bytes >= input.targetBytes) open[split] = undefined;
    }
  }
  const layout: ShardLayout = { dtype: input.dtype, targetBytes: input.targetBytes, parts: input.parts, shards };
  const put = await input.store.put(input.layoutUri, JSON.stringify(layout));
  return { layout: { uri: input.layoutUri, sha256: put.sha256, bytes: put.bytes }, shards: count };
}

export async function readLayout(store: TieredStore, ref: ArtifactRef): Promise<ShardLayout> {
  return JSON.parse((await store.getBytes(ref.uri)).toString('utf8')) as ShardLayout;
}

/** Writes one planned shard; a shard already written with its record is reused. */
export async function writeShard(input: {
  store: TieredStore;
  layout: ArtifactRef;
  split: Split;
  index: number;
  /** e.g. `warm://datasets/demo/v1` → `.../train/shard-000003.tar` */
  outPrefix: string;
  /** Where the shard's record (sha256, sizes) is kept for the commit: `<run>/shards`. */
  recordFolder: string;
  /** Called per record read (also those skipped): long passes heartbeat through it. */
  onProgress?: (records: number) => void;
}): Promise<WrittenShard> {
  let records = 0;
  const recordUri = `${input.recordFolder}/${input.split}-${String(input.index).padStart(6, '0')}.json`;
  if (await input.store.exists(recordUri)) {
    const record = JSON.parse((await input.store.getBytes(recordUri)).toString('utf8')) as WrittenShard;
    const head = await input.store.head(record.uri).catch(() => undefined);
    if (head?.bytes === record.bytes) return record;
  }
  const layout = await readLayout(input.store, input.layout);
  const plan = layout.shards.find((s) => s.split === input.split && s.index === input.index);
  if (!plan) throw new Error(`the shard layout ${input.layout.uri} has no ${input.split} shard ${input.index}`);
  const writer = new ShardWriter(
    input.store,
    `${input.outPrefix}/${input.split}/shard`,
    layout.dtype,
    Infinity,
    input.index,
  );
  let written = 0;
  for (let part = plan.from.part; part < layout.parts.length && written < plan.samples; part++) {
    let position = 0;
    for await (const record of tokenRecords(input.store, layout.parts[part])) {
      input.onProgress?.(++records);
      if (record.split !== input.split) continue;
      if (part === plan.from.part && position++ < plan.from.offset) continue;
      await writer.add({
        key: `sample-${String(plan.firstOrdinal + written).padStart(9, '0')}`,
        json: record.json,
        tokens: idsFromBase64(record.ids),
      });
      if (++written === plan.samples) break;
    }
  }
  const [shard] = await writer.finish();
  if (!shard || shard.samples !== plan.samples) {
    throw new Error(
      `shard ${input.split}/${input.index} holds ${shard?.samples ?? 0} samples, the layout planned ${plan.samples}`,
    );
  }
  await input.store.put(recordUri, JSON.stringify(shard));
  return shard;
}

/** The records of every planned shard, in split and index order (after all writeShard calls finished). */
export async function writtenShards(
  store: TieredStore,
  layoutRef: ArtifactRef,
  recordFolder: string,
): Promise<Record<Split, WrittenShard[]>> {
  const layout = await readLayout(store, layoutRef);
  const out: Record<Split, WrittenShard[]> = { train: [], validation: [] };
  for (const plan of layout.shards) {
    const uri = `${recordFolder}/${plan.split}-${String(plan.index).padStart(6, '0')}.json`;
    out[plan.split][plan.index] = JSON.parse((await store.getBytes(uri)).toString('utf8')) as WrittenShard;
  }
  return out;
}

/**
 * The three steps in one process, in order (what the workflow fans out): for tests, benchmarks and embedding.
 * `folder` holds the intermediate token partitions, layout and shard records.
 */
export async function tokenizeAndShard(input: {
  store: TieredStore;
  partitions: readonly ArtifactRef[];
  encoding: TokenizerEncoding;
  targetShardBytes: number;
  validationFraction: number;
  outPrefix: string;
  folder: string;
  pool: TokenizerPool;
  batchDocuments?: number;
}): Promise<ShardedDataset> {
  const facts = tokenizerFacts(input.encoding);
  const parts: TokenPartitionSummary[] = [];
  for (let i = 0; i < input.partitions.length; i++) {
    parts.push(
      await tokenizePartition({
        store: input.store,
        partition: input.partitions[i],
        outPrefix: `${input.folder}/tokens/part-${String(i).padStart(6, '0')}`,
        encoding: input.encoding,
        validationFraction: input.validationFraction,
        pool: input.pool,
        batchDocuments: input.batchDocuments,
      }),
    );
  }
  const plan = await planShards({
    store: input.store,
    parts: parts.map((p) => p.ref),
    dtype: facts.dtype,
    targetBytes: input.targetShardBytes,
    layoutUri: `${input.folder}/shard-layout.json`,
  });
  for (const split of ['train', 'validation'] as const) {
    for (let index = 0; index < plan.shards[split]; index++) {
      await writeShard({
        store: input.store,
        layout: plan.layout,
        split,
        index,
        outPrefix: input.outPrefix,
        recordFolder: `${input.folder}/shards`,
      });
    }
  }
  return shardedDataset(input.store, plan.layout, `${input.folder}/shards`, facts, parts);
}

/** What was written, gathered from the shard records and the token partitions' summaries. */
export async function shardedDataset(
  store: TieredStore,
  layout: ArtifactRef,
  recordFolder: string,
  facts: { dtype: TokenDtype; eot: number; vocabSize: number },
  parts: readonly Pick<TokenPartitionSummary, 'documents' | 'tokens' | 'textBytes' | 'splits'>[],
): Promise<ShardedDataset> {
  const shards = await writtenShards(store, layout, recordFolder);
  const sum = (f: (p: (typeof parts)[number]) => number) => parts.reduce((n, p) => n + f(p), 0);
  return {
    ...facts,
    documents: sum((p) => p.documents),
    tokens: sum((p) => p.tokens),
    textBytes: sum((p) => p.textBytes),
    splits: {
      train: {
        shards: shards.train,
        documents: sum((p) => p.splits.train.documents),
        tokens: sum((p) => p.splits.train.tokens),
      },
      validation: {
        shards: shards.validation,
        documents: sum((p) => p.splits.validation.documents),
        tokens: sum((p) => p.splits.validation.tokens),
      },
    },
  };
}
