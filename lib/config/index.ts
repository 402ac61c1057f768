export * from './schema';
export * from './load';
export * from './worker-reach';
