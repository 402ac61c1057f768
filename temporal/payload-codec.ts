import { METADATA_ENCODING_KEY, type DataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { DecryptionFailed, open, seal, type KeyRing } from '../lib/codec';
import type { FlywheelConfig } from '../lib/config';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA_KEY = 'encryption-key-id';

const utf8 = new TextEncoder();
const text = new TextDecoder();

/**
 * Encrypts each whole payload (metadata and data, as protobuf bytes) with AES-256-GCM under the ring's current key.
 * The outer payload says only `binary/encrypted` and the key id; decoding picks the key by that id, so payloads
 * written under a rotated-out key stay readable while it is in the ring. Payloads that are not encrypted (history
 * from before encryption was turned on, a UI start without the codec server) pass through.
 */
export class EncryptionCodec implements PayloadCodec {
  constructor(readonly keyRing: KeyRing) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const { keyId, data } = seal(this.keyRing, temporal.api.common.v1.Payload.encode(payload).finish());
      return {
        metadata: {
          [METADATA_ENCODING_KEY]: utf8.encode(ENCRYPTED_ENCODING),
          [KEY_ID_METADATA_KEY]: utf8.encode(keyId),
        },
        data,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
      if (!encoding || text.decode(encoding) !== ENCRYPTED_ENCODING) return payload;
      const keyId = payload.metadata?.[KEY_ID_METADATA_KEY];
      if (!keyId) throw new DecryptionFailed('(none)', `the payload has no ${KEY_ID_METADATA_KEY} metadata`);
      const plain = open(this.keyRing, { keyId: text.decode(keyId), data: payload.data ?? new Uint8Array() });
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}

/** The data converter for the configured cluster: encrypting when a key ring is configured, the SDK's default if not. */
export function flywheelDataConverter(config: FlywheelConfig): DataConverter | undefined {
  const keyRing = config.codec.keyRing;
  return keyRing ? { payloadCodecs: [new EncryptionCodec(keyRing)] } : undefined;
}
