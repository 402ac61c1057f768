import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../lib/config';

const root = path.join(__dirname, '..');

describe('configuration from the environment', () => {
  it('defaults to the embedded setup: local folders under .flywheel and localhost:7233', () => {
    const config = loadConfig({}, '/srv/app');
    assert.equal(config.temporal.address, 'localhost:7233');
    assert.equal(config.temporal.namespace, 'default');
    assert.deepEqual(config.tiers, {
      hot: '/srv/app/.flywheel/hot',
      warm: '/srv/app/.flywheel/warm',
      cold: '/srv/app/.flywheel/cold',
    });
    assert.deepEqual(config.worker.roles, ['io', 'cpu', 'train']);
    assert.equal(config.temporal.tls, undefined);
  });

  it('reads S3 tiers, endpoint and path style', () => {
    const config = loadConfig({
      FLYWHEEL_WARM: 's3://datasets-bucket/flywheel',
      FLYWHEEL_COLD: 's3://archive-bucket',
      FLYWHEEL_S3_ENDPOINT: 'http://127.0.0.1:9000',
      FLYWHEEL_TASK_QUEUES: 'cpu, io',
    });
    assert.equal(config.tiers.warm, 's3://datasets-bucket/flywheel');
    assert.equal(config.tiers.cold, 's3://archive-bucket');
    assert.equal(config.s3.forcePathStyle, true, 'an explicit endpoint implies path-style addressing');
    assert.deepEqual(config.worker.roles, ['cpu', 'io']);
  });

  it('an API key turns TLS on (Temporal Cloud)', () => {
    const config = loadConfig({
      TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233',
      TEMPORAL_API_KEY: 'k',
      TEMPORAL_NAMESPACE: 'ns.acct',
    });
    assert.ok(config.temporal.tls);
    assert.equal(config.temporal.apiKey, 'k');
  });

  it('names every bad variable in one error, and hides secrets', () => {
    const err = (() => {
      try {
        loadConfig({
          TEMPORAL_ADDRESS: 'no-port',
          FLYWHEEL_METRICS_PORT: '70000',
          FLYWHEEL_TASK_QUEUES: 'io,gpu',
          FLYWHEEL_WARM: 's3://',
          FLYWHEEL_WORKER_CONCURRENCY: '0',
          TEMPORAL_API_KEY: 'super-secret',
          TEMPORAL_TLS: 'false',
        });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof ConfigError);
    const vars = err.problems.map((p) => p.variable).sort();
    assert.deepEqual(vars, [
      'FLYWHEEL_METRICS_PORT',
      'FLYWHEEL_TASK_QUEUES',
      'FLYWHEEL_WARM',
      'FLYWHEEL_WORKER_CONCURRENCY',
      'TEMPORAL_ADDRESS',
      'TEMPORAL_TLS',
    ]);
    assert.match(err.message, /TEMPORAL_ADDRESS="no-port": expected host:port/);
    assert.doesNotMatch(err.message, /super-secret/);
  });

  it('mTLS needs both certificate and key, and the files must exist', () => {
    assert.throws(
      () => loadConfig({ TEMPORAL_TLS_CLIENT_CERT_PATH: '/nonexistent/client.pem' }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.some((p) => p.variable === 'TEMPORAL_TLS_CLIENT_CERT_PATH' && /readable file/.test(p.expected)) &&
        e.problems.some((p) => p.variable === 'TEMPORAL_TLS_CLIENT_KEY_PATH'),
    );
  });

  it('a bad variable stops the CLI with exit code 2 and one clear message', () => {
    const run = spawnSync(process.execPath, [path.join(root, 'bin', 'flywheel.js'), 'config'], {
      env: { ...process.env, FLYWHEEL_METRICS_PORT: 'ninety', FLYWHEEL_S3_CHECKSUMS: 'sometimes' },
      encoding: 'utf8',
      cwd: root,
    });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /Flywheel configuration is invalid \(2 problems\)/);
    assert.match(run.stderr, /FLYWHEEL_METRICS_PORT="ninety": expected a port number/);
    assert.match(run.stderr, /FLYWHEEL_S3_CHECKSUMS="sometimes": expected when_supported or when_required/);
  });

  it('the worker process exits with code 2 on a bad variable too', () => {
    const run = spawnSync(process.execPath, ['--require', 'tsx/cjs', path.join(root, 'worker', 'main.ts')], {
      env: { ...process.env, TEMPORAL_NAMESPACE: 'bad namespace!' },
      encoding: 'utf8',
      cwd: root,
    });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /TEMPORAL_NAMESPACE="bad namespace!"/);
  });
});
