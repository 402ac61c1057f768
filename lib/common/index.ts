export * from './map-limit';
export * from './pad';
