export * from './source-spec';
export * from './errors';
export * from './context';
export * from './source-unit';
export * from './plan';
export * from './read-unit';
export * from './stats';
export { QUARANTINE_REASONS, type QuarantineReason, type CollectEvent } from './records';
export { sampleCorpus, type SampleCorpus, type SampleDocument, type SampleCorpusName } from './sample-corpus';
