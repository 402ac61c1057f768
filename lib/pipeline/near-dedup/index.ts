/**
 * Near-duplicate dedup as a pipeline stage, in steps that fan out like datatrove's, every step's output claim-checked
 * under `<run>/near-dedup/` (see layout.ts) and committed by a manifest written last (a retried or repeated step
 * returns it):
 *
 *   plan, once:               the fan-out, the `against` index, or the committed stage
 *   sign, per partition:      signatures, ids, and one run per band sorted by key
 *   join, per band group:     candidate pairs of each band, verified by exact (or estimated) Jaccard
 *   cluster, once:            union-find over every band's edges; per partition, what it removes
 *   filter, per partition:    kept and rejected partitions, and the kept documents' signature index
 *   commit, once:             the signature index of the stage, then its manifest, last
 *
 * Documents are numbered in input order across partitions (an `against` index's documents first), so the earliest
 * document of a cluster is kept, whatever ran where and in what order.
 */
export { resolveAgainst, signatureIndexOf } from './against';
export { clusterNearDuplicates, type NearDedupClusters } from './cluster';
export { commitNearDedup, committedNearDedup, type NearDedupFacts, type NearDedupOutput } from './commit';
export { filterNearDuplicates } from './filter';
export { joinNearDedupBands, type BandJoinCounts } from './join';
export { nearDedupFolder } from './layout';
export { bandGroups, planNearDedup, type NearDedupPlan } from './plan';
export { signNearDedupUnit, type ChunkSigningPool } from './sign';
export { nearDedupOptions, type NearDedupStepInput } from './step';
