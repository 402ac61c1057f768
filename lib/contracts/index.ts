export * from './invalid-spec';
export * from './storage-check';
export * from './digest';
