import { pad } from '../../common/pad';

/**
 * Where each near-dedup step keeps its output under the stage folder (`<run>/near-dedup`):
 *
 *   signatures/index-N/, signatures/part-N/   step sign: sigs.bin, ids.txt, band-B.bin, shingles.bin (exact
 *                                            verification; input partitions only), manifest.json
 *   edges/band-B.bin, edges/band-B.manifest.json   step join
 *   clusters/part-N.jsonl, clusters/manifest.json  step cluster
 *   filter/part-N/                           step filter: kept and rejected partitions, index.bin
 *   index.json, manifest.json                step commit
 */
export function nearDedupFolder(run: string): string {
  return `${run}/near-dedup`;
}

/** A signature unit's shingle sets, which exact verification reads for the candidates. */
export const SHINGLES_FILE = 'shingles.bin';

export const bandFile = (band: number) => `band-${pad(band, 3)}.bin`;

/** Where the sign step writes signature unit `unit`: the `against` index's files first, then the input's partitions. */
export function signatureFolder(folder: string, unit: number, indexPartitions: number): string {
  return unit < indexPartitions
    ? `${folder}/signatures/index-${pad(unit)}`
    : `${folder}/signatures/part-${pad(unit - indexPartitions)}`;
}

export const edgesFile = (folder: string, band: number) => `${folder}/edges/${bandFile(band)}`;

export const edgesManifestUri = (folder: string, band: number) =>
  `${folder}/edges/${bandFile(band).replace('.bin', '')}.manifest.json`;

export const clustersManifestUri = (folder: string) => `${folder}/clusters/manifest.json`;

export const clustersFile = (folder: string, partition: number) => `${folder}/clusters/part-${pad(partition)}.jsonl`;

export const filterFolder = (folder: string, partition: number) => `${folder}/filter/part-${pad(partition)}`;
