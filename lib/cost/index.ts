export * from './usage';
export * from './process-cpu';
export * from './prices';
export * from './usage-store';
export * from './run-cost';
export * from './gpus';
