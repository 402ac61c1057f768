export * from './storage-check';
export * from './data-pipeline';
export * from './training-run';
