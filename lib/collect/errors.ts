import { FlywheelError } from '../common';

/**
 * Typed collection failures. Activities decide retry vs fail-fast from `retryable` alone; every message names the
 * source location and what to do about it.
 */

export interface CollectErrorOptions {
  cause?: unknown;
}

export type CollectErrorCode =
  | 'SourceNotFound'
  | 'SourceForbidden'
  | 'SourceUnreadable'
  | 'SourceFetchFailed'
  | 'SourceTooLarge'
  | 'SourceMisconfigured';

export class CollectError extends FlywheelError {
  declare readonly type: CollectErrorCode;
  /** The file path, s3:// URI or URL that failed. */
  readonly location: string;

  constructor(
    type: CollectErrorCode,
    location: string,
    message: string,
    retryable: boolean,
    options: CollectErrorOptions = {},
  ) {
    super(type, message, { retryable, details: { location }, cause: options.cause });
    this.location = location;
  }

  /** The same as `type`. */
  get code(): CollectErrorCode {
    return this.type;
  }
}

export class SourceNotFound extends CollectError {
  constructor(location: string, detail = 'it does not exist', options: CollectErrorOptions = {}) {
    super(
      'SourceNotFound',
      location,
      `Source not found: ${location} (${detail}). Check the path, URI or URL in the source spec.`,
      false,
      options,
    );
  }
}

/** Outside the allowed roots, buckets or hosts, or refused by the file system, the bucket policy or the server. */
export class SourceForbidden extends CollectError {
  constructor(location: string, detail: string, options: CollectErrorOptions = {}) {
    super(
      'SourceForbidden',
      location,
      `Source forbidden: ${location} (${detail}). Collect only from the allowed roots, buckets and hosts ` +
        '(FLYWHEEL_COLLECT_ROOTS, FLYWHEEL_COLLECT_BUCKETS, FLYWHEEL_COLLECT_HOSTS), or fix the permissions.',
      false,
      options,
    );
  }
}

/** An I/O error while reading; retryable unless the error says the data itself is gone. */
export class SourceUnreadable extends CollectError {
  constructor(location: string, detail: string, retryable: boolean, options: CollectErrorOptions = {}) {
    super(
      'SourceUnreadable',
      location,
      `Cannot read ${location} (${detail}). ` +
        (retryable ? 'The read will be retried; if it persists, check the disk or store.' : 'Fix or remove the file.'),
      retryable,
      options,
    );
  }
}

export class SourceFetchFailed extends CollectError {
  readonly status: number | undefined;
  readonly attempts: number;

  constructor(
    location: string,
    detail: string,
    attempts: number,
    retryable: boolean,
    status?: number,
    options: CollectErrorOptions = {},
  ) {
    super(
      'SourceFetchFailed',
      location,
      `Download failed: ${location} (${detail}; ${attempts} attempt${attempts === 1 ? '' : 's'}). ` +
        (retryable
          ? 'The server or network is failing; raise retries or timeoutMs, or set onSourceError to skip.'
          : 'Check the URL, or set onSourceError to skip.'),
      retryable,
      options,
    );
    this.status = status;
    this.attempts = attempts;
  }
}

export class SourceTooLarge extends CollectError {
  readonly limitBytes: number;

  constructor(location: string, limitBytes: number, detail: string) {
    super(
      'SourceTooLarge',
      location,
      `Source too large: ${location} (${detail}, limit ${limitBytes} bytes). Raise maxBytes in the source spec.`,
      false,
    );
    this.limitBytes = limitBytes;
  }
}

/** The source cannot be read with what the context provides (e.g. an s3 source without an S3 client). */
export class SourceMisconfigured extends CollectError {
  constructor(location: string, detail: string) {
    super('SourceMisconfigured', location, `Cannot collect ${location}: ${detail}.`, false);
  }
}
