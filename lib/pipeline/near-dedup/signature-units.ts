import {
  decodeShingles,
  decodeSignatures,
  shingleLayout,
  shingleSetOf,
  signatureOffset,
  type ExactSimilarity,
  type SignatureSubset,
} from '../../dedup';
import { mapLimit } from '../../common/map-limit';
import { findCommittedManifest, type ArtifactRef } from '../../storage/manifest';
import type { TieredStore } from '../../storage/tiered-store';
import { readVerified } from '../stage-io';
import { signatureFolder, SHINGLES_FILE } from './layout';
import { READ_CONCURRENCY } from './step';

/**
 * The sign step's units (the `against` index's files, then the input's partitions) as one numbering of documents:
 * which unit holds a document, and its signatures read back for the documents a later step needs.
 */

/** A committed signature unit, placed in the global numbering. */
export interface SignatureUnit {
  folder: string;
  docBase: number;
  documents: number;
  files: Map<string, ArtifactRef>;
}

/** Every signature unit of the stage, in numbering order, from their committed manifests. */
export async function signatureUnits(
  store: TieredStore,
  folder: string,
  indexPartitions: number,
  partitions: number,
): Promise<{ units: SignatureUnit[]; indexed: number; total: number }> {
  const manifests = await mapLimit(
    Array.from({ length: indexPartitions + partitions }, (_, u) => signatureFolder(folder, u, indexPartitions)),
    16,
    async (unitFolder) => {
      const found = await findCommittedManifest(store, `${unitFolder}/manifest.json`);
      if (!found) throw new Error(`near dedup: the signatures of ${unitFolder} are not committed; sign them first`);
      return { unitFolder, manifest: found.manifest };
    },
  );
  let docBase = 0;
  let indexed = 0;
  const units = manifests.map(({ unitFolder, manifest }, u) => {
    const documents = (manifest.meta as { documents: number }).documents;
    const unit: SignatureUnit = {
      folder: unitFolder,
      docBase,
      documents,
      files: new Map(manifest.objects.map((o) => [o.uri.slice(unitFolder.length + 1), o])),
    };
    docBase += documents;
    if (u < indexPartitions) indexed += documents;
    return unit;
  });
  return { units, indexed, total: docBase };
}

export function unitFile(unit: SignatureUnit, name: string): ArtifactRef {
  const ref = unit.files.get(name);
  if (!ref) throw new Error(`near dedup: ${unit.folder}/manifest.json lists no ${name}`);
  return ref;
}

/** Which unit holds global document `doc`. */
export function unitOf(units: readonly SignatureUnit[], doc: number): number {
  let lo = 0;
  let hi = units.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (units[mid].docBase <= doc) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Groups global documents by unit, as sorted unique local indices. */
export function byUnit(units: readonly SignatureUnit[], docs: Iterable<number>): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const doc of docs) {
    const u = unitOf(units, doc);
    let list = out.get(u);
    if (!list) out.set(u, (list = []));
    list.push(doc - units[u].docBase);
  }
  for (const [u, list] of out)
    out.set(
      u,
      [...new Set(list)].sort((a, b) => a - b),
    );
  return out;
}

/**
 * Loads the signatures of some documents into `subset`: a whole unit's file (verified against its sha256) when many
 * of its documents are wanted, else byte ranges of just those rows (runs of neighbours in one read).
 */
export async function loadSignatures(
  store: TieredStore,
  units: readonly SignatureUnit[],
  numPerm: number,
  subset: SignatureSubset,
  docs: Iterable<number>,
  opts: { denseShare?: number; maxRanges?: number } = {},
): Promise<void> {
  const missing: number[] = [];
  for (const doc of docs) if (!subset.has(doc)) missing.push(doc);
  const rowBytes = numPerm * 4;
  await mapLimit([...byUnit(units, missing)], READ_CONCURRENCY, async ([u, locals]) => {
    const unit = units[u];
    const file = unitFile(unit, 'sigs.bin');
    const ranges: [number, number][] = [];
    for (const local of locals) {
      const last = ranges[ranges.length - 1];
      if (last && last[1] === local) last[1] = local + 1;
      else ranges.push([local, local + 1]);
    }
    const rows = new Uint32Array(locals.length * numPerm);
    if (locals.length >= unit.documents * (opts.denseShare ?? 0.125) || ranges.length > (opts.maxRanges ?? 256)) {
      const part = decodeSignatures(await readVerified(store, file));
      locals.forEach((local, k) => rows.set(part.sigs.subarray(local * numPerm, (local + 1) * numPerm), k * numPerm));
    } else {
      let k = 0;
      for (const [from, to] of ranges) {
        const start = signatureOffset(numPerm, 0, from);
        const end = signatureOffset(numPerm, 0, to);
        if (end > file.bytes) throw new Error(`near dedup: ${file.uri} is shorter than its rows ${from}..${to}`);
        const chunks: Buffer[] = [];
        for await (const chunk of await store.get(file.uri, { range: { start, end: end - 1 } }))
          chunks.push(chunk as Buffer);
        const bytes = Buffer.concat(chunks);
        if (bytes.length !== end - start) throw new Error(`near dedup: short read of ${file.uri} at ${start}`);
        Buffer.from(rows.buffer, k * rowBytes, end - start).set(bytes);
        k += to - from;
      }
    }
    locals.forEach((local, k) => subset.add(unit.docBase + local, rows, k));
  });
}

/** Bytes of a ranged read; short reads are errors. */
async function readRange(store: TieredStore, file: ArtifactRef, start: number, end: number): Promise<Buffer> {
  if (end > file.bytes) throw new Error(`near dedup: ${file.uri} is shorter than the range ${start}..${end}`);
  const chunks: Buffer[] = [];
  for await (const chunk of await store.get(file.uri, { range: { start, end: end - 1 } })) chunks.push(chunk as Buffer);
  const bytes = Buffer.concat(chunks);
  if (bytes.length !== end - start) throw new Error(`near dedup: short read of ${file.uri} at ${start}`);
  return bytes;
}

/**
 * Loads the shingle sets of some documents into `oracle` (exact verification): from units that kept them (input
 * partitions; an `against` index's units keep none, so its documents stay estimated). Like `loadSignatures`, a whole
 * verified file when many of a unit's documents are wanted, else its offsets and then runs of neighbours' sets.
 */
export async function loadShingles(
  store: TieredStore,
  units: readonly SignatureUnit[],
  oracle: ExactSimilarity,
  docs: Iterable<number>,
  opts: { denseShare?: number; maxRanges?: number } = {},
): Promise<void> {
  const missing: number[] = [];
  for (const doc of docs) if (!oracle.has(doc)) missing.push(doc);
  await mapLimit([...byUnit(units, missing)], READ_CONCURRENCY, async ([u, locals]) => {
    const unit = units[u];
    const file = unit.files.get(SHINGLES_FILE);
    if (!file) return;
    if (locals.length >= unit.documents * (opts.denseShare ?? 0.125)) {
      const packed = decodeShingles(await readVerified(store, file));
      for (const local of locals) oracle.add(unit.docBase + local, shingleSetOf(packed, local).slice());
      return;
    }
    const count = unit.documents;
    const head = await readRange(store, file, 0, shingleLayout.offsetsEnd(count));
    if (shingleLayout.check(head).count !== count)
      throw new Error(`near dedup: ${file.uri} holds other than ${count} shingle sets`);
    const offsets = shingleLayout.offsets(head, count);
    const ranges: [number, number][] = [];
    for (const local of locals) {
      const last = ranges[ranges.length - 1];
      if (last && last[1] === local) last[1] = local + 1;
      else ranges.push([local, local + 1]);
    }
    if (ranges.length > (opts.maxRanges ?? 256)) {
      const packed = decodeShingles(await readVerified(store, file));
      for (const local of locals) oracle.add(unit.docBase + local, shingleSetOf(packed, local).slice());
      return;
    }
    for (const [from, to] of ranges) {
      const bytes = await readRange(
        store,
        file,
        shingleLayout.value(count, offsets[from]),
        shingleLayout.value(count, offsets[to]),
      );
      const values = new Uint32Array(bytes.length / 4);
      Buffer.from(values.buffer).set(bytes);
      for (let local = from; local < to; local++)
        oracle.add(
          unit.docBase + local,
          values.subarray(offsets[local] - offsets[from], offsets[local + 1] - offsets[from]),
        );
    }
  });
}
