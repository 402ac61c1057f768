import { Runtime, makeTelemetryFilterString, DefaultLogger } from '@temporalio/worker';
import type { FlywheelConfig } from '../lib/config';
import { isListening } from './dev-server';

let installed = false;

/**
 * Installs the SDK runtime once per process: Prometheus metrics on the configured port (skipped with a warning when
 * the port is taken, so a second local worker still starts) and the configured log level.
 */
export async function installRuntime(config: FlywheelConfig): Promise<{ metricsUrl?: string }> {
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
    logger: new DefaultLogger(config.worker.logLevel),
    // The worker handles signals itself so that it can also stop the servers it started.
    shutdownSignals: [],
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
      ...(metricsUrl ? { metrics: { prometheus: { bindAddress: `0.0.0.0:${port}` } } } : {}),
    },
  });
  return { metricsUrl };
}
