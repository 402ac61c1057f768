export * from './encodings';
export * from './tokenizer';
export * from './pool';
