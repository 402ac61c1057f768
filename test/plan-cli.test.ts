import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it, mock } from 'node:test';
import { main } from '../app/cli';
import { parseParamCount } from '../app/commands/plan';
import { checkDeepSpeedConfig, deepSpeedConfigForPlan, type PlanReport } from '../lib/plan';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-plan-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs `flywheel plan ...` in process: its exit code and what it printed. */
async function plan(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = mock.method(console, 'log', (...parts: unknown[]) => out.push(parts.join(' ')));
  const error = mock.method(console, 'error', (...parts: unknown[]) => err.push(parts.join(' ')));
  const write = mock.method(process.stderr, 'write', (chunk: string | Uint8Array) => err.push(String(chunk)) > 0);
  try {
    const code = await main(['node', 'flywheel', 'plan', ...args]);
    return { code, stdout: out.join('\n'), stderr: err.join('') };
  } finally {
    log.mock.restore();
    error.mock.restore();
    write.mock.restore();
  }
}

const GPT3 = ['--layers', '96', '--hidden', '12288', '--heads', '96', '--vocab', '51200', '--seq', '2048'];

describe('flywheel plan', () => {
  it('reads parameter counts as 7.5e9, 7.5B, 175B, 350M, 1.2T or plain digits', () => {
    assert.equal(parseParamCount('7.5e9'), 7.5e9);
    assert.equal(parseParamCount('7.5B'), 7.5e9);
    assert.equal(parseParamCount('175B'), 175e9);
    assert.equal(parseParamCount('175b'), 175e9);
    assert.equal(parseParamCount('350M'), 350e6);
    assert.equal(parseParamCount('1.2T'), 1.2e12);
    assert.equal(parseParamCount('7500000000'), 7.5e9);
    for (const bad of ['7.5X', '', 'B', '-1', '0', '1e'])
      assert.throws(() => parseParamCount(bad), /expected a parameter count/, bad);
  });

  it('prints the ranked table and the recommendation', async () => {
    const { code, stdout } = await plan('--params', '7.5B', '--gpus', '64', '--gpu-mem', '32');
    assert.equal(code, 0);
    assert.match(stdout, /Model: 7\.5B parameters/);
    assert.match(stdout, /#\s+TP\s+PP\s+DP\s+ZeRO\s+states/);
    assert.match(stdout, /Recommended: TP=1 PP=1 DP=64 ZeRO-1/);
    assert.match(stdout, /activation memory, tensor- and pipeline-parallel traffic and step time are not estimated/);
  });

  it('--json prints the whole report', async () => {
    const { code, stdout } = await plan(
      ...GPT3,
      '--gpus',
      '1024',
      '--gpu-mem',
      '80',
      '--micro-batches',
      '32',
      '--json',
    );
    assert.equal(code, 0);
    const report = JSON.parse(stdout) as PlanReport;
    assert.equal(report.request.microBatches, 32);
    assert.ok(report.plans.every((p) => p.microBatches === 32));
    assert.ok(report.recommended?.memory.fits);
    assert.ok(report.rejected.length > 0);
  });

  it('--emit-deepspeed writes the recommended plan’s DeepSpeed config', async () => {
    const file = path.join(tmp, 'ds_config.json');
    const { code, stdout } = await plan(
      ...GPT3,
      '--gpus',
      '1024',
      '--gpu-mem',
      '80',
      '--gpus-per-node',
      '8',
      '--json',
      '--emit-deepspeed',
      file,
    );
    assert.equal(code, 0);
    const best = (JSON.parse(stdout) as PlanReport).recommended!;
    const written = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(written, deepSpeedConfigForPlan(best));
    assert.deepEqual(
      checkDeepSpeedConfig(written, {
        dataParallelSize: best.dataParallel,
        pipelineParallelSize: best.pipelineParallel,
      }),
      [],
    );
  });

  it('exits 1 and writes nothing when no plan fits and a config was asked for', async () => {
    const file = path.join(tmp, 'none.json');
    const { code, stderr } = await plan('--params', '175B', '--gpus', '8', '--gpu-mem', '80', '--emit-deepspeed', file);
    assert.equal(code, 1);
    assert.match(stderr, /no plan fits in 80 GiB per GPU/);
    assert.equal(fs.existsSync(file), false);
  });

  const usage: [string, string[], RegExp][] = [
    ['no model', ['--gpus', '8', '--gpu-mem', '80'], /give the model: --params N, or --layers L/],
    ['params and shape', ['--params', '7B', '--layers', '32', '--gpus', '8', '--gpu-mem', '80'], /not both/],
    [
      'half a shape',
      ['--layers', '32', '--hidden', '4096', '--gpus', '8', '--gpu-mem', '80'],
      /also needs --heads, --vocab, --seq/,
    ],
    ['a bad count', ['--params', '7.5X', '--gpus', '8', '--gpu-mem', '80'], /'7\.5X' is invalid/],
    ['no --gpus', ['--params', '7B', '--gpu-mem', '80'], /required option '--gpus <G>' not specified/],
    ['zero GPUs', ['--params', '7B', '--gpus', '0', '--gpu-mem', '80'], /whole number ≥ 1/],
    ['no memory', ['--params', '7B', '--gpus', '8', '--gpu-mem', 'lots'], /expected GiB of one GPU/],
    [
      'heads that do not divide the hidden size',
      [
        '--layers',
        '32',
        '--hidden',
        '4096',
        '--heads',
        '30',
        '--vocab',
        '50000',
        '--seq',
        '2048',
        '--gpus',
        '8',
        '--gpu-mem',
        '80',
      ],
      /model\.heads: 30 heads do not divide the hidden size 4096/,
    ],
  ];
  for (const [name, args, message] of usage)
    it(`exits 2 with a clear message: ${name}`, async () => {
      const { code, stderr } = await plan(...args);
      assert.equal(code, 2);
      assert.match(stderr, message);
    });
});
