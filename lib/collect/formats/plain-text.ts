import { decodeUtf8, excerpt, readCapped, trimPartialUtf8 } from '../bytes';
import { toIsoDate, type RawRecord } from '../records';
import type { ByteInput, ParseOptions } from './input';

/** A .txt or .md file is one document; only maxDocumentBytes of it is ever held in memory. */
export async function* readPlainText(
  input: ByteInput,
  opts: ParseOptions,
  format: 'txt' | 'md',
): AsyncGenerator<RawRecord> {
  const { head, total } = await readCapped(input.chunks, opts.maxDocumentBytes);
  const oversized = total > opts.maxDocumentBytes;
  if (oversized && opts.oversize === 'skip') {
    yield {
      kind: 'quarantine',
      reason: 'oversize',
      detail:
        `${total} bytes, over maxDocumentBytes (${opts.maxDocumentBytes}); raise it, or set oversize: 'truncate' ` +
        'to keep the start',
      sample: excerpt(decodeUtf8(trimPartialUtf8(head.subarray(0, 800))).text),
    };
    return;
  }
  const { text, repaired } = decodeUtf8(oversized ? trimPartialUtf8(head) : head);
  yield {
    kind: 'document',
    text,
    created: toIsoDate(input.modified), // an archive's header can carry an invalid date
    metadata: {
      path: input.path,
      bytes: total,
      format,
      ...(oversized ? { truncated: true, originalBytes: total } : {}),
    },
    utf8Repaired: repaired,
  };
}
