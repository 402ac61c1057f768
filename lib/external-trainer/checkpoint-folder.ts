import { createReadStream } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { validateKey, type PutBody } from '../storage';
import { protocolError } from './errors';

/** Names under this folder hold Flywheel's own records in a checkpoint; a trainer's files may not use it. */
export const FLYWHEEL_FILES = '.flywheel/';

/** The folder a trainer writes the checkpoint of `step` into. */
export function checkpointFolder(checkpointDir: string, step: number): string {
  return join(checkpointDir, `step-${step}`);
}

/**
 * The files of a checkpoint the trainer reported: the ones it listed (each must be a file in the folder), or every
 * file under the folder. Names are '/'-separated paths inside the folder, sorted.
 */
export async function checkpointFileNames(folder: string, step: number, listed?: readonly string[]): Promise<string[]> {
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
