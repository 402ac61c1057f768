import { z } from 'zod';
import { isHostPattern } from '../collect/reach';

/** Where a tier lives: a local folder or `s3://bucket/prefix`. */
const tierLocation = z
  .string()
  .trim()
  .min(1, 'a folder path or s3://bucket/prefix')
  .refine((v) => !v.startsWith('s3://') || /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(v), {
    message: 's3://bucket/prefix, the bucket 3-63 lowercase letters, digits, dots or dashes',
  });

const booleanFlag = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['1', '0', 'true', 'false', 'yes', 'no'].includes(v), { message: 'true or false' })
  .transform((v) => ['1', 'true', 'yes'].includes(v));

const port = z.coerce
  .number({ message: 'a port number' })
  .int('a whole port number')
  .min(0, 'a port from 0 (off) to 65535')
  .max(65535, 'a port from 0 (off) to 65535');

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

const commaList = z
  .string()
  .trim()
  .transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** A comma-separated list whose entries pass `valid`, or `none` for an empty list (that kind of source off). */
const noneOrList = (valid: (entry: string) => boolean, message: string) =>
  commaList
    .refine((v) => v.join() === 'none' || (v.length > 0 && !v.includes('none') && v.every(valid)), { message })
    .transform((v) => (v.join() === 'none' ? [] : v))
    .optional();

/** An OTLP/HTTP endpoint: http(s) only, since Flywheel exports traces over HTTP. */
const otlpUrl = z
  .string()
  .trim()
  .url('an http(s) URL such as http://127.0.0.1:4318')
  .refine((v) => /^https?:\/\//i.test(v), { message: 'an http(s) URL such as http://127.0.0.1:4318' })
  .optional();

const positiveInt = (what: string) => z.coerce.number({ message: what }).int(what).min(1, what);

export const TASK_QUEUE_ROLES = ['io', 'cpu', 'train'] as const;
export type TaskQueueRole = (typeof TASK_QUEUE_ROLES)[number];

const queueRoles = z
  .string()
  .trim()
  .transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  )
  .refine((roles) => roles.length > 0 && roles.every((r) => (TASK_QUEUE_ROLES as readonly string[]).includes(r)), {
    message: `a comma-separated subset of ${TASK_QUEUE_ROLES.join(',')}`,
  })
  .transform((roles) => [...new Set(roles)] as TaskQueueRole[]);

/**
 * Every environment variable Flywheel reads, with its default and what it expects.
 * The README's configuration table is generated from `describe` texts here, so keep them user-facing.
 */
export const envSchema = z.object({
  TEMPORAL_ADDRESS: z
    .string()
    .trim()
    .regex(/^[^\s:]+:\d{1,5}$/, 'host:port, e.g. localhost:7233')
    .default('localhost:7233')
    .describe('Temporal frontend host:port'),
  TEMPORAL_NAMESPACE: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/, 'a namespace name (letters, digits, . _ -)')
    .default('default')
    .describe('Temporal namespace'),
  TEMPORAL_API_KEY: z
    .string()
    .min(1, 'a non-empty API key')
    .optional()
    .describe('API key (Temporal Cloud); turns TLS on'),
  TEMPORAL_TLS: booleanFlag.optional().describe('use TLS without client certificates (true/false)'),
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().min(1).optional().describe('client certificate file for mTLS'),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().min(1).optional().describe('client private key file for mTLS'),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().min(1).optional().describe('CA certificate file of the server'),
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional().describe('server name to verify (SNI override)'),
  FLYWHEEL_HOME: z
    .string()
    .trim()
    .min(1)
    .default('.flywheel')
    .describe('folder for local state, logs and the default tiers'),
  FLYWHEEL_HOT: tierLocation.optional().describe('hot tier: local folder (default $FLYWHEEL_HOME/hot)'),
  FLYWHEEL_WARM: tierLocation
    .optional()
    .describe('warm tier: folder or s3://bucket/prefix (default $FLYWHEEL_HOME/warm)'),
  FLYWHEEL_COLD: tierLocation
    .optional()
    .describe('cold tier: folder or s3://bucket/prefix (default $FLYWHEEL_HOME/cold)'),
  FLYWHEEL_HOT_MAX_BYTES: z.coerce
    .number({ message: 'a size in bytes' })
    .int('a whole number of bytes')
    .min(0, 'a size in bytes (0 = unbounded)')
    .default(0)
    .describe('hot tier size bound; least recently used objects are evicted past it (0 = unbounded)'),
  FLYWHEEL_S3_ENDPOINT: z
    .string()
    .trim()
    .url('a URL such as http://127.0.0.1:9000')
    .optional()
    .describe('S3-compatible endpoint URL (default: AWS)'),
  AWS_ACCESS_KEY_ID: z.string().min(1).optional().describe('S3 access key (else the AWS SDK credential chain)'),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).optional().describe('S3 secret key (else the AWS SDK credential chain)'),
  FLYWHEEL_S3_REGION: z.string().trim().min(1).default('us-east-1').describe('S3 region'),
  FLYWHEEL_S3_FORCE_PATH_STYLE: booleanFlag
    .optional()
    .describe('path-style bucket addressing (default true when an endpoint is set)'),
  FLYWHEEL_S3_CHECKSUMS: z
    .enum(['when_supported', 'when_required'], { message: 'when_supported or when_required' })
    .default('when_supported')
    .describe('request checksums: when_supported (SDK default) or when_required (servers without aws-chunked support)'),
  FLYWHEEL_S3_MAX_ATTEMPTS: positiveInt('a whole number of attempts ≥ 1')
    .default(5)
    .describe('attempts per S3 request, with backoff'),
  FLYWHEEL_TASK_QUEUES: queueRoles
    .default(['io', 'cpu', 'train'])
    .describe('task queues this worker serves: subset of io,cpu,train'),
  FLYWHEEL_TASK_QUEUE_PREFIX: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'letters, digits, . _ -')
    .default('flywheel')
    .describe('task queues are <prefix>-io, <prefix>-cpu, <prefix>-train'),
  FLYWHEEL_WORKER_CONCURRENCY: positiveInt('a whole number ≥ 1')
    .default(4)
    .describe('concurrent activities per task queue'),
  FLYWHEEL_WORKER_THREADS: positiveInt('a whole number of threads ≥ 1')
    .optional()
    .describe(
      'threads for quality filtering, exact-dedup keys, near-dup signing and tokenization (default: the CPUs this process may use)',
    ),
  FLYWHEEL_METRICS_PORT: port.default(9464).describe('Prometheus metrics port on the worker (0 = off)'),
  FLYWHEEL_CODEC_KEYS: z
    .string()
    .optional()
    .describe(
      'payload encryption key ring `id:base64key[,id:base64key...]` (32-byte keys, the first encrypts); unset = off',
    ),
  FLYWHEEL_CODEC_KEYS_FILE: z
    .string()
    .trim()
    .min(1)
    .optional()
    .describe('file holding the key ring instead (entries separated by commas or newlines)'),
  FLYWHEEL_CODEC_TOKEN: z
    .string()
    .trim()
    .min(16, 'a token of at least 16 characters, e.g. from `openssl rand -hex 32`')
    .optional()
    .describe('bearer token the codec server requires (unset = no auth, loopback only)'),
  FLYWHEEL_COLLECT_ROOTS: z
    .string()
    .trim()
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .refine((roots) => roots.length > 0, { message: 'a comma-separated list of folders' })
    .optional()
    .describe(
      'folders `path` sources may read (default: anywhere the worker can read); set it when specs come from the UI',
    ),
  FLYWHEEL_COLLECT_BUCKETS: noneOrList(
    (bucket) => BUCKET_NAME.test(bucket),
    'a comma-separated list of S3 bucket names, or none',
  ).describe(
    'S3 buckets `s3` sources may read; none = no s3 sources (unset: any bucket the credentials can read); ' +
      'set it when specs come from the UI',
  ),
  FLYWHEEL_COLLECT_HOSTS: noneOrList(
    isHostPattern,
    'a comma-separated list of hosts: host, host:port, *.domain or *, or none',
  ).describe(
    'hosts `url` sources and their redirects may reach: host, host:port, *.domain or * (any); none = no url sources ' +
      '(unset: any public host). Loopback, link-local and private addresses need the host listed by name',
  ),
  FLYWHEEL_REACH_UNRESTRICTED: booleanFlag
    .optional()
    .describe(
      '1 = `flywheel worker` may start with FLYWHEEL_COLLECT_ROOTS, _BUCKETS and _HOSTS all unset (specs read any ' +
        'folder, bucket and public host); only where every spec is trusted',
    ),
  FLYWHEEL_LOG_LEVEL: z
    .enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'], { message: 'TRACE, DEBUG, INFO, WARN or ERROR' })
    .default('INFO')
    .describe('worker log level'),
  FLYWHEEL_LOG_FORMAT: z
    .enum(['auto', 'json', 'text'], { message: 'auto, json or text' })
    .default('auto')
    .describe(
      'worker log lines: json (one object per line, with workflow and activity ids), text, or auto (json unless stderr is a terminal)',
    ),
  FLYWHEEL_FEEDBACK_SHARDS: positiveInt('a whole number of shards ≥ 1')
    .max(1024, 'at most 1024 shards')
    .default(4)
    .describe(
      'feedback ledgers per day (sharded by event id); every process submitting feedback must use the same number',
    ),
  FLYWHEEL_FEEDBACK_MAX_EVENT_BYTES: z.coerce
    .number({ message: 'a size in bytes' })
    .int('a whole number of bytes')
    .min(1024, 'at least 1024 bytes')
    .max(1024 * 1024, 'at most 1048576 bytes (1 MiB)')
    .default(64 * 1024)
    .describe('largest feedback event accepted, in bytes of its JSON'),
  FLYWHEEL_PRICES: z
    .string()
    .optional()
    .describe(
      'price table for `flywheel cost`, JSON: {"currency":"USD","cpuHour":x,"gpuHour":x,' +
        '"gbMonth":{"hot":x,"warm":x,"cold":x},"per1000Requests":x}; a key left out costs 0 (unset: usage without amounts)',
    ),
  FLYWHEEL_PRICES_FILE: z.string().trim().min(1).optional().describe('file holding the price table instead'),
  OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl.describe(
    'OpenTelemetry collector for traces, OTLP over HTTP: spans go to <url>/v1/traces (unset: no traces)',
  ),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: otlpUrl.describe(
    'the full OTLP/HTTP traces URL, used as given instead of the one above',
  ),
  OTEL_SERVICE_NAME: z
    .string()
    .trim()
    .min(1)
    .default('flywheel')
    .describe('service name on the spans this process exports'),
  OTEL_SDK_DISABLED: booleanFlag.optional().describe('true turns traces off even with an endpoint set'),
});

export type EnvConfig = z.infer<typeof envSchema>;
export const CONFIG_VARIABLES = Object.keys(envSchema.shape) as (keyof EnvConfig)[];
