export * from './flywheel-metrics';
