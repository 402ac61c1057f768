import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BandKeyChunk } from './band-join';
import { DedupInputError, InvalidDedupOptions } from './errors';
import { CorruptDedupFile, decodeSignatureIndex, type SignatureIndex, type SignatureIndexMeta } from './formats';
import type { LshParams } from './lsh-params';
import { MinHasher } from './minhash';
import type { ResolvedDedupOptions } from './options';

/** The file every dedup run writes next to kept.jsonl: the signature index of its kept documents. */
export const INDEX_FILE = 'index.bin';

/** Reads an index given as its file or as the folder of the run that wrote it. */
export function readSignatureIndex(fileOrDir: string): SignatureIndex & { file: string } {
  let file = fileOrDir;
  try {
    if (fs.statSync(fileOrDir).isDirectory()) file = path.join(fileOrDir, INDEX_FILE);
  } catch {
    throw new DedupInputError(`index not found: ${fileOrDir} (give the --out folder of an earlier dedup run)`);
  }
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    throw new DedupInputError(
      `no signature index at ${file}: runs write ${INDEX_FILE} into their --out folder; rerun the earlier dedup to get one`,
    );
  }
  try {
    return { ...decodeSignatureIndex(bytes), file };
  } catch (err) {
    if (err instanceof CorruptDedupFile) throw new DedupInputError(`${file}: ${err.message}`);
    throw err;
  }
}

/** What must agree between an index and a run for their signatures and exact hashes to be comparable. */
export function indexMismatches(
  meta: SignatureIndexMeta,
  options: Pick<ResolvedDedupOptions, 'minhash' | 'exactField'>,
  /** Name settings as the command's flags or as spec fields. */
  naming: 'flag' | 'field' = 'flag',
): string[] {
  const problems: string[] = [];
  const ours = { ...options.minhash, exactField: options.exactField ?? null };
  const theirs = { ...meta.params, exactField: meta.exactField };
  const flags = {
    numPerm: '--num-perm',
    ngram: '--ngram',
    seed: 'seed',
    normalizeNumbers: '--normalize-numbers',
    normalizeDiacritics: '--normalize-diacritics',
    exactField: '--exact-field',
  };
  for (const key of Object.keys(flags) as (keyof typeof flags)[]) {
    // Unset switches are off; an unset field is none.
    const unset = key === 'exactField' ? 'none' : false;
    const a = ours[key] ?? unset;
    const b = theirs[key] ?? unset;
    if (a !== b)
      problems.push(`${naming === 'flag' ? flags[key] : key}: the index was built with ${b}, this run uses ${a}`);
  }
  return problems;
}

/** Throws InvalidDedupOptions naming every setting that differs, and what to pass instead. */
export function checkIndexCompatible(
  index: { meta: SignatureIndexMeta; file?: string },
  options: Pick<ResolvedDedupOptions, 'minhash' | 'exactField'>,
): void {
  const problems = indexMismatches(index.meta, options);
  if (problems.length)
    throw new InvalidDedupOptions(
      problems.map((p) => `${p}${index.file ? ` (${index.file})` : ''}; sign new data the way the index was signed`),
    );
}

/** An index's band keys for the run's bands × rows, in shared memory like a signed chunk's: it joins as one more chunk. */
export function indexBandKeys(index: SignatureIndex, lsh: LshParams, docBase: number): BandKeyChunk {
  const { signatures } = index;
  const hasher = new MinHasher(index.meta.params);
  const bandKeys = new Uint32Array(new SharedArrayBuffer(signatures.count * lsh.bands * 2 * 4));
  for (let i = 0; i < signatures.count; i++)
    if (signatures.words[i] > 0) hasher.bandKeys(signatures.sigs, i, lsh.bands, lsh.rows, bandKeys, i * lsh.bands);
  return { docBase, count: signatures.count, words: signatures.words, bandKeys };
}

/** Writes an index file from its pieces, atomically (a partial file, then a rename). */
export function writeSignatureIndexFile(file: string, parts: Iterable<Buffer>): void {
  const partial = `${file}.partial`;
  const fd = fs.openSync(partial, 'w');
  try {
    for (const part of parts) fs.writeSync(fd, part);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(partial, file);
}
