import * as fs from 'node:fs';
import * as path from 'node:path';
import { sampleCorpus } from '../../lib/collect';

/**
 * A deterministic corpus on disk, large enough that every pipeline stage lasts long enough to be hit: documents of
 * consecutive Moby-Dick paragraphs (real prose that passes the quality filters), in JSON-lines files, with a few
 * exact repeats for dedup to drop.
 */
export function writeFaultCorpus(dir: string, opts: { documents: number; files: number; repeats: number }): void {
  const paragraphs = sampleCorpus('moby-dick')
    .documents.flatMap((d) => d.text.split(/\n\n+/))
    .filter((p) => p.length > 200);
  const text = (i: number) =>
    Array.from({ length: 4 }, (_, k) => paragraphs[(i * 3 + k) % paragraphs.length]).join('\n\n');
  const records = Array.from({ length: opts.documents }, (_, i) => ({ id: `doc-${i}`, text: text(i) }));
  for (let r = 0; r < opts.repeats; r++) records.push({ id: `repeat-${r}`, text: text(r * 7) });
  fs.mkdirSync(dir, { recursive: true });
  const perFile = Math.ceil(records.length / opts.files);
  for (let f = 0; f < opts.files; f++) {
    const lines = records.slice(f * perFile, (f + 1) * perFile).map((r) => JSON.stringify(r));
    fs.writeFileSync(path.join(dir, `part-${String(f).padStart(3, '0')}.jsonl`), lines.join('\n') + '\n');
  }
}
