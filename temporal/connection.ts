import * as fs from 'node:fs';
import type { NativeConnectionOptions } from '@temporalio/worker';
import type { FlywheelConfig } from '../lib/config';

/** TLS and API-key options shared by the worker's native connection and the client's connection. */
export function tlsOptions(config: FlywheelConfig) {
  const tls = config.temporal.tls;
  if (!tls) return config.temporal.apiKey ? true : undefined;
  return {
    serverNameOverride: tls.serverName,
    serverRootCACertificate: tls.serverCaCertPath ? fs.readFileSync(tls.serverCaCertPath) : undefined,
    clientCertPair:
      tls.clientCertPath && tls.clientKeyPath
        ? { crt: fs.readFileSync(tls.clientCertPath), key: fs.readFileSync(tls.clientKeyPath) }
        : undefined,
  };
}

export function nativeConnectionOptions(config: FlywheelConfig): NativeConnectionOptions {
  return { address: config.temporal.address, tls: tlsOptions(config), apiKey: config.temporal.apiKey };
}
