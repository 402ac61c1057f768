import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import picomatch from 'picomatch';
import { Readable } from 'node:stream';
import { AccessDenied, ObjectNotFound, StoreUnreachable, TransientStorageError, mapS3Error } from '../../storage';
import type { ByteChunks } from '../bytes';
import type { CollectContext } from '../context';
import { checkBucketAllowed } from '../reach';
import { CollectError, SourceForbidden, SourceMisconfigured, SourceNotFound, SourceUnreadable } from '../errors';
import { rangeReadOffset } from '../line-ranges';
import type { S3Source } from '../source-spec';
import { compareRefs, unitId, type SourceUnit } from '../source-unit';
import type { OpenedUnit } from './opened-unit';
import { s3RandomAccess } from './random-access';

export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  return slash === -1 ? { bucket: rest, prefix: '' } : { bucket: rest.slice(0, slash), prefix: rest.slice(slash + 1) };
}

function clientOf(ctx: CollectContext, location: string): S3Client {
  if (ctx.s3 === undefined) {
    throw new SourceMisconfigured(location, 'an s3 source needs an S3 client in the collect context (ctx.s3)');
  }
  return ctx.s3;
}

/**
 * Lists an `s3` source: the object the URI names, or the objects under it read as a folder (`s3://b/data` lists
 * `data/...`, never `data2/...`), filtered by `glob` on the key below the prefix.
 */
export async function planS3Source(source: S3Source, ctx: CollectContext): Promise<SourceUnit[]> {
  const { bucket, prefix } = parseS3Uri(source.uri);
  checkBucketAllowed(bucket, ctx.allowedBuckets, source.uri);
  const client = clientOf(ctx, source.uri);
  const folder = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  const matches = source.glob ? picomatch(source.glob, { dot: false }) : () => true;
  const units: SourceUnit[] = [];
  let token: string | undefined;
  do {
    let page;
    try {
      page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }),
      );
    } catch (err) {
      throw await mapS3ToCollect(err, source.uri, client);
    }
    for (const object of page.Contents ?? []) {
      const key = object.Key;
      if (key === undefined || key.endsWith('/')) continue; // folder markers
      let ref: string;
      if (key === prefix) ref = key.slice(key.lastIndexOf('/') + 1);
      else if (key.startsWith(folder)) ref = key.slice(folder.length);
      else continue;
      if (key !== prefix && !matches(ref)) continue;
      const uri = `s3://${bucket}/${key}`;
      units.push({
        id: unitId(uri, ref),
        source,
        ref,
        uri,
        bytes: object.Size ?? 0,
        ...(object.LastModified ? { modified: object.LastModified.toISOString() } : {}),
      });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  units.sort((a, b) => compareRefs(a.ref, b.ref));
  return units;
}

export async function openS3Unit(unit: SourceUnit, ctx: CollectContext): Promise<OpenedUnit> {
  const { bucket, prefix: key } = parseS3Uri(unit.uri);
  checkBucketAllowed(bucket, ctx.allowedBuckets, unit.uri);
  const client = clientOf(ctx, unit.uri);
  const { range } = unit;
  let res;
  try {
    // A byte range is read from one byte before its start: that byte tells whether a line starts at the start.
    const from = range ? `bytes=${rangeReadOffset(range)}-` : undefined;
    res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: from }));
  } catch (err) {
    throw await mapS3ToCollect(err, unit.uri, client);
  }
  const cut = range ?? unit.rowGroups;
  if (cut && !sameObject(res, cut.fileBytes, unit.modified)) {
    (res.Body as Readable | undefined)?.destroy();
    const parts = range ? 'byte ranges' : 'row groups';
    const detail = `it changed since the collection plan cut it into ${parts} (${cut.fileBytes} bytes then)`;
    throw new SourceUnreadable(unit.uri, detail, false);
  }
  const body = res.Body;
  if (body !== undefined && !(body instanceof Readable)) {
    throw new SourceMisconfigured(unit.uri, 'the S3 client returned a non-Node stream; use the Node.js runtime config');
  }
  const stream = body ?? Readable.from([]);
  return {
    input: {
      name: key.slice(key.lastIndexOf('/') + 1),
      path: unit.uri,
      chunks: mapStreamErrors(stream, unit.uri, client),
      modified: res.LastModified,
      // A ranged GET's ContentLength is the range's: random access spans the whole object.
      randomAccess: s3RandomAccess(
        client,
        { bucket, key, etag: res.ETag },
        range ? range.fileBytes : (res.ContentLength ?? unit.bytes),
        (err) => mapS3ToCollect(err, unit.uri, client),
      ),
    },
    close: async () => {
      stream.destroy(); // a reader that stopped early must release the socket
    },
  };
}

/** Whether a ranged GET read the object as listed: its size (from Content-Range) and modification time (seconds). */
function sameObject(
  res: { ContentRange?: string; ContentLength?: number; LastModified?: Date },
  bytes: number,
  modified?: string,
): boolean {
  // A ranged GET names the object's size after the slash of its Content-Range; a whole one is that long.
  const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1] ?? res.ContentLength;
  const seconds = (date: Date) => Math.floor(date.getTime() / 1000);
  const sameTime = !modified || !res.LastModified || seconds(res.LastModified) === seconds(new Date(modified));
  return Number(total) === bytes && sameTime;
}

async function* mapStreamErrors(stream: Readable, location: string, client: S3Client): ByteChunks {
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) yield chunk;
  } catch (err) {
    throw await mapS3ToCollect(err, location, client);
  }
}

/** Storage's S3 error mapping, restated as collection errors. */
async function mapS3ToCollect(err: unknown, location: string, client: S3Client): Promise<CollectError> {
  if (err instanceof CollectError) return err;
  let endpoint = 'the S3 endpoint';
  try {
    const e = await client.config.endpoint?.();
    if (e) endpoint = `${e.protocol}//${e.hostname}${e.port ? `:${e.port}` : ''}`;
  } catch {
    // keep the generic label
  }
  const mapped = mapS3Error(err, location, endpoint);
  if (mapped instanceof ObjectNotFound) return new SourceNotFound(location, mapped.message, { cause: err });
  if (mapped instanceof AccessDenied) return new SourceForbidden(location, mapped.message, { cause: err });
  const retryable = mapped instanceof StoreUnreachable || mapped instanceof TransientStorageError;
  return new SourceUnreadable(location, mapped.message, retryable, { cause: err });
}
