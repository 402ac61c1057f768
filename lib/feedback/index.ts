export * from './partitions';
export * from './read';
export * from './batcher';
export * from './errors';
