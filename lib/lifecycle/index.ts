export * from './errors';
export * from './inventory';
export * from './references';
export * from './plan';
export * from './apply';
