export * from './storage-check';
export * from './data-pipeline';
export * from './training-run';
export * from './feedback-ledger';
export * from './flywheel-run';
export * from './storage-lifecycle';
