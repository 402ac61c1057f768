import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { FlywheelError } from '../common';
import type { KeyRing } from './key-ring';

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The ciphertext names a key the ring does not hold: the key was removed from the ring, or never configured here. */
export class UnknownEncryptionKey extends FlywheelError {
  constructor(
    readonly keyId: string,
    knownKeyIds: string[],
  ) {
    super(
      'UnknownEncryptionKey',
      `Payload is encrypted with key "${keyId}", which this key ring does not hold (it holds ${knownKeyIds.join(', ')}). ` +
        'Add that key to FLYWHEEL_CODEC_KEYS (after the current one) to read it.',
      { retryable: false },
    );
  }
}

/** AES-GCM authentication failed: the ciphertext or its key id was altered, or the key under that id is not the one it was sealed with. */
export class DecryptionFailed extends FlywheelError {
  constructor(
    readonly keyId: string,
    reason: string,
  ) {
    super('DecryptionFailed', `Payload encrypted with key "${keyId}" cannot be decrypted: ${reason}.`, {
      retryable: false,
    });
  }
}

export interface Sealed {
  keyId: string;
  /** IV (12 bytes) ‖ ciphertext ‖ GCM tag (16 bytes). */
  data: Buffer;
}

/**
 * AES-256-GCM with the ring's current key and a fresh random 96-bit IV per call. The key id is authenticated as
 * associated data, so moving a ciphertext under another key id fails to decrypt.
 */
export function seal(ring: KeyRing, plaintext: Uint8Array): Sealed {
  const keyId = ring.currentKeyId;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', ring.key(keyId)!, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(keyId, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { keyId, data: Buffer.concat([iv, body, cipher.getAuthTag()]) };
}

/** Opens what `seal` made with any key of the ring, picked by id; throws `UnknownEncryptionKey` or `DecryptionFailed`. */
export function open(ring: KeyRing, sealed: { keyId: string; data: Uint8Array }): Buffer {
  const { keyId, data } = sealed;
  const key = ring.key(keyId);
  if (!key) throw new UnknownEncryptionKey(keyId, ring.keyIds);
  if (data.length < IV_BYTES + TAG_BYTES)
    throw new DecryptionFailed(keyId, `${data.length} bytes is shorter than an IV and a tag`);
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(keyId, 'utf8'));
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new DecryptionFailed(
      keyId,
      'authentication failed (the payload was altered, or the key under this id is not the one it was encrypted with)',
    );
  }
}
