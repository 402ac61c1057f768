export * from './deepspeed';
export * from './memory';
export * from './communication';
export * from './planner';
