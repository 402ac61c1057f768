import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { dedupJsonl } from '../lib/dedup';
import {
  buildLabeledCorpus,
  exactPairSimilarities,
  packageReadmes,
  proseParagraphs,
  scoreClusters,
  type LabeledDoc,
} from '../lib/dedup/evaluation';

describe('near-duplicate accuracy on a labeled corpus (threshold 0.8)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-dedup-accuracy-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const paragraphs = [
    ...new Set(packageReadmes(path.join(__dirname, '..', 'node_modules')).flatMap((m) => proseParagraphs(m))),
  ];
  const docs: LabeledDoc[] = buildLabeledCorpus(paragraphs, { bases: 250, seed: 7 });
  const truth = exactPairSimilarities(
    docs.map((d) => d.text),
    5,
  );

  async function run(verify: 'exact' | 'estimate'): Promise<{ cluster: Uint32Array; removed: boolean[] }> {
    const input = path.join(dir, 'corpus.jsonl');
    fs.writeFileSync(input, docs.map((d) => JSON.stringify({ id: d.id, text: d.text, variant: d.variant })).join('\n'));
    await dedupJsonl(input, path.join(dir, 'out'), { threshold: 0.8, ngram: 5, numPerm: 128, workers: 0, verify });
    const index = new Map(docs.map((d, i) => [d.id, i]));
    const cluster = Uint32Array.from(docs, (_, i) => i);
    const removed = docs.map(() => false);
    for (const line of fs.readFileSync(path.join(dir, 'out', 'duplicates.jsonl'), 'utf8').split('\n')) {
      if (!line) continue;
      const r = JSON.parse(line) as { id: string; duplicate_of: string };
      const d = index.get(r.id) as number;
      cluster[d] = index.get(r.duplicate_of) as number;
      removed[d] = true;
    }
    return { cluster, removed };
  }

  it('has enough real text and similar pairs to measure', () => {
    assert.ok(docs.length >= 2000, `corpus has ${docs.length} documents`);
    const similar = [...truth.values()].filter((j) => j >= 0.8).length;
    assert.ok(similar >= 1000, `${similar} pairs with Jaccard ≥ 0.8`);
  });

  it('exact verification: ≥ 97% of pairs with true Jaccard ≥ 0.8 in one cluster, and ≥ 99% of removed documents have a cluster member with Jaccard ≥ 0.7', async (t) => {
    const { cluster, removed } = await run('exact');
    const score = scoreClusters(cluster, removed, truth, 0.8, 0.7);
    t.diagnostic(
      `${docs.length} docs, ${score.similarPairs} similar pairs: recall ${score.pairRecall.toFixed(3)}, ` +
        `removed ${score.removed} with precision ${score.removedPrecision.toFixed(3)}, pair precision ${score.pairPrecision.toFixed(3)}`,
    );
    assert.ok(score.pairRecall >= 0.97, `recall ${score.pairRecall.toFixed(3)} over ${score.similarPairs} pairs`);
    assert.ok(
      score.removedPrecision >= 0.99,
      `precision ${score.removedPrecision.toFixed(3)} over ${score.removed} removed`,
    );
  });

  it('verification by estimate: ≥ 95% of pairs with true Jaccard ≥ 0.8 in one cluster, and ≥ 98% of removed documents have a cluster member with Jaccard ≥ 0.7', async (t) => {
    const { cluster, removed } = await run('estimate');
    const score = scoreClusters(cluster, removed, truth, 0.8, 0.7);
    t.diagnostic(
      `${docs.length} docs, ${score.similarPairs} similar pairs: recall ${score.pairRecall.toFixed(3)}, ` +
        `removed ${score.removed} with precision ${score.removedPrecision.toFixed(3)}, pair precision ${score.pairPrecision.toFixed(3)}`,
    );
    assert.ok(score.pairRecall >= 0.95, `recall ${score.pairRecall.toFixed(3)} over ${score.similarPairs} pairs`);
    assert.ok(
      score.removedPrecision >= 0.98,
      `precision ${score.removedPrecision.toFixed(3)} over ${score.removed} removed`,
    );
  });
});
