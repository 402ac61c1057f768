import { createReadStream } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { validateKey, type PutBody } from '../storage';
import { protocolError } from './errors';

/** Names under this folder hold Flywheel's own records in a checkpoint; a trainer's files may not use it. */
export const FLYWHEEL_FILES = '.flywheel/';

/** Flywheel's records saved beside an external trainer's files in every checkpoint. */
export const EXTERNAL_EVALUATIONS_FILE = `${FLYWHEEL_FILES}evaluations.json`;
export const EXTERNAL_PROGRESS_FILE = `${FLYWHEEL_FILES}progress.json`;

/** What EXTERNAL_PROGRESS_FILE holds: where training stood at the checkpoint, as the trainer reported it. */
export interface ExternalProgressRecord {
  loss?: number;
  epoch: number;
  tokensPerSecond: number;
  weightsSha256?: string;
  /** The checkpoint's files that make up the model (the checkpoint event's `modelFiles`); all when unset. */
  modelFiles?: string[];
}

/**
 * The files of an external checkpoint that make up the model, as the registry keeps them: the ones its progress
 * record names (`modelFiles`), else every file of the trainer's. Fails naming the checkpoint when one is missing.
 */
export function externalModelFiles(files: Readonly<Record<string, Buffer>>, label: string): Record<string, Buffer> {
  const record = files[EXTERNAL_PROGRESS_FILE];
  const listed = record ? (JSON.parse(record.toString('utf8')) as ExternalProgressRecord).modelFiles : undefined;
  const own = Object.keys(files).filter((name) => !name.startsWith(FLYWHEEL_FILES));
  const names = listed ?? own;
  const missing = names.filter((name) => files[name] === undefined);
  if (names.length === 0 || missing.length > 0) {
    throw protocolError(
      `${label} has ${names.length === 0 ? 'no model files' : `no ${missing.join(', ')}`} to register ` +
        `(it holds ${own.join(', ') || 'nothing'}); list the model's files in the checkpoint event's modelFiles`,
    );
  }
  return Object.fromEntries(names.map((name) => [name, files[name]]));
}

/** The folder a trainer writes the checkpoint of `step` into. */
export function checkpointFolder(checkpointDir: string, step: number): string {
  return join(checkpointDir, `step-${step}`);
}

/**
 * The files of a checkpoint the trainer reported: the ones it listed (each must be a file in the folder), or every
 * file under the folder. Names are '/'-separated paths inside the folder, sorted.
 */
export async function checkpointFileNames(
  folder: string,
  step: number,
  listed?: readonly string[],
  modelFiles?: readonly string[],
): Promise<string[]> {
  const names = listed ? [...new Set(listed)] : await filesUnder(folder, step);
  for (const name of names) {
    try {
      validateKey(name);
    } catch (err) {
      throw protocolError(`checkpoint ${step} lists ${JSON.stringify(name)}: ${(err as Error).message}`);
    }
    if (name.startsWith(FLYWHEEL_FILES)) {
      throw protocolError(`checkpoint ${step} lists ${JSON.stringify(name)}: ${FLYWHEEL_FILES} is kept for Flywheel`);
    }
    const info = await stat(join(folder, name)).catch(() => undefined);
    if (!info?.isFile()) {
      throw protocolError(
        `checkpoint ${step} lists ${JSON.stringify(name)}, which is not a file in ${folder}; write the checkpoint ` +
          'completely before printing its event',
      );
    }
  }
  if (names.length === 0) throw protocolError(`checkpoint ${step}: ${folder} holds no files`);
  const unlisted = (modelFiles ?? []).filter((name) => !names.includes(name));
  if (unlisted.length > 0) {
    throw protocolError(
      `checkpoint ${step} names ${unlisted.map((n) => JSON.stringify(n)).join(', ')} in modelFiles, which ` +
        `${unlisted.length === 1 ? 'is' : 'are'} not among its files (${names.join(', ')})`,
    );
  }
  return names.sort();
}

/** Each file as a stream opened only when it is read, so a large checkpoint never sits in memory. */
export function checkpointFileBodies(folder: string, names: readonly string[]): Record<string, PutBody> {
  return Object.fromEntries(names.map((name) => [name, lazyFile(join(folder, name))]));
}

/** Writes restored checkpoint files into `folder` (created), keeping their relative paths. */
export async function writeCheckpointFolder(folder: string, files: Readonly<Record<string, Buffer>>): Promise<void> {
  await mkdir(folder, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) {
    const path = join(folder, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes);
  }
}

async function* lazyFile(path: string): AsyncGenerator<Uint8Array> {
  yield* createReadStream(path);
}

async function filesUnder(folder: string, step: number): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) found.push(relative(folder, path).split(sep).join('/'));
    }
  };
  try {
    await walk(folder);
  } catch {
    throw protocolError(`checkpoint ${step}: cannot read ${folder}; write step-${step}/ in FLYWHEEL_CHECKPOINT_DIR`);
  }
  return found;
}
