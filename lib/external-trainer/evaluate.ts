import { ExternalTrainerError } from './errors';
import { SHARD_SEPARATOR } from './environment';
import { forEachLine } from './line-sources';
import { LineTail } from './line-tail';
import { ProcessGroup } from './process-group';
import { parseEvalScore, type EvalScoreEvent } from './protocol';
import type { ExternalTrainerSpec } from './spec';

export interface EvaluationRun {
  external: ExternalTrainerSpec;
  /** The folder holding the model's registered files. */
  weightsDir: string;
  /** Local shard files to score on, in order. */
  shards: readonly string[];
  evalTokens: number;
  vocabSize: number;
  /** Names the model in messages, e.g. `sample@v2`. */
  label: string;
  signal?: AbortSignal;
}

/**
 * Runs the spec's evaluation command (`external.evaluate`) on one model and one set of shards and returns its
 * score. It gets the trainer's environment (`external.env`) and FLYWHEEL_EVAL_WEIGHTS_DIR, FLYWHEEL_EVAL_SHARDS,
 * FLYWHEEL_EVAL_TOKENS and FLYWHEEL_VOCAB_SIZE; it must print {"event":"eval","valLoss":x,"tokens":n}. A
 * configuration exit code or a missing eval line fails for good; a crash is retryable. The process group is killed
 * when `signal` aborts or the command is silent past `external.stallTimeoutSeconds`.
 */
export async function runEvaluationCommand(run: EvaluationRun): Promise<EvalScoreEvent> {
  const { external } = run;
  if (external.evaluate === undefined) {
    throw new ExternalTrainerError(
      'ExternalTrainerConfigError',
      `${run.label} was trained by an external command without external.evaluate, so nothing can score it; add ` +
        'an evaluation command (an argv array) to the training spec and register the model again',
    );
  }
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('FLYWHEEL_')));
  const group = await ProcessGroup.start({
    argv: external.evaluate,
    cwd: external.cwd,
    env: {
      PYTHONUNBUFFERED: '1',
      ...inherited,
      ...external.env,
      FLYWHEEL_EVAL_WEIGHTS_DIR: run.weightsDir,
      FLYWHEEL_EVAL_SHARDS: run.shards.join(SHARD_SEPARATOR),
      FLYWHEEL_EVAL_TOKENS: String(run.evalTokens),
      FLYWHEEL_VOCAB_SIZE: String(run.vocabSize),
    },
  });
  const tail = new LineTail(30);
  const stdout: string[] = [];
  let reason: 'cancelled' | 'stall' | undefined;
  const stop = (why: 'cancelled' | 'stall') => {
    reason ??= why;
    void group.terminate(external.killGraceSeconds * 1000);
  };
  const stall = setTimeout(() => stop('stall'), external.stallTimeoutSeconds * 1000);
  const onAbort = () => stop('cancelled');
  run.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const out = forEachLine(group.stdout, (line) => {
      stall.refresh();
      stdout.push(line);
      if (stdout.length > 1000) stdout.shift();
    });
    const err = forEachLine(group.stderr, (line) => {
      stall.refresh();
      tail.push(line);
    });
    const exit = await group.finished;
    await Promise.all([out, err]);
    const details = { exitCode: exit.code ?? undefined, signal: exit.signal ?? undefined, stderrTail: tail.lines() };
    const what = `the evaluation command for ${run.label}`;
    if (reason === 'cancelled') throw run.signal?.reason ?? new Error(`${what} was cancelled`);
    if (reason === 'stall') {
      throw new ExternalTrainerError(
        'ExternalTrainerStalled',
        `${what} printed nothing for ${external.stallTimeoutSeconds} s (external.stallTimeoutSeconds) and was killed`,
        details,
      );
    }
    if (exit.code !== 0) {
      const config = exit.code !== null && external.nonRetryableExitCodes.includes(exit.code);
      throw new ExternalTrainerError(
        config ? 'ExternalTrainerConfigError' : 'ExternalTrainerCrashed',
        `${what} ${exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`}` +
          (config ? ', which means bad configuration (external.nonRetryableExitCodes)' : ''),
        details,
      );
    }
    try {
      return parseEvalScore(stdout.join('\n'));
    } catch (e) {
      throw e instanceof ExternalTrainerError ? new ExternalTrainerError(e.type, `${what}: ${e.problem}`, details) : e;
    }
  } finally {
    clearTimeout(stall);
    run.signal?.removeEventListener('abort', onAbort);
    if (!group.exited) await group.terminate(0);
  }
}
