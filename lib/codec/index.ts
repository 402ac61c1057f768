export * from './key-ring';
export * from './aes-gcm';
