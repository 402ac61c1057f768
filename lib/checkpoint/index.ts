export * from './errors';
export * from './layout';
export * from './retention';
export * from './checkpoint-manager';
