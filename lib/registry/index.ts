export * from './champion-history';
export * from './code-version';
export * from './errors';
export * from './layout';
export * from './model-registry';
export * from './schema';
export * from './hf-export';
