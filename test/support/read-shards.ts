import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { extract } from 'tar-stream';
import { decodeNpy } from '../../lib/webdataset/npy';

export interface ReadSample {
  key: string;
  meta: { id: string; tokens: number } & Record<string, unknown>;
  dtype: string;
  count: number;
  last: number;
  reader: string;
}

/**
 * Reads shards with a reader independent of Flywheel's writer: Python's webdataset library (or Python's tarfile)
 * when python3 is installed, else tar-stream (Flywheel writes tars by hand, so tar-stream is independent of it).
 */
export async function readShards(files: string[]): Promise<ReadSample[]> {
  const run = spawnSync('python3', [path.join(__dirname, 'read-webdataset.py'), ...files], { encoding: 'utf8' });
  if (!run.error) {
    if (run.status !== 0) throw new Error(`the python shard reader failed:\n${run.stderr}`);
    return run.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as ReadSample);
  }
  const samples: ReadSample[] = [];
  for (const file of files) {
    const entries: { name: string; data: Buffer }[] = [];
    const tar = extract();
    tar.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        entries.push({ name: header.name, data: Buffer.concat(chunks) });
        next();
      });
    });
    await new Promise<void>((resolve, reject) => {
      tar.on('finish', resolve);
      tar.on('error', reject);
      fs.createReadStream(file).pipe(tar);
    });
    for (let i = 0; i < entries.length; i += 2) {
      const key = entries[i].name.split('.')[0];
      if (entries[i].name !== `${key}.json` || entries[i + 1]?.name !== `${key}.tokens.npy`) {
        throw new Error(`${file}: entries ${entries[i].name} and ${entries[i + 1]?.name} are not one sample`);
      }
      const { dtype, values } = decodeNpy(entries[i + 1].data);
      samples.push({
        key,
        meta: JSON.parse(entries[i].data.toString('utf8')) as ReadSample['meta'],
        dtype: dtype === 'uint16' ? '<u2' : '<u4',
        count: values.length,
        last: values[values.length - 1],
        reader: 'tar-stream (no python3)',
      });
    }
  }
  return samples;
}
