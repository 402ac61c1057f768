export * from './npy';
export * from './shard-writer';
export * from './split';
