import { FlywheelError } from '../common';

/**
 * Typed storage failures. Activities decide retry vs fail-fast from `retryable` alone, so every backend maps its
 * native errors onto these classes and every message names the URI and what the operator can do about it.
 */

export interface StorageErrorOptions {
  cause?: unknown;
}

export class StorageError extends FlywheelError {
  readonly uri: string;

  constructor(type: string, uri: string, message: string, retryable: boolean, options: StorageErrorOptions = {}) {
    super(type, message, { retryable, details: { uri }, cause: options.cause });
    this.uri = uri;
  }

  /** The same as `type`. */
  get code(): string {
    return this.type;
  }
}

export class ObjectNotFound extends StorageError {
  constructor(uri: string, detail = 'it does not exist', options: StorageErrorOptions = {}) {
    super(
      'ObjectNotFound',
      uri,
      `Object not found: ${uri} (${detail}). Check the URI, or re-run the step that writes it.`,
      false,
      options,
    );
  }
}

export interface ChecksumMismatchDetails {
  expectedSha256: string;
  /** Undefined when only the byte count could be checked (e.g. from a HEAD without a stored hash). */
  actualSha256?: string;
  expectedBytes: number;
  actualBytes: number;
}

export class ChecksumMismatch extends StorageError {
  readonly expectedSha256: string;
  readonly actualSha256: string | undefined;
  readonly expectedBytes: number;
  readonly actualBytes: number;

  constructor(uri: string, details: ChecksumMismatchDetails, context?: string, options: StorageErrorOptions = {}) {
    const what =
      details.actualSha256 === undefined
        ? `expected ${details.expectedBytes} bytes, found ${details.actualBytes}`
        : `expected sha256 ${details.expectedSha256} (${details.expectedBytes} bytes), ` +
          `got ${details.actualSha256} (${details.actualBytes} bytes)`;
    super(
      'ChecksumMismatch',
      uri,
      `Checksum mismatch for ${uri}${context ? ` (${context})` : ''}: ${what}. The object was changed or corrupted ` +
        'after its manifest was written; restore it from another tier or regenerate the artifact.',
      false,
      options,
    );
    this.expectedSha256 = details.expectedSha256;
    this.actualSha256 = details.actualSha256;
    this.expectedBytes = details.expectedBytes;
    this.actualBytes = details.actualBytes;
  }
}

export class AccessDenied extends StorageError {
  constructor(uri: string, detail = 'permission denied', options: StorageErrorOptions = {}) {
    super(
      'AccessDenied',
      uri,
      `Access denied to ${uri} (${detail}). Check the credentials, bucket policy or file permissions for this location.`,
      false,
      options,
    );
  }
}

export class StoreUnreachable extends StorageError {
  readonly endpoint: string;

  constructor(uri: string, endpoint: string, detail: string, options: StorageErrorOptions = {}) {
    super(
      'StoreUnreachable',
      uri,
      `Cannot reach the object store at ${endpoint} for ${uri} (${detail}). Check that the server is running and ` +
        'the endpoint is right; the operation will be retried.',
      true,
      options,
    );
    this.endpoint = endpoint;
  }
}

export class TransientStorageError extends StorageError {
  constructor(uri: string, detail: string, options: StorageErrorOptions = {}) {
    super(
      'TransientStorageError',
      uri,
      `Temporary storage failure for ${uri} (${detail}). The store is overloaded or failing; the operation will be ` +
        'retried. If it persists, check the server health.',
      true,
      options,
    );
  }
}

export class InvalidObjectKey extends StorageError {
  constructor(key: string, reason: string) {
    super(
      'InvalidObjectKey',
      key,
      `Invalid object key ${JSON.stringify(key)}: ${reason}. Keys are relative '/'-separated paths such as ` +
        "'datasets/web/shard-00000.tar'.",
      false,
    );
  }
}

export class InvalidTierUri extends StorageError {
  constructor(uri: string, reason: string) {
    super(
      'InvalidTierUri',
      uri,
      `Invalid tier URI ${JSON.stringify(uri)}: ${reason}. Use <tier>://<key> with tier hot, warm or cold, ` +
        "e.g. 'warm://datasets/web/manifest.json'.",
      false,
    );
  }
}

/** A manifest that cannot be parsed or does not match the schema; retrying cannot fix it. */
export class CorruptManifest extends StorageError {
  constructor(uri: string, detail: string, options: StorageErrorOptions = {}) {
    super(
      'CorruptManifest',
      uri,
      `Corrupt manifest ${uri}: ${detail}. Regenerate the artifact, or point at an intact manifest.`,
      false,
      options,
    );
  }
}

/** Any other backend failure that retrying will not fix (e.g. a key that collides with a directory). */
export class PermanentStorageError extends StorageError {
  constructor(uri: string, detail: string, options: StorageErrorOptions = {}) {
    super('PermanentStorageError', uri, `Storage operation failed for ${uri}: ${detail}.`, false, options);
  }
}
