export * from './storage-check';
export * from './data-pipeline';
