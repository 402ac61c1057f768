import { Client, Connection } from '@temporalio/client';
import type { FlywheelConfig } from '../lib/config';
import { tlsOptions } from './connection';
import { flywheelDataConverter } from './payload-codec';
import { installTracing, tracingClientInterceptors } from './tracing';

export class TemporalUnreachable extends Error {
  readonly exitCode = 3;
  constructor(address: string, cause: unknown) {
    super(
      `Cannot reach Temporal at ${address}: ${(cause as Error)?.message ?? cause}. ` +
        'Start a local server with `npx flywheel dev`, or set TEMPORAL_ADDRESS (and TLS/API key for a cluster).',
    );
    this.name = 'TemporalUnreachable';
  }
}

/** A Temporal client for the configured cluster (TLS, mTLS or API key from the environment). */
export async function connectClient(config: FlywheelConfig): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({
      address: config.temporal.address,
      tls: tlsOptions(config),
      apiKey: config.temporal.apiKey,
      connectTimeout: 5000,
    });
  } catch (err) {
    throw new TemporalUnreachable(config.temporal.address, err);
  }
  return new Client({
    connection,
    namespace: config.temporal.namespace,
    dataConverter: flywheelDataConverter(config),
    // With traces on, each start is the root of its run's trace.
    interceptors: installTracing(config) ? { workflow: tracingClientInterceptors() } : undefined,
  });
}
