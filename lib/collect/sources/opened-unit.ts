import type { ByteInput } from '../formats/input';

/** A unit's bytes, ready to parse, and how to release what holds them (a file handle, a socket, a temp file). */
export interface OpenedUnit {
  input: ByteInput;
  close(): Promise<void>;
}
