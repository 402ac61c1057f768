export * from './spec';
export * from './filter-document';
export * from './stats';
export type { C4Edits, C4LineReason } from './c4';
export type { Violation } from './verdict';
