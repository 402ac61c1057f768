import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, checkWorkerReach, loadConfig } from '../lib/config';

const root = path.join(__dirname, '..');

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string> | string[];
  command?: string[] | string;
  entrypoint?: string[] | string;
  ports?: unknown[];
  volumes?: string[];
  healthcheck?: { test?: string[] | string };
  depends_on?: unknown;
}

const composeText = fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');
const compose = parse(composeText, { merge: true }) as { services: Record<string, ComposeService> };
const envExample = fs.readFileSync(path.join(root, '.env.example'), 'utf8');

/** Variables .env.example asks for (`NAME=`), and the optional ones it shows commented out (`# NAME=`). */
const required = [...envExample.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]);
const optional = [...envExample.matchAll(/^# ([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]);

/** What `docker compose` would read from a .env made by the README's command: fresh random values. */
const dotEnv: Record<string, string> = {
  POSTGRES_PASSWORD: randomBytes(24).toString('hex'),
  MINIO_ROOT_PASSWORD: randomBytes(24).toString('hex'),
  FLYWHEEL_S3_SECRET_KEY: randomBytes(24).toString('hex'),
  FLYWHEEL_CODEC_KEYS: `2026-12:${randomBytes(32).toString('base64')}`,
  GRAFANA_ADMIN_PASSWORD: randomBytes(24).toString('hex'),
};

/** Compose interpolation: `${VAR}`, `${VAR:-default}`, `${VAR:?error}` (which fails when VAR is unset), `$$`. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(
    /\$\$|\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g,
    (whole, name?: string, op?: string, arg?: string) => {
      if (whole === '$$') return '$';
      const set = env[name!];
      if (set !== undefined && set !== '') return set;
      if (op === '-') return arg ?? '';
      if (op === '?') throw new Error(`compose refuses to start: ${name} is unset (${arg})`);
      return '';
    },
  );
}

function environmentOf(service: ComposeService, env: Record<string, string> = dotEnv): Record<string, string> {
  const raw = service.environment ?? {};
  const entries = Array.isArray(raw)
    ? raw.map((line) => [line.split('=')[0], line.split('=').slice(1).join('=')])
    : Object.entries(raw).map(([k, v]) => [k, String(v)]);
  return Object.fromEntries(entries.map(([k, v]) => [k, interpolate(v, env)]));
}

function rawEnvironmentOf(service: ComposeService): Record<string, string> {
  const raw = service.environment ?? {};
  if (Array.isArray(raw)) return Object.fromEntries(raw.map((l) => [l.split('=')[0], l.split('=').slice(1).join('=')]));
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, String(v)]));
}

/** A pinned tag names a version: not missing, not `latest`, not a moving major like `16`. */
function isPinned(image: string): boolean {
  const at = image.lastIndexOf(':');
  if (at < 0 || image.includes('@sha256:')) return image.includes('@sha256:');
  const tag = image.slice(at + 1);
  return tag !== 'latest' && /\d+\.\d+|RELEASE\.\d{4}-/.test(tag);
}

/** Short port syntax `[host_ip:][host_port:]container_port`: the host address and host port it publishes on. */
function published(port: unknown): { hostIp?: string; hostPort?: string; containerPort: string } {
  const parts = String(port).split(':');
  const containerPort = parts.pop()!;
  if (parts.length === 2) return { hostIp: parts[0], hostPort: parts[1] || undefined, containerPort };
  return { hostPort: parts[0], containerPort };
}

const flywheelServices = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);
const workerServices = flywheelServices.filter(([, s]) => [s.command].flat()[0] === 'worker');

describe('docker-compose.yml, the production-shaped stack', () => {
  it('has Temporal on PostgreSQL, the Temporal UI, an S3-compatible store, the codec server and a Flywheel worker', () => {
    const images = Object.values(compose.services).map((s) => s.image ?? '');
    assert.ok(images.some((i) => i.startsWith('postgres:')));
    assert.ok(images.some((i) => i.startsWith('temporalio/server:')));
    assert.ok(images.some((i) => i.startsWith('temporalio/ui:')));
    assert.ok(images.some((i) => i.startsWith('minio/minio:')));
    assert.ok(compose.services.worker?.build !== undefined, 'the worker is built from the Dockerfile in the repo');
    assert.deepEqual(compose.services.worker.command, ['worker']);
    assert.ok(flywheelServices.some(([, s]) => [s.command].flat()[0] === 'codec-server'));
  });

  it('pins every image to a version', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      assert.ok(service.image, `service ${name} names its image`);
      assert.ok(isPinned(service.image), `service ${name}: image ${service.image} is not pinned to a version`);
    }
    const from = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8').match(/^FROM\s+(\S+)/m)?.[1];
    assert.ok(from && isPinned(from), `Dockerfile base image ${from} is not pinned`);
  });

  it('runs supported Temporal images: no auto-setup, no tctl; schema from admin-tools, health from the temporal CLI', () => {
    const images = Object.values(compose.services).map((s) => s.image ?? '');
    assert.ok(!images.some((i) => i.startsWith('temporalio/auto-setup')), 'temporalio/auto-setup is deprecated');
    assert.doesNotMatch(composeText, /\btctl\b/, 'tctl is no longer supported; use the temporal CLI');
    const server = compose.services.temporal;
    const version = server.image!.split(':')[1];
    const schema = Object.values(compose.services).find((s) => JSON.stringify(s).includes('temporal-sql-tool'));
    assert.equal(schema?.image, `temporalio/admin-tools:${version}`, 'the schema step runs the same version');
    assert.match(JSON.stringify(server.depends_on ?? {}), /service_completed_successfully/);
    assert.deepEqual([server.healthcheck?.test].flat().slice(0, 5), [
      'CMD',
      'temporal',
      'operator',
      'cluster',
      'health',
    ]);
  });

  it('publishes every port on 127.0.0.1 only', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const port of service.ports ?? []) {
        assert.equal(published(port).hostIp, '127.0.0.1', `service ${name} publishes ${String(port)} beyond loopback`);
      }
    }
    assert.match(composeText, /To open one on purpose/, 'a comment says how to open a port');
  });

  it('writes no secret into the file: each comes from .env, and compose refuses to start without it', () => {
    for (const variable of [
      'POSTGRES_PASSWORD',
      'MINIO_ROOT_PASSWORD',
      'FLYWHEEL_S3_SECRET_KEY',
      'FLYWHEEL_CODEC_KEYS',
      'GRAFANA_ADMIN_PASSWORD',
    ])
      assert.ok(required.includes(variable), `.env.example lists ${variable}`);
    const secretName = /PASSWORD|PWD|SECRET|KEYS$|TOKEN/;
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [variable, value] of Object.entries(rawEnvironmentOf(service))) {
        if (!secretName.test(variable)) continue;
        assert.match(value, /^\$\{[A-Z0-9_]+:\?[^}]+\}$/, `service ${name}: ${variable} must be \${VAR:?message}`);
      }
      // Shell steps reference secrets as variables, never as values.
      const script = JSON.stringify([service.command, service.entrypoint]);
      for (const secret of Object.values(dotEnv)) assert.ok(!script.includes(secret));
    }
    assert.doesNotMatch(composeText, /flywheel-secret|POSTGRES_(PASSWORD|PWD): temporal/, 'the old literals are gone');
    for (const variable of required) {
      const rest = { ...dotEnv };
      delete rest[variable];
      assert.throws(
        () => Object.values(compose.services).forEach((s) => environmentOf(s, rest)),
        new RegExp(`${variable} is unset`),
        `compose refuses to start without ${variable}`,
      );
    }
  });

  it('.env.example names exactly the variables the file reads, and git ignores .env', () => {
    const read = new Set([...composeText.matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1]));
    assert.deepEqual([...read].sort(), [...required, ...optional].sort());
    const gitignore = fs.readFileSync(path.join(root, '.gitignore'), 'utf8');
    assert.match(gitignore, /^\.env$/m);
    assert.match(fs.readFileSync(path.join(root, '.dockerignore'), 'utf8'), /^\.env$/m);
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

  it('workers start with their reach set: the mounted data folder, the corpus bucket, no hosts unless listed', () => {
    assert.ok(workerServices.length >= 2);
    for (const [name, service] of workerServices) {
      const config = loadConfig(environmentOf(service), '/app');
      assert.doesNotThrow(() => checkWorkerReach(config), `service ${name} starts`);
      assert.equal(config.worker.reachUnrestricted, false);
      assert.deepEqual(config.worker.collectRoots, ['/data']);
      assert.deepEqual(config.worker.collectBuckets, ['flywheel-corpus']);
      assert.deepEqual(config.worker.collectHosts, [], 'url sources are off until the operator lists hosts');
      const listed = loadConfig(environmentOf(service, { ...dotEnv, FLYWHEEL_COLLECT_HOSTS: 'data.example.org' }));
      assert.deepEqual(listed.worker.collectHosts, ['data.example.org']);
    }
    const worker = compose.services.worker;
    assert.ok(
      (worker.volumes ?? []).some((v) => /:\/data:ro$/.test(v)),
      'the data folder is mounted read-only at /data',
    );
    const tierBuckets = ['FLYWHEEL_WARM', 'FLYWHEEL_COLD'].map((v) => environmentOf(worker)[v].split('/')[2]);
    assert.ok(!tierBuckets.includes('flywheel-corpus'), "specs cannot read Flywheel's own tiers as a source");
    assert.match(JSON.stringify(compose.services.buckets), /local\/flywheel-corpus/, 'the corpus bucket is created');
  });

  it('encrypts payloads: every Flywheel process has the key ring, the codec server runs and the UI points at it', () => {
    for (const [name, service] of workerServices) {
      assert.ok(loadConfig(environmentOf(service), '/app').codec.keyRing, `service ${name} encrypts payloads`);
    }
    const [, codec] = flywheelServices.find(([, s]) => [s.command].flat()[0] === 'codec-server')!;
    assert.ok(loadConfig(environmentOf(codec), '/app').codec.keyRing, 'the codec server has the key ring');
    const codecPort = published(codec.ports?.[0]);
    const ui = compose.services['temporal-ui'];
    assert.equal(environmentOf(ui).TEMPORAL_CODEC_ENDPOINT, `http://localhost:${codecPort.hostPort}`);
    const uiPort = published(ui.ports?.[0]).hostPort;
    const args = [codec.command].flat().join(' ');
    assert.match(args, new RegExp(`--ui-origin \\S*http://localhost:${uiPort}`), "CORS allows the UI's origin");
    assert.match(args, /--host 0\.0\.0\.0/, 'it listens beyond its own loopback so the published port reaches it');
    assert.equal(codecPort.containerPort, '8888');
  });

  it('the scalable data worker publishes no fixed host port', () => {
    for (const p of compose.services.worker.ports ?? []) {
      assert.equal(published(p).hostPort, undefined, `worker port ${String(p)} is fixed: --scale worker=N collides`);
    }
    const roles = new Set(workerServices.flatMap(([, s]) => loadConfig(environmentOf(s), '/app').worker.roles));
    assert.deepEqual([...roles].sort(), ['cpu', 'io', 'train']);
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

  it('the image holds every folder `flywheel` loads', () => {
    const copied = [...fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8').matchAll(/^COPY (\S+) /gm)].map(
      (m) => m[1],
    );
    for (const folder of ['bin', 'app', 'temporal', 'lib', 'workflows', 'activities', 'worker', 'client'])
      assert.ok(copied.includes(folder), `the Dockerfile copies ${folder}/`);
  });
});
