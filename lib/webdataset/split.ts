import { createHash } from 'node:crypto';

export type Split = 'train' | 'validation';

/**
 * Deterministic train/validation assignment by a hash of the document id: the same document always lands in the
 * same split, whatever else the dataset holds, so a grown dataset never leaks validation documents into training.
 */
export function splitFor(id: string, validationFraction: number): Split {
  if (validationFraction <= 0) return 'train';
  const h = createHash('sha256').update(id).digest().readUInt32BE(0);
  return h / 0x100000000 < validationFraction ? 'validation' : 'train';
}
