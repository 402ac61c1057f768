import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { FlywheelError } from '../common';
import { parseKeyRing, type KeyRing } from '../codec/key-ring';
import { parsePriceTable, type PriceTable } from '../cost/prices';
import { envSchema, type EnvConfig, type TaskQueueRole } from './schema';

/** A bad environment: every bad variable, what it held and what it expects. The CLI exits with code 2 on it. */
export class ConfigError extends FlywheelError {
  readonly exitCode = 2;
  constructor(readonly problems: { variable: string; expected: string; got?: string }[]) {
    super(
      'ConfigError',
      `Flywheel configuration is invalid (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems
          .map(
            (p) => `  ${p.variable}${p.got === undefined ? '' : `=${JSON.stringify(p.got)}`}: expected ${p.expected}`,
          )
          .join('\n') +
        '\nFix these environment variables (see the configuration table in README.md) and start again.',
      { retryable: false },
    );
  }
}

export interface TierLocations {
  hot: string;
  warm: string;
  cold: string;
}

export interface S3Settings {
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  checksums: 'when_supported' | 'when_required';
  maxAttempts: number;
  /** Explicit keys; when absent the AWS SDK's default credential chain applies. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

export interface TemporalSettings {
  address: string;
  namespace: string;
  apiKey?: string;
  tls?: { clientCertPath?: string; clientKeyPath?: string; serverCaCertPath?: string; serverName?: string };
}

export interface FlywheelConfig {
  home: string;
  temporal: TemporalSettings;
  tiers: TierLocations;
  hotMaxBytes: number;
  s3: S3Settings;
  worker: {
    roles: TaskQueueRole[];
    taskQueuePrefix: string;
    concurrency: number;
    /** Compute threads (filter, dedup and tokenizer pools); the CPUs this process may use when absent. */
    threads?: number;
    metricsPort: number;
    logLevel: EnvConfig['FLYWHEEL_LOG_LEVEL'];
    logFormat: EnvConfig['FLYWHEEL_LOG_FORMAT'];
    /** Folders collection may read (absolute); unrestricted when absent. */
    collectRoots?: string[];
    /** S3 buckets collection may read; unrestricted when absent, none when empty. */
    collectBuckets?: string[];
    /** Hosts URL sources and their redirects may reach; any public host when absent, none when empty. */
    collectHosts?: string[];
    /** FLYWHEEL_REACH_UNRESTRICTED: `flywheel worker` may start with all three lists unset. */
    reachUnrestricted: boolean;
  };
  /** Payload encryption: on when a key ring is configured. */
  codec: { keyRing?: KeyRing; token?: string };
  /** Feedback intake: ledgers per day (every submitting process must agree) and the largest event accepted. */
  feedback: { shards: number; maxEventBytes: number };
  /** OpenTelemetry traces: on when an OTLP endpoint is set (and OTEL_SDK_DISABLED is not). */
  tracing: { tracesUrl?: string; serviceName: string };
  /** What usage costs (`flywheel cost`, the report's cost section); absent when no table is configured. */
  prices?: PriceTable;
}

const SECRET_VARIABLES = new Set([
  'TEMPORAL_API_KEY',
  'AWS_SECRET_ACCESS_KEY',
  'FLYWHEEL_CODEC_KEYS',
  'FLYWHEEL_CODEC_TOKEN',
]);

/** Reads and checks the whole environment at once, so a user fixes every mistake in one go. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): FlywheelConfig {
  const input: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = envSchema.safeParse(input);
  const problems: ConfigError['problems'] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const variable = String(issue.path[0] ?? '(environment)');
      problems.push({
        variable,
        expected: issue.message,
        got: SECRET_VARIABLES.has(variable) ? '***' : input[variable],
      });
    }
  }
  // Cross-variable checks run on the raw values too, so one run reports every problem.
  const tls = checkTls(parsed.success ? parsed.data : lenientTlsView(input), problems);
  const keyRing = readKeyRing(input, cwd, problems);
  const prices = readPriceTable(input, cwd, problems);
  if (!parsed.success || problems.length > 0) throw new ConfigError(dedupe(problems));
  const e = parsed.data;
  const home = path.resolve(cwd, e.FLYWHEEL_HOME);
  const tier = (value: string | undefined, name: string) =>
    value === undefined ? path.join(home, name) : value.startsWith('s3://') ? value : path.resolve(cwd, value);
  return {
    home,
    temporal: { address: e.TEMPORAL_ADDRESS, namespace: e.TEMPORAL_NAMESPACE, apiKey: e.TEMPORAL_API_KEY, tls },
    tiers: {
      hot: tier(e.FLYWHEEL_HOT, 'hot'),
      warm: tier(e.FLYWHEEL_WARM, 'warm'),
      cold: tier(e.FLYWHEEL_COLD, 'cold'),
    },
    hotMaxBytes: e.FLYWHEEL_HOT_MAX_BYTES,
    s3: {
      endpoint: e.FLYWHEEL_S3_ENDPOINT,
      region: e.FLYWHEEL_S3_REGION,
      forcePathStyle: e.FLYWHEEL_S3_FORCE_PATH_STYLE ?? e.FLYWHEEL_S3_ENDPOINT !== undefined,
      checksums: e.FLYWHEEL_S3_CHECKSUMS,
      maxAttempts: e.FLYWHEEL_S3_MAX_ATTEMPTS,
      credentials:
        e.AWS_ACCESS_KEY_ID && e.AWS_SECRET_ACCESS_KEY
          ? { accessKeyId: e.AWS_ACCESS_KEY_ID, secretAccessKey: e.AWS_SECRET_ACCESS_KEY }
          : undefined,
    },
    worker: {
      roles: e.FLYWHEEL_TASK_QUEUES,
      taskQueuePrefix: e.FLYWHEEL_TASK_QUEUE_PREFIX,
      concurrency: e.FLYWHEEL_WORKER_CONCURRENCY,
      threads: e.FLYWHEEL_WORKER_THREADS,
      metricsPort: e.FLYWHEEL_METRICS_PORT,
      logLevel: e.FLYWHEEL_LOG_LEVEL,
      logFormat: e.FLYWHEEL_LOG_FORMAT,
      collectRoots: e.FLYWHEEL_COLLECT_ROOTS?.map((root) => path.resolve(cwd, root)),
      collectBuckets: e.FLYWHEEL_COLLECT_BUCKETS,
      collectHosts: e.FLYWHEEL_COLLECT_HOSTS,
      reachUnrestricted: e.FLYWHEEL_REACH_UNRESTRICTED ?? false,
    },
    codec: { keyRing, token: e.FLYWHEEL_CODEC_TOKEN },
    feedback: { shards: e.FLYWHEEL_FEEDBACK_SHARDS, maxEventBytes: e.FLYWHEEL_FEEDBACK_MAX_EVENT_BYTES },
    tracing: { tracesUrl: e.OTEL_SDK_DISABLED ? undefined : tracesUrl(e), serviceName: e.OTEL_SERVICE_NAME },
    ...(prices ? { prices } : {}),
  };
}

/**
 * The text of a setting given inline (`NAME`) or as a file (`NAME_FILE`, resolved against `cwd`), with the variable
 * it came from; both set, or a file that cannot be read, is a problem.
 */
function readInlineOrFile(
  input: Record<string, string>,
  name: string,
  what: string,
  cwd: string,
  problems: ConfigError['problems'],
): { text: string; variable: string; file?: string } | undefined {
  const inline = input[name];
  const file = input[`${name}_FILE`]?.trim();
  if (inline !== undefined && file) {
    problems.push({ variable: `${name}_FILE`, expected: `unset when ${name} is set (one of the two)` });
    return undefined;
  }
  if (file) {
    try {
      return { text: fs.readFileSync(path.resolve(cwd, file), 'utf8'), variable: `${name}_FILE`, file };
    } catch {
      problems.push({ variable: `${name}_FILE`, expected: `a readable file holding ${what}`, got: file });
      return undefined;
    }
  }
  return inline === undefined ? undefined : { text: inline, variable: name };
}

/** The price table from FLYWHEEL_PRICES or the file FLYWHEEL_PRICES_FILE names: an unknown key or a negative price is
 * a problem naming the key. */
function readPriceTable(
  input: Record<string, string>,
  cwd: string,
  problems: ConfigError['problems'],
): PriceTable | undefined {
  const given = readInlineOrFile(input, 'FLYWHEEL_PRICES', 'the price table (JSON)', cwd, problems);
  if (given === undefined) return undefined;
  const parsed = parsePriceTable(given.text);
  for (const expected of parsed.problems) problems.push({ variable: given.variable, expected, got: given.file });
  return parsed.table;
}

/** The OTLP/HTTP traces URL as the OpenTelemetry spec derives it: the signal's own variable as given, else the base
 * endpoint with `v1/traces` appended. */
function tracesUrl(e: EnvConfig): string | undefined {
  if (e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  const base = e.OTEL_EXPORTER_OTLP_ENDPOINT;
  return base === undefined ? undefined : `${base.replace(/\/+$/, '')}/v1/traces`;
}

/** The key ring from FLYWHEEL_CODEC_KEYS or the file FLYWHEEL_CODEC_KEYS_FILE names; problems never quote key bytes. */
function readKeyRing(
  input: Record<string, string>,
  cwd: string,
  problems: ConfigError['problems'],
): KeyRing | undefined {
  const given = readInlineOrFile(input, 'FLYWHEEL_CODEC_KEYS', 'the key ring', cwd, problems);
  if (given === undefined) return undefined;
  const parsed = parseKeyRing(given.text);
  for (const expected of parsed.problems)
    problems.push({ variable: given.variable, expected, got: given.file ?? '***' });
  return parsed.ring;
}

type TlsView = Pick<
  EnvConfig,
  | 'TEMPORAL_TLS'
  | 'TEMPORAL_API_KEY'
  | 'TEMPORAL_TLS_CLIENT_CERT_PATH'
  | 'TEMPORAL_TLS_CLIENT_KEY_PATH'
  | 'TEMPORAL_TLS_SERVER_CA_CERT_PATH'
  | 'TEMPORAL_TLS_SERVER_NAME'
>;

function lenientTlsView(input: Record<string, string>): TlsView {
  const flag = envSchema.shape.TEMPORAL_TLS.safeParse(input.TEMPORAL_TLS);
  return {
    TEMPORAL_TLS: flag.success ? flag.data : undefined,
    TEMPORAL_API_KEY: input.TEMPORAL_API_KEY,
    TEMPORAL_TLS_CLIENT_CERT_PATH: input.TEMPORAL_TLS_CLIENT_CERT_PATH,
    TEMPORAL_TLS_CLIENT_KEY_PATH: input.TEMPORAL_TLS_CLIENT_KEY_PATH,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: input.TEMPORAL_TLS_SERVER_CA_CERT_PATH,
    TEMPORAL_TLS_SERVER_NAME: input.TEMPORAL_TLS_SERVER_NAME,
  };
}

function checkTls(e: TlsView, problems: ConfigError['problems']): TemporalSettings['tls'] {
  const files = {
    TEMPORAL_TLS_CLIENT_CERT_PATH: e.TEMPORAL_TLS_CLIENT_CERT_PATH,
    TEMPORAL_TLS_CLIENT_KEY_PATH: e.TEMPORAL_TLS_CLIENT_KEY_PATH,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: e.TEMPORAL_TLS_SERVER_CA_CERT_PATH,
  };
  for (const [variable, file] of Object.entries(files)) {
    if (file !== undefined && !fs.existsSync(file)) problems.push({ variable, expected: 'a readable file', got: file });
  }
  if ((e.TEMPORAL_TLS_CLIENT_CERT_PATH === undefined) !== (e.TEMPORAL_TLS_CLIENT_KEY_PATH === undefined)) {
    const missing =
      e.TEMPORAL_TLS_CLIENT_CERT_PATH === undefined ? 'TEMPORAL_TLS_CLIENT_CERT_PATH' : 'TEMPORAL_TLS_CLIENT_KEY_PATH';
    problems.push({ variable: missing, expected: 'to be set together with its certificate/key partner for mTLS' });
  }
  const wanted =
    e.TEMPORAL_TLS === true ||
    e.TEMPORAL_API_KEY !== undefined ||
    Object.values(files).some((f) => f !== undefined) ||
    e.TEMPORAL_TLS_SERVER_NAME !== undefined;
  if (!wanted || e.TEMPORAL_TLS === false) {
    if (e.TEMPORAL_TLS === false && e.TEMPORAL_API_KEY !== undefined) {
      problems.push({
        variable: 'TEMPORAL_TLS',
        expected: 'not false when TEMPORAL_API_KEY is set (API keys need TLS)',
        got: 'false',
      });
    }
    return undefined;
  }
  return {
    clientCertPath: e.TEMPORAL_TLS_CLIENT_CERT_PATH,
    clientKeyPath: e.TEMPORAL_TLS_CLIENT_KEY_PATH,
    serverCaCertPath: e.TEMPORAL_TLS_SERVER_CA_CERT_PATH,
    serverName: e.TEMPORAL_TLS_SERVER_NAME,
  };
}

function dedupe(problems: ConfigError['problems']): ConfigError['problems'] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.variable}\0${p.expected}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The task queue a role polls, e.g. `flywheel-io`. */
export function taskQueueName(prefix: string, role: TaskQueueRole): string {
  return `${prefix}-${role}`;
}

/** One row per variable, for the README table and `flywheel config --help`. */
export function describeVariables(): { variable: string; description: string; default?: string }[] {
  return Object.entries(envSchema.shape).map(([variable, schema]) => {
    const s = schema as z.ZodTypeAny;
    const parsed = s.safeParse(undefined);
    const def = parsed.success && parsed.data !== undefined ? parsed.data : undefined;
    return {
      variable,
      description: s.description ?? '',
      default: def === undefined ? undefined : Array.isArray(def) ? def.join(',') : String(def),
    };
  });
}
