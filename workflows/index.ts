export * from './storage-check';
