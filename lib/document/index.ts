export * from './schema';
export * from './jsonl-partition';
