export * from './model';
export * from './funnel';
export * from './dedup-clusters';
export * from './checkpoints';
export * from './sections';
export * from './svg-charts';
export * from './render-html';
export * from './promotions';
