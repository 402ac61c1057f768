import { ConfigError, envSchema } from '../config';

export interface FeedbackEnvSettings {
  shards: number;
  maxEventBytes: number;
}

/** FLYWHEEL_FEEDBACK_SHARDS and FLYWHEEL_FEEDBACK_MAX_EVENT_BYTES, checked by the schema of the whole environment. */
export function feedbackSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): FeedbackEnvSettings {
  const raw = (variable: string) => (env[variable] === '' ? undefined : env[variable]);
  const shards = envSchema.shape.FLYWHEEL_FEEDBACK_SHARDS.safeParse(raw('FLYWHEEL_FEEDBACK_SHARDS'));
  const maxEventBytes = envSchema.shape.FLYWHEEL_FEEDBACK_MAX_EVENT_BYTES.safeParse(
    raw('FLYWHEEL_FEEDBACK_MAX_EVENT_BYTES'),
  );
  if (shards.success && maxEventBytes.success) return { shards: shards.data, maxEventBytes: maxEventBytes.data };
  const problems: ConfigError['problems'] = [];
  if (!shards.success)
    problems.push({
      variable: 'FLYWHEEL_FEEDBACK_SHARDS',
      expected: shards.error.issues[0].message,
      got: raw('FLYWHEEL_FEEDBACK_SHARDS'),
    });
  if (!maxEventBytes.success)
    problems.push({
      variable: 'FLYWHEEL_FEEDBACK_MAX_EVENT_BYTES',
      expected: maxEventBytes.error.issues[0].message,
      got: raw('FLYWHEEL_FEEDBACK_MAX_EVENT_BYTES'),
    });
  throw new ConfigError(problems);
}
