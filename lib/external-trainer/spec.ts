import { z } from 'zod';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const environment = z.record(z.string(), z.string()).superRefine((env, ctx) => {
  for (const name of Object.keys(env)) {
    if (!ENV_NAME.test(name))
      ctx.addIssue({ code: 'custom', path: [name], message: 'not an environment variable name' });
    else if (name.startsWith('FLYWHEEL_'))
      ctx.addIssue({ code: 'custom', path: [name], message: 'FLYWHEEL_* variables are set by Flywheel itself' });
  }
});

/**
 * How to launch a trainer of your own (a torchrun or deepspeed line) instead of the built-in one. Pure zod, so the
 * workflow bundle can validate it; what runs it is segment.ts (through activities/external-training.ts).
 */
export const ExternalTrainerSpec = z
  .object({
    command: z
      .array(z.string().min(1))
      .min(1)
      .describe('the launcher and its arguments as an argv array, run without a shell, e.g. ["torchrun", "train.py"]'),
    evaluate: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe(
        'the evaluation command as an argv array: scores the model files in FLYWHEEL_EVAL_WEIGHTS_DIR on the shards ' +
          'in FLYWHEEL_EVAL_SHARDS and prints {"event":"eval","valLoss":x,"tokens":n}; the flywheel\'s gate uses it',
      ),
    env: environment.default({}).describe('extra environment variables for the trainer (and the evaluation command)'),
    cwd: z.string().min(1).optional().describe("the trainer's working folder (default: the worker's)"),
    resumeArgument: z
      .string()
      .min(1)
      .nullable()
      .default('--resume')
      .describe('appended with the restored checkpoint folder when resuming; null passes it in the environment only'),
    report: z
      .enum(['stdout', 'file'])
      .default('stdout')
      .describe("where protocol lines are read: stdout, or the file FLYWHEEL_PROGRESS_FILE (when ranks' stdout mixes)"),
    nonRetryableExitCodes: z
      .array(z.number().int().min(1).max(255))
      .default([2])
      .describe('exit codes that mean bad configuration: the run fails at once instead of retrying'),
    stallTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .default(600)
      .describe('no protocol line for this long: the trainer is killed and the segment retried'),
    timeoutSeconds: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('a segment running longer is killed and retried from its last checkpoint'),
    killGraceSeconds: z
      .number()
      .int()
      .min(0)
      .default(30)
      .describe('time between SIGTERM and SIGKILL to the process group on cancel, early stop or timeout'),
  })
  .strict();

export type ExternalTrainerSpec = z.infer<typeof ExternalTrainerSpec>;
