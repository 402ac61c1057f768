export * from './errors';
export * from './map-limit';
export * from './pad';
