import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../lib/config';

const root = path.join(__dirname, '..');

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string> | string[];
  command?: string[];
}

const compose = parse(fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};

function environmentOf(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  return Object.fromEntries(env.map((line) => [line.split('=')[0], line.split('=').slice(1).join('=')]));
}

/** A pinned tag names a version: not missing, not `latest`, not a moving major like `16`. */
function isPinned(image: string): boolean {
  const at = image.lastIndexOf(':');
  if (at < 0 || image.includes('@sha256:')) return image.includes('@sha256:');
  const tag = image.slice(at + 1);
  return tag !== 'latest' && /\d+\.\d+|RELEASE\.\d{4}-/.test(tag);
}

describe('docker-compose.yml, the production-shaped stack', () => {
  const flywheelServices = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);

  it('has Temporal on PostgreSQL, the Temporal UI, an S3-compatible store and a Flywheel worker', () => {
    const images = Object.values(compose.services).map((s) => s.image ?? '');
    assert.ok(images.some((i) => i.startsWith('postgres:')));
    assert.ok(images.some((i) => i.startsWith('temporalio/auto-setup:') || i.startsWith('temporalio/server:')));
    assert.ok(images.some((i) => i.startsWith('temporalio/ui:')));
    assert.ok(images.some((i) => i.startsWith('minio/minio:')));
    assert.ok(compose.services.worker?.build !== undefined, 'the worker is built from the Dockerfile in the repo');
    assert.deepEqual(compose.services.worker.command, ['worker']);
  });

  it('pins every image to a version', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      assert.ok(service.image, `service ${name} names its image`);
      assert.ok(isPinned(service.image), `service ${name}: image ${service.image} is not pinned to a version`);
    }
    const from = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8').match(/^FROM\s+(\S+)/m)?.[1];
    assert.ok(from && isPinned(from), `Dockerfile base image ${from} is not pinned`);
  });

  it('sets only variables the config schema knows on Flywheel services, and they parse', () => {
    assert.ok(flywheelServices.length >= 1);
    const known = new Set<string>(CONFIG_VARIABLES);
    for (const [name, service] of flywheelServices) {
      const env = environmentOf(service);
      const unknown = Object.keys(env).filter((k) => !known.has(k));
      assert.deepEqual(unknown, [], `service ${name} sets variables the config schema does not know`);
      const config = loadConfig(env, '/app');
      if (name === 'worker') {
        assert.equal(config.tiers.warm, 's3://flywheel-warm/flywheel');
        assert.equal(config.s3.endpoint, 'http://minio:9000');
        assert.deepEqual(config.worker.roles, ['io', 'cpu']);
      }
      if (name === 'trainer') assert.deepEqual(config.worker.roles, ['train']);
    }
  });

  it('serves every task queue, and the scalable data worker publishes no fixed host port', () => {
    const roles = new Set(
      flywheelServices
        .filter(([, s]) => s.command?.[0] === 'worker')
        .flatMap(([, s]) => loadConfig(environmentOf(s), '/app').worker.roles),
    );
    assert.deepEqual([...roles].sort(), ['cpu', 'io', 'train']);
    const ports = (compose.services.worker as { ports?: unknown[] }).ports ?? [];
    for (const p of ports) {
      assert.ok(
        !String(p).includes(':'),
        `worker port ${String(p)} binds a fixed host port: --scale worker=N collides`,
      );
    }
  });

  it('the S3 buckets the worker uses are created by the stack', () => {
    const entry = JSON.stringify(compose.services.buckets ?? {});
    for (const tier of ['FLYWHEEL_WARM', 'FLYWHEEL_COLD']) {
      const bucket = environmentOf(compose.services.worker)[tier]?.match(/^s3:\/\/([^/]+)/)?.[1];
      assert.ok(
        bucket && entry.includes(`local/${bucket}`),
        `${tier} bucket ${bucket} is created by the buckets service`,
      );
    }
  });
});
