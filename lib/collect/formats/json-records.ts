import { decodeUtf8, excerpt, readCapped, splitLines } from '../bytes';
import { toIsoDate, type RawRecord, type RecordPosition } from '../records';
import type { FieldMapping } from '../source-spec';
import { MAX_JSON_FILE_BYTES, maxJsonLineBytes, type ByteInput, type ParseOptions } from './input';

/**
 * JSON lines: one record per non-blank line, streamed; a bad line is quarantined with its line number. `firstLine`
 * is the number of the input's first line in its file (a byte range of a file starts past line 1).
 */
export async function* readJsonLines(input: ByteInput, opts: ParseOptions, firstLine = 1): AsyncGenerator<RawRecord> {
  const maxLine = maxJsonLineBytes(opts);
  for await (const line of splitLines(input.chunks, maxLine, firstLine)) {
    const position = { line: line.number };
    if (line.overflowBytes !== undefined) {
      yield {
        kind: 'quarantine',
        position,
        reason: 'oversize',
        detail: `line ${line.number} is ${line.overflowBytes} bytes, over the ${maxLine}-byte line limit (4 × maxDocumentBytes)`,
      };
      continue;
    }
    const { text, repaired } = decodeUtf8(line.bytes);
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      yield {
        kind: 'quarantine',
        position,
        reason: 'json_parse',
        detail: `line ${line.number} is not valid JSON: ${(err as Error).message}`,
        sample: excerpt(text),
      };
      continue;
    }
    yield recordFromJson(
      value,
      opts.fields,
      position,
      { path: input.path, line: line.number, format: 'jsonl' },
      repaired,
      text,
    );
  }
}

/** A .json file: an array of records, or one record. Parsed whole, so its size is bounded. */
export async function* readJsonDocument(input: ByteInput, opts: ParseOptions): AsyncGenerator<RawRecord> {
  const { head, total } = await readCapped(input.chunks, MAX_JSON_FILE_BYTES);
  if (total > MAX_JSON_FILE_BYTES) {
    yield {
      kind: 'quarantine',
      reason: 'oversize',
      detail: `JSON file of ${total} bytes, over the ${MAX_JSON_FILE_BYTES}-byte limit for whole-file JSON; convert it to JSON lines (.jsonl), which stream`,
    };
    return;
  }
  const { text, repaired } = decodeUtf8(head);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    yield {
      kind: 'quarantine',
      reason: 'json_parse',
      detail: `not valid JSON: ${(err as Error).message}`,
      sample: excerpt(text),
    };
    return;
  }
  if (!Array.isArray(value)) {
    yield recordFromJson(value, opts.fields, undefined, { path: input.path, format: 'json' }, repaired);
    return;
  }
  for (let item = 0; item < value.length; item++) {
    const position = { item };
    yield recordFromJson(value[item], opts.fields, position, { path: input.path, item, format: 'json' }, repaired);
  }
}

function where(position: RecordPosition | undefined): string {
  if (position === undefined) return 'the record';
  return 'line' in position ? `line ${position.line}` : `item ${position.item}`;
}

/** Deeper metadata than this is refused: serializing it again downstream would overflow the stack. */
export const MAX_METADATA_DEPTH = 64;

/**
 * Maps one parsed JSON value onto a raw document through the field mapping, or says what is wrong with it. `source`
 * is the record's own text, when there is one, for samples.
 */
export function recordFromJson(
  value: unknown,
  fields: FieldMapping,
  position: RecordPosition | undefined,
  base: Record<string, unknown>,
  utf8Repaired: boolean,
  source?: string,
): RawRecord {
  const sample = () => (source === undefined ? sampleOf(value) : excerpt(source));
  if (!isPlainObject(value)) {
    return {
      kind: 'quarantine',
      position,
      reason: 'not_an_object',
      detail: `${where(position)} is ${describe(value)}, expected an object with a '${fields.text}' field`,
      sample: sample(),
    };
  }
  const text = getField(value, fields.text);
  if (text === undefined || text === null) {
    return {
      kind: 'quarantine',
      position,
      reason: 'missing_text',
      detail: `${where(position)} has no '${fields.text}' field; set fields.text to the field that holds the text`,
      sample: sample(),
    };
  }
  if (typeof text !== 'string') {
    return {
      kind: 'quarantine',
      position,
      reason: 'text_not_string',
      detail: `${where(position)}: field '${fields.text}' is ${describe(text)}, expected a string`,
      sample: sample(),
    };
  }
  const rawId = getField(value, fields.id);
  const id =
    typeof rawId === 'string' && rawId !== ''
      ? rawId
      : typeof rawId === 'number' && Number.isFinite(rawId)
        ? String(rawId)
        : undefined;
  let copied: Record<string, unknown> = {};
  if (fields.metadata !== undefined) {
    // fromEntries defines keys, so a field named `__proto__` is kept as data rather than setting a prototype.
    copied = Object.fromEntries(
      fields.metadata.flatMap((field) => {
        const v = getField(value, field);
        return v === undefined ? [] : [[field, v]];
      }),
    );
  } else if (isPlainObject(value.metadata)) {
    copied = { ...value.metadata }; // dolma-shaped input keeps its metadata
  }
  if (nestedDeeperThan(copied, MAX_METADATA_DEPTH)) {
    return {
      kind: 'quarantine',
      position,
      reason: 'nested_too_deep',
      detail: `${where(position)}: metadata nested more than ${MAX_METADATA_DEPTH} levels deep`,
      sample: sample(),
    };
  }
  return {
    kind: 'document',
    position,
    text,
    id,
    created: toIsoDate(getField(value, fields.created)),
    metadata: { ...copied, ...base },
    utf8Repaired,
  };
}

/** Reads `a.b.c`; a key that itself contains dots is found first. */
export function getField(record: Record<string, unknown>, path: string): unknown {
  if (Object.prototype.hasOwnProperty.call(record, path)) return record[path];
  let current: unknown = record;
  for (const part of path.split('.')) {
    if (!isPlainObject(current) || !Object.prototype.hasOwnProperty.call(current, part)) return undefined;
    current = current[part];
  }
  return current;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An excerpt of a parsed value; one nested too deeply to serialize is described instead. */
function sampleOf(value: unknown): string {
  try {
    return excerpt(JSON.stringify(value) ?? String(value));
  } catch {
    return `(${describe(value)} nested too deeply to show)`;
  }
}

/** Whether arrays and objects nest more than `limit` levels under `value`; iterative, so any depth is safe. */
function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<{ node: unknown; depth: number }> = [{ node: value, depth: 0 }];
  while (stack.length > 0) {
    const { node, depth } = stack.pop()!;
    if (typeof node !== 'object' || node === null) continue;
    if (depth > limit) return true;
    for (const child of Object.values(node)) stack.push({ node: child, depth: depth + 1 });
  }
  return false;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
