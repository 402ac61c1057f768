import { z } from 'zod';
import { ExternalTrainerError, protocolError } from './errors';

/** What a `fatal` event means: bad configuration, never retried. */
export function configRefused(message: string): ExternalTrainerError {
  return new ExternalTrainerError('ExternalTrainerConfigError', `the trainer refused its configuration: ${message}`);
}

const step = z.number().int().min(0);
const finite = z.number().refine(Number.isFinite, 'a finite number');

/** One optimizer step done. */
export const StepEvent = z.object({
  event: z.literal('step'),
  step: step.min(1),
  loss: finite,
  tokensPerSecond: z.number().min(0).default(0),
  epoch: step.optional(),
});

/** A validation score at `step`; early stopping and the run's validation-loss curve use these. */
export const EvalEvent = z.object({ event: z.literal('eval'), step, valLoss: finite });

/**
 * A checkpoint is complete in FLYWHEEL_CHECKPOINT_DIR/step-<step>/: `files` are paths inside that folder (every
 * file in it when left out). `modelFiles`, when given, are the files that make up the model without the training
 * state (weights and their config): what the registry keeps, the evaluation command scores, a fine-tune starts from
 * and an export reads; every trainer file is registered when it is left out. `weightsSha256`, when given,
 * identifies the weights (equal weights, equal hash).
 */
export const CheckpointEvent = z.object({
  event: z.literal('checkpoint'),
  step: step.min(1),
  files: z.array(z.string().min(1)).min(1).optional(),
  modelFiles: z.array(z.string().min(1)).min(1).optional(),
  epoch: step.optional(),
  weightsSha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits')
    .optional(),
});

/** The segment is finished at `step` (= FLYWHEEL_UNTIL_STEP, checkpointed); the trainer exits 0 next. */
export const DoneEvent = z.object({ event: z.literal('done'), step });

/**
 * The trainer refuses its configuration (bad arguments, a checkpoint or base model that does not fit): the run fails
 * at once with `message`, whatever the exit code, since launchers such as torchrun turn a rank's exit 2 into their
 * own exit 1. Any rank may print it.
 */
export const FatalEvent = z.object({ event: z.literal('fatal'), message: z.string().min(1) });

export const ProtocolEvent = z.discriminatedUnion('event', [
  StepEvent,
  EvalEvent,
  CheckpointEvent,
  DoneEvent,
  FatalEvent,
]);
export type ProtocolEvent = z.infer<typeof ProtocolEvent>;
export type StepEvent = z.infer<typeof StepEvent>;
export type EvalEvent = z.infer<typeof EvalEvent>;
export type CheckpointEvent = z.infer<typeof CheckpointEvent>;
export type DoneEvent = z.infer<typeof DoneEvent>;
export type FatalEvent = z.infer<typeof FatalEvent>;

/**
 * What an evaluation command (`external.evaluate`) prints once it has scored the weights in
 * FLYWHEEL_EVAL_WEIGHTS_DIR on the shards in FLYWHEEL_EVAL_SHARDS: the mean loss over `tokens` predicted tokens.
 */
export const EvalScoreEvent = z.object({ event: z.literal('eval'), valLoss: finite, tokens: z.number().int().min(1) });
export type EvalScoreEvent = z.infer<typeof EvalScoreEvent>;

/**
 * The last `eval` line of an evaluation command's output (other lines are its logs), or a protocol error saying
 * what to print when there is none or it is malformed.
 */
export function parseEvalScore(output: string): EvalScoreEvent {
  for (const line of output.split('\n')) {
    const parsed = /"event"\s*:\s*"fatal"/.test(line) ? parseProtocolLine(line) : undefined;
    if (parsed?.kind === 'event' && parsed.event.event === 'fatal') throw configRefused(parsed.event.message);
  }
  const lines = output.split('\n').filter((line) => /"event"\s*:\s*"eval"/.test(line));
  const last = lines.at(-1);
  if (last === undefined)
    throw protocolError('the evaluation command printed no {"event":"eval","valLoss":x,"tokens":n} line');
  const match = JSON_LINE.exec(last);
  let value: unknown;
  try {
    value = JSON.parse(match?.[1] ?? last);
  } catch {
    throw protocolError(`the evaluation command printed an eval line that is not JSON: ${truncate(last)}`);
  }
  const parsed = EvalScoreEvent.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(line)'}: ${i.message}`).join('; ');
  throw protocolError(`malformed eval line from the evaluation command ${truncate(last)}: ${problems}`);
}

export type ProtocolLine = { kind: 'event'; event: ProtocolEvent } | { kind: 'text'; line: string };

const EVENTS = new Set(['step', 'eval', 'checkpoint', 'done', 'fatal']);
// A launcher may prefix each rank's lines (torchrun --tee: "[default0]:"); the JSON object follows it.
const JSON_LINE = /^\s*(?:\[[^\]]*\]:?\s*)?(\{.*\})\s*$/;

/**
 * One line of the trainer's output: a protocol event, or text to log. Only a JSON object whose `event` is one of
 * ours must be well formed; anything else (logs, warnings, other JSON) is text. A malformed event throws.
 */
export function parseProtocolLine(line: string): ProtocolLine {
  const match = JSON_LINE.exec(line);
  if (!match) return { kind: 'text', line };
  let value: unknown;
  try {
    value = JSON.parse(match[1]);
  } catch {
    return { kind: 'text', line };
  }
  const name = (value as { event?: unknown }).event;
  if (typeof name !== 'string' || !EVENTS.has(name)) return { kind: 'text', line };
  const parsed = ProtocolEvent.safeParse(value);
  if (parsed.success) return { kind: 'event', event: parsed.data };
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(line)'}: ${i.message}`).join('; ');
  throw protocolError(`malformed ${name} event ${truncate(match[1])}: ${problems}`);
}

function truncate(text: string, max = 300): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
