import pino from 'pino';
import { DefaultLogger, Runtime, makeTelemetryFilterString, type LogEntry, type LogLevel } from '@temporalio/worker';
import type { FlywheelConfig } from '../lib/config';
import { FLYWHEEL_HISTOGRAM_BUCKETS } from '../lib/metrics';
import { isListening } from '../temporal/dev-server';

let installed = false;

/** Expected by design: only the io queue hosts workflows (the cpu and train workers poll activities alone), and
 * Flywheel registers no Nexus services. */
const EXPECTED_WARNINGS = [
  'No workflows registered, not polling for workflow tasks',
  'No Nexus services registered, not polling for Nexus tasks',
];

/** The SDK's console logger without the warnings Flywheel's layout makes expected. */
export function flywheelLogger(level: LogLevel): DefaultLogger {
  const console = new DefaultLogger(level);
  return new DefaultLogger(level, (entry: LogEntry) => {
    if (EXPECTED_WARNINGS.includes(entry.message)) return;
    console.log(entry.level, entry.message, entry.meta);
  });
}

/**
 * The SDK's log entries as JSON lines on stderr (pino), one object per line with the SDK's own context: `workflowId`,
 * `runId`, `workflowType` on workflow lines, `activityId`, `activityType`, `attempt` on activity lines, `taskQueue`
 * and `namespace` on both. stderr keeps stdout free for `--json` results.
 */
export function flywheelJsonLogger(
  level: LogLevel,
  destination: pino.DestinationStream = pino.destination({ fd: 2, sync: true }),
): DefaultLogger {
  const log = pino(
    {
      level: level.toLowerCase(),
      timestamp: false,
      base: { pid: process.pid },
      serializers: { error: pino.stdSerializers.err, err: pino.stdSerializers.err },
    },
    destination,
  );
  return new DefaultLogger(level, (entry: LogEntry) => {
    if (EXPECTED_WARNINGS.includes(entry.message)) return;
    const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
    log[entry.level.toLowerCase() as 'info']({ time, ...entry.meta }, entry.message);
  });
}

function loggerFor(config: FlywheelConfig, level: LogLevel): DefaultLogger {
  const json = config.worker.logFormat === 'json' || (config.worker.logFormat === 'auto' && !process.stderr.isTTY);
  return json ? flywheelJsonLogger(level) : flywheelLogger(level);
}

/**
 * Installs the SDK runtime once per process: Prometheus metrics on the configured port (skipped with a warning when
 * the port is taken, so a second local worker still starts) and the configured log level.
 */
export async function installRuntime(
  config: FlywheelConfig,
  opts: { quiet?: boolean } = {},
): Promise<{ metricsUrl?: string }> {
  if (installed) return {};
  installed = true;
  const port = config.worker.metricsPort;
  let metricsUrl: string | undefined;
  if (port > 0) {
    if (await isListening(`127.0.0.1:${port}`, 300)) {
      console.warn(`[flywheel] metrics port ${port} is in use; worker metrics are off (set FLYWHEEL_METRICS_PORT)`);
    } else {
      metricsUrl = `http://localhost:${port}/metrics`;
    }
  }
  Runtime.install({
    // The one-shot `start` shows only warnings unless a debug level was asked for: its own lines tell the story.
    logger: loggerFor(
      config,
      opts.quiet && !['TRACE', 'DEBUG'].includes(config.worker.logLevel) ? 'WARN' : config.worker.logLevel,
    ),
    // The worker handles signals itself so that it can also stop the servers it started.
    shutdownSignals: [],
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
      // Flywheel's own metrics (lib/metrics) come out of the same endpoint, through the activities' metric meter.
      ...(metricsUrl
        ? {
            metrics: {
              prometheus: { bindAddress: `0.0.0.0:${port}`, histogramBucketOverrides: FLYWHEEL_HISTOGRAM_BUCKETS },
            },
          }
        : {}),
    },
  });
  return { metricsUrl };
}
