import type { Document } from '../document/schema';
import { decodeJsonlGz } from '../document/jsonl-partition';
import { openVerified, type ArtifactRef } from '../storage/manifest';
import type { TieredStore } from '../storage/tiered-store';
import type { TokenizerEncoding } from '../tokenize/encodings';
import { DocumentTokenizer } from '../tokenize/tokenizer';
import type { TokenizerPool } from '../tokenize/pool';
import { tokenDtypeFor, type TokenDtype } from '../webdataset/npy';
import { ShardWriter, type WrittenShard } from '../webdataset/shard-writer';
import { splitFor, type Split } from '../webdataset/split';

export interface TokenizeAndShardInput {
  store: TieredStore;
  /** Document partitions in dataset order. */
  partitions: readonly ArtifactRef[];
  encoding: TokenizerEncoding;
  targetShardBytes: number;
  validationFraction: number;
  /** e.g. `warm://datasets/demo/v1` → `.../train/shard-000000.tar` */
  outPrefix: string;
  pool: TokenizerPool;
  batchDocuments?: number;
  onProgress?: (p: { partitions: number; documents: number; tokens: number; textBytes: number }) => void;
}

export interface ShardedDataset {
  dtype: TokenDtype;
  eot: number;
  vocabSize: number;
  documents: number;
  tokens: number;
  textBytes: number;
  splits: Record<Split, { shards: WrittenShard[]; documents: number; tokens: number }>;
}

/**
 * Tokenizes documents on the worker-thread pool and writes them, in dataset order, into train and validation
 * WebDataset shards. Several batches are in flight at once (one per pool thread and one more) while results are
 * consumed strictly in order, so shards are byte-identical run to run whatever thread finished first.
 */
export async function tokenizeAndShard(input: TokenizeAndShardInput): Promise<ShardedDataset> {
  const reference = new DocumentTokenizer(input.encoding);
  const { eot, vocabSize } = reference;
  reference.free();
  const dtype = tokenDtypeFor(vocabSize);
  const writers: Record<Split, ShardWriter> = {
    train: new ShardWriter(input.store, `${input.outPrefix}/train/shard`, dtype, input.targetShardBytes),
    validation: new ShardWriter(input.store, `${input.outPrefix}/validation/shard`, dtype, input.targetShardBytes),
  };
  const counts: Record<Split, { documents: number; tokens: number }> = {
    train: { documents: 0, tokens: 0 },
    validation: { documents: 0, tokens: 0 },
  };
  const batchSize = input.batchDocuments ?? 128;
  const window = input.pool.threads + 1;
  const inflight: { docs: Document[]; tokens: Promise<Uint32Array[]> }[] = [];
  let documents = 0;
  let tokens = 0;
  let textBytes = 0;
  let partitionsDone = 0;

  const drainOne = async () => {
    const batch = inflight.shift()!;
    const encoded = await batch.tokens;
    for (let i = 0; i < batch.docs.length; i++) {
      const doc = batch.docs[i];
      const split = splitFor(doc.id, input.validationFraction);
      const ids = encoded[i];
      const ordinal = counts[split].documents++;
      counts[split].tokens += ids.length;
      await writers[split].add({
        key: `sample-${String(ordinal).padStart(9, '0')}`,
        json: { id: doc.id, source: doc.source, tokens: ids.length, created: doc.created, metadata: doc.metadata },
        tokens: ids,
      });
      documents += 1;
      tokens += ids.length;
      textBytes += Buffer.byteLength(doc.text);
    }
    input.onProgress?.({ partitions: partitionsDone, documents, tokens, textBytes });
  };
  const submit = async (docs: Document[]) => {
    const encoded = input.pool.encode(
      input.encoding,
      docs.map((d) => d.text),
    );
    // Awaited in order by drainOne; this only keeps a failure from counting as unhandled meanwhile.
    encoded.catch(() => undefined);
    inflight.push({ docs, tokens: encoded });
    if (inflight.length >= window) await drainOne();
  };

  for (const partition of input.partitions) {
    let batch: Document[] = [];
    for await (const doc of decodeJsonlGz<Document>(await openVerified(input.store, partition))) {
      batch.push(doc);
      if (batch.length >= batchSize) {
        await submit(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await submit(batch);
    partitionsDone += 1;
  }
  while (inflight.length > 0) await drainOne();
  const [train, validation] = await Promise.all([writers.train.finish(), writers.validation.finish()]);
  return {
    dtype,
    eot,
    vocabSize,
    documents,
    tokens,
    textBytes,
    splits: {
      train: { shards: train, ...counts.train },
      validation: { shards: validation, ...counts.validation },
    },
  };
}
