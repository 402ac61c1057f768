import {
  type BucketLocationConstraint,
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AccessDenied,
  ObjectNotFound,
  PermanentStorageError,
  StorageError,
  StoreUnreachable,
  TransientStorageError,
} from './errors';
import { HashingStream, sha256Hex } from './hashing';
import { countS3Requests } from './s3-requests';
import { traceS3Calls } from './s3-tracing';
import {
  guardBody,
  listEveryPage,
  readAll,
  validateKey,
  validateListLimit,
  validatePrefix,
  validateRange,
  type GetOptions,
  type ListEntry,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type PutBody,
  type PutOptions,
  type PutResult,
} from './object-store';

export const MULTIPART_PART_BYTES = 8 * 1024 * 1024;
const MULTIPART_QUEUE_SIZE = 2; // bounds memory to ~(queue + 1) parts per upload
/**
 * Bytes already in memory go up in one PutObject up to this size: splitting them into parts costs round trips and
 * saves no memory. Larger ones (and every stream) go up in parts.
 */
export const SINGLE_PUT_MAX_BYTES = 64 * 1024 * 1024;
const MAX_COPY_OBJECT_BYTES = 5 * 1024 * 1024 * 1024; // CopyObject's limit; larger objects are streamed
const SHA256_METADATA = 'sha256';

export interface S3ClientOptions {
  /** Custom endpoint for S3-compatible servers, e.g. 'http://127.0.0.1:9000'; omit for AWS. */
  endpoint?: string;
  region: string;
  /** Required by most self-hosted servers (bucket in the path, not the host name). */
  forcePathStyle: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * 'when_supported' is the SDK default (CRC32 on every upload, aws-chunked trailers for streams);
   * 'when_required' for servers that do not understand trailing checksums (they would store the framing as data).
   */
  checksums: 'when_supported' | 'when_required';
  /** Total attempts per request, including the first, with the SDK's 'standard' retry mode. */
  maxAttempts: number;
  /** Give up connecting after this long (default 10 s) so a dead endpoint fails fast as StoreUnreachable. */
  connectTimeoutMs?: number;
  /** Drop a socket idle for this long (default 120 s) rather than hang an activity forever. */
  socketIdleTimeoutMs?: number;
}

/** An S3 client whose requests are traced as client spans inside a trace (see traceS3Calls). */
export function createS3Client(options: S3ClientOptions): S3Client {
  const checksums = options.checksums === 'when_supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
  const client = new S3Client({
    endpoint: options.endpoint,
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    credentials: options.credentials,
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    retryMode: 'standard',
    maxAttempts: options.maxAttempts,
    requestHandler: {
      connectionTimeout: options.connectTimeoutMs ?? 10_000,
      socketTimeout: options.socketIdleTimeoutMs ?? 120_000,
    },
  });
  traceS3Calls(client);
  countS3Requests(client);
  return client;
}

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ('' or omitted for the bucket root); no leading or trailing '/'. */
  prefix?: string;
  client: S3Client;
}

/** Object store over an S3 bucket (or a prefix of one) on AWS or any S3-compatible server. */
export class S3Store implements ObjectStore {
  readonly name: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (this.prefix !== '') validateKey(this.prefix);
    this.client = options.client;
    this.name = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
  }

  uri(key: string): string {
    return `${this.name}/${key}`;
  }

  /** Creates the bucket unless it exists; safe to call from every worker at start-up. */
  async ensureBucket(): Promise<void> {
    const uri = `s3://${this.bucket}`;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw await this.mapError(err, uri);
    }
    try {
      const region = await this.client.config.region();
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          // us-east-1 is the one region that rejects an explicit location constraint.
          CreateBucketConfiguration:
            region === 'us-east-1' ? undefined : { LocationConstraint: region as BucketLocationConstraint },
        }),
      );
    } catch (err) {
      if (nameOf(err) === 'BucketAlreadyOwnedByYou') return; // another worker won the race
      throw await this.mapError(err, uri);
    }
  }

  async put(key: string, body: PutBody, opts: PutOptions = {}): Promise<PutResult> {
    const fullKey = this.keyOf(key);
    const uri = this.uri(key);
    const known = Buffer.isBuffer(body) ? body : typeof body === 'string' ? Buffer.from(body) : undefined;
    if (known !== undefined && known.length <= SINGLE_PUT_MAX_BYTES) {
      const sha256 = sha256Hex(known);
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: fullKey,
            Body: known,
            ContentType: opts.contentType,
            Metadata: { [SHA256_METADATA]: sha256 },
          }),
        );
      } catch (err) {
        throw await this.mapError(err, uri);
      }
      return { key, bytes: known.length, sha256 };
    }

    if (known !== undefined) {
      const sha256 = sha256Hex(known);
      await this.upload(uri, fullKey, known, opts, { [SHA256_METADATA]: sha256 });
      return { key, bytes: known.length, sha256 };
    }

    const source = guardBody(body);
    const hasher = new HashingStream();
    const piping = pipeline(source.stream, hasher).then(
      () => undefined,
      (err: unknown) => ({ err }),
    );
    try {
      await this.upload(uri, fullKey, hasher, opts, undefined);
    } catch (err) {
      hasher.destroy(); // unblock the body pipeline so it settles instead of waiting for a reader
      await piping;
      if (source.failure) throw source.failure.error; // the caller's stream failed, not the store
      throw err;
    }
    const piped = await piping;
    if (source.failure) throw source.failure.error;
    if (piped) throw await this.mapError(piped.err, uri);
    return { key, bytes: hasher.bytes, sha256: hasher.sha256 };
  }

  /** Multipart upload (a single PutObject when the body fits in one part); lib-storage aborts it on failure. */
  private async upload(
    uri: string,
    fullKey: string,
    body: Buffer | Readable,
    opts: PutOptions,
    metadata: Record<string, string> | undefined,
  ): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: fullKey, Body: body, ContentType: opts.contentType, Metadata: metadata },
      partSize: MULTIPART_PART_BYTES,
      queueSize: MULTIPART_QUEUE_SIZE,
    });
    try {
      await upload.done();
    } catch (err) {
      throw await this.mapError(err, uri);
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    const uri = this.uri(key);
    validateRange(uri, opts.range);
    const range = opts.range ? `bytes=${opts.range.start}-${opts.range.end ?? ''}` : undefined;
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key), Range: range }),
      );
      const body = res.Body;
      if (body instanceof Readable) return this.withMappedErrors(body, uri);
      if (body === undefined) return Readable.from([], { objectMode: false });
      throw new PermanentStorageError(uri, 'the S3 client returned a non-Node stream; use the Node.js runtime config');
    } catch (err) {
      throw await this.mapError(err, uri);
    }
  }

  async getBytes(key: string): Promise<Buffer> {
    return readAll(await this.get(key));
  }

  async head(key: string): Promise<ObjectInfo> {
    const uri = this.uri(key);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }));
      const sha256 = res.Metadata?.[SHA256_METADATA];
      return {
        key,
        bytes: res.ContentLength ?? 0,
        modified: res.LastModified ?? new Date(0),
        ...(sha256 && /^[0-9a-f]{64}$/.test(sha256) ? { sha256 } : {}),
      };
    } catch (err) {
      throw await this.mapError(err, uri);
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.head(key);
      return true;
    } catch (err) {
      if (err instanceof ObjectNotFound) return false;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const uri = this.uri(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }));
    } catch (err) {
      if (nameOf(err) === 'NoSuchKey') return; // S3 itself answers 204; some compatible servers say 404
      throw await this.mapError(err, uri);
    }
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    const from = this.keyOf(fromKey);
    const to = this.keyOf(toKey);
    const source = await this.head(fromKey); // missing source → ObjectNotFound naming it
    if (from === to) return; // S3 rejects copying an object onto itself unchanged; it is already there
    if (source.bytes > MAX_COPY_OBJECT_BYTES) {
      await this.put(toKey, await this.get(fromKey));
      return;
    }
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: to,
          CopySource: `${this.bucket}/${encodeKeyForCopySource(from)}`,
          MetadataDirective: 'COPY', // keeps the stored sha256
        }),
      );
    } catch (err) {
      if (statusOf(err) === 404 || nameOf(err) === 'NoSuchKey') {
        throw new ObjectNotFound(this.uri(fromKey), 'deleted while being copied', { cause: err });
      }
      throw await this.mapError(err, `${this.uri(fromKey)} → ${this.uri(toKey)}`);
    }
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    validatePrefix(prefix);
    const uri = this.uri(prefix);
    const limit = validateListLimit(uri, opts.limit);
    const fullPrefix = this.prefix ? `${this.prefix}/${prefix}` : prefix;
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    const entries: ListEntry[] = [];
    let token = opts.cursor;
    try {
      // Keys ending in '/' are folder markers (consoles, filesystem-backed servers), never our objects; skipping
      // them can leave a page short, so keep asking for exactly the remainder until the page is full.
      do {
        const res = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: fullPrefix || undefined,
            ContinuationToken: token,
            MaxKeys: limit - entries.length,
          }),
        );
        for (const o of res.Contents ?? []) {
          if (o.Key === undefined || o.Key.endsWith('/')) continue;
          entries.push({ key: o.Key.slice(strip), bytes: o.Size ?? 0, modified: o.LastModified ?? new Date(0) });
        }
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token !== undefined && entries.length < limit);
    } catch (err) {
      throw await this.mapError(err, uri);
    }
    return token === undefined ? { entries } : { entries, cursor: token };
  }

  listAll(prefix: string): AsyncIterable<ListEntry> {
    return listEveryPage(this, prefix); // list() validates the prefix on the first page
  }

  private keyOf(key: string): string {
    validateKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private withMappedErrors(source: Readable, uri: string): Readable {
    const out = new PassThrough();
    source.on('error', (err) => {
      void this.mapError(err, uri).then((mapped) => out.destroy(mapped));
    });
    out.on('close', () => source.destroy()); // a reader that stops early must release the socket
    source.pipe(out);
    return out;
  }

  private async endpointLabel(): Promise<string> {
    try {
      const endpoint = await this.client.config.endpoint?.();
      if (endpoint) return `${endpoint.protocol}//${endpoint.hostname}${endpoint.port ? `:${endpoint.port}` : ''}`;
      return `https://s3.${await this.client.config.region()}.amazonaws.com`;
    } catch {
      return 'the configured S3 endpoint';
    }
  }

  private async mapError(err: unknown, uri: string): Promise<StorageError> {
    if (err instanceof StorageError) return err;
    return mapS3Error(err, uri, await this.endpointLabel());
  }
}

/** S3 wants CopySource URL-encoded per segment; '/' must stay literal. */
function encodeKeyForCopySource(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
  'UND_ERR_SOCKET',
]);
const NETWORK_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'NetworkingError']);
const NOT_FOUND_NAMES = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket']);
const ACCESS_NAMES = new Set([
  'AccessDenied',
  'Forbidden',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'AllAccessDisabled',
]);
const TRANSIENT_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'BadDigest',
  'XAmzContentSHA256Mismatch',
]);

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  errors?: unknown;
  $metadata?: { httpStatusCode?: number };
}

function nameOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && typeof (err as ErrorShape).name === 'string'
    ? ((err as ErrorShape).name as string)
    : undefined;
}

function statusOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null ? (err as ErrorShape).$metadata?.httpStatusCode : undefined;
}

function networkCodeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { code, errors } = err as ErrorShape;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
  // Node's happy-eyeballs connect reports every failed address inside an AggregateError.
  if (Array.isArray(errors)) for (const inner of errors) if (networkCodeOf(inner)) return networkCodeOf(inner);
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err ? networkCodeOf(cause) : undefined;
}

/** Maps an SDK or socket error onto the storage error classes; exported for the tests and other S3 callers. */
export function mapS3Error(err: unknown, uri: string, endpoint: string): StorageError {
  if (err instanceof StorageError) return err;
  const name = nameOf(err) ?? 'Error';
  const status = statusOf(err);
  const message = err instanceof Error ? err.message : String(err);
  const detail = `${name}${status ? ` ${status}` : ''}${message && message !== name ? `: ${message}` : ''}`;
  const network = networkCodeOf(err);
  if (network !== undefined || (status === undefined && NETWORK_NAMES.has(name))) {
    return new StoreUnreachable(uri, endpoint, network ? `${network}: ${message}` : detail, { cause: err });
  }
  if (name === 'NoSuchBucket') {
    return new ObjectNotFound(uri, `the bucket does not exist at ${endpoint}; create it or fix the bucket name`, {
      cause: err,
    });
  }
  if (NOT_FOUND_NAMES.has(name) || status === 404) return new ObjectNotFound(uri, detail, { cause: err });
  if (ACCESS_NAMES.has(name) || status === 403) return new AccessDenied(uri, detail, { cause: err });
  if (name === 'NotImplemented' || status === 501) {
    return new PermanentStorageError(
      uri,
      `${detail}; the server does not support a feature this request uses (for servers without flexible ` +
        "checksums set checksums to 'when_required')",
      { cause: err },
    );
  }
  if (TRANSIENT_NAMES.has(name) || status === 429 || (status !== undefined && status >= 500)) {
    return new TransientStorageError(uri, detail, { cause: err });
  }
  return new PermanentStorageError(uri, detail, { cause: err });
}
