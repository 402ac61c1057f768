import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { startCodecServer, type RunningCodecServer } from '../app/commands/codec-server';
import { connectClient } from '../temporal/client-connection';
import { FlywheelClient } from '../client/flywheel-client';
import { DecryptionFailed, open, seal, UnknownEncryptionKey } from '../lib/codec';
import { ConfigError, loadConfig } from '../lib/config';
import { ENCRYPTED_ENCODING, EncryptionCodec, KEY_ID_METADATA_KEY } from '../temporal/payload-codec';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { temporalAddress, testConfig } from './support/temporal';

const newKey = () => randomBytes(32).toString('base64');
const ringOf = (spec: string) => loadConfig({ FLYWHEEL_CODEC_KEYS: spec }).codec.keyRing!;
const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
  assert.fail('expected a ConfigError');
}

/** Every payload in a history, with where it sits; search attributes are indexed by the server, never encoded. */
function payloadsIn(value: unknown, at = ''): { at: string; payload: Payload }[] {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return [];
  const v = value as Record<string, unknown>;
  if (v.data instanceof Uint8Array && v.metadata && typeof v.metadata === 'object') return [{ at, payload: v }];
  return Object.entries(v)
    .filter(([k]) => k !== 'searchAttributes')
    .flatMap(([k, child]) => payloadsIn(child, `${at}.${k}`));
}

describe('payload encryption (AES-256-GCM, key id in the metadata)', () => {
  it('round trip: what is sealed opens to the same bytes, under a fresh IV each time', () => {
    const ring = ringOf(`k1:${newKey()}`);
    const plaintext = Buffer.from('{"name":"attack-at-dawn"}');
    const a = seal(ring, plaintext);
    const b = seal(ring, plaintext);
    assert.equal(a.keyId, 'k1');
    assert.notDeepEqual(a.data, b.data, 'a random 96-bit IV per payload');
    assert.equal(a.data.length, 12 + plaintext.length + 16);
    assert.ok(!a.data.includes(plaintext));
    assert.deepEqual(open(ring, a), plaintext);
    assert.deepEqual(open(ring, b), plaintext);
  });

  it('the payload codec encrypts metadata and data, marks binary/encrypted with the key id, and decodes back', async () => {
    const codec = new EncryptionCodec(ringOf(`k1:${newKey()}`));
    const payload = defaultPayloadConverter.toPayload({ name: 'attack-at-dawn', objects: 3 });
    const [encoded] = await codec.encode([payload]);
    assert.equal(text(encoded.metadata?.encoding), ENCRYPTED_ENCODING);
    assert.equal(text(encoded.metadata?.[KEY_ID_METADATA_KEY]), 'k1');
    assert.deepEqual(Object.keys(encoded.metadata ?? {}).sort(), ['encoding', KEY_ID_METADATA_KEY]);
    assert.ok(!Buffer.from(encoded.data!).includes('attack-at-dawn'));
    assert.ok(!Buffer.from(encoded.data!).includes('json/plain'), 'the inner encoding is encrypted too');
    const [decoded] = await codec.decode([encoded]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(decoded), { name: 'attack-at-dawn', objects: 3 });
    const plain = defaultPayloadConverter.toPayload('written before encryption was on');
    assert.deepEqual(await codec.decode([plain]), [plain], 'unencrypted payloads pass through');
  });

  it('a changed byte, or a ciphertext moved under another key id, fails authentication with DecryptionFailed', async () => {
    const key = newKey();
    const ring = ringOf(`k1:${key},k2:${key}`);
    const sealed = seal(ring, Buffer.from('manifest sha256 and uri'));
    for (const offset of [0, 14, sealed.data.length - 1]) {
      const tampered = Buffer.from(sealed.data);
      tampered[offset] ^= 0x01;
      assert.throws(() => open(ring, { keyId: 'k1', data: tampered }), DecryptionFailed, `byte ${offset}`);
    }
    assert.throws(
      () => open(ring, { keyId: 'k2', data: sealed.data }),
      DecryptionFailed,
      'the key id is authenticated',
    );
    assert.throws(() => open(ring, { keyId: 'k1', data: sealed.data.subarray(0, 20) }), DecryptionFailed);
    const codec = new EncryptionCodec(ring);
    const [encoded] = await codec.encode([defaultPayloadConverter.toPayload('x')]);
    encoded.data![20] ^= 0x80;
    await assert.rejects(codec.decode([encoded]), (e: unknown) => {
      assert.ok(e instanceof DecryptionFailed);
      assert.equal(e.keyId, 'k1');
      assert.match(e.message, /authentication failed/);
      return true;
    });
  });

  it('rotation: the new first key encrypts, the old key still decrypts; a key the ring lacks is named', () => {
    const oldKey = newKey();
    const before = ringOf(`2024:${oldKey}`);
    const written = seal(before, Buffer.from('old history'));
    const rotated = ringOf(`2025:${newKey()},2024:${oldKey}`);
    assert.equal(rotated.currentKeyId, '2025');
    assert.equal(seal(rotated, Buffer.from('new')).keyId, '2025');
    assert.deepEqual(open(rotated, written), Buffer.from('old history'));
    const retired = ringOf(`2025:${rotated.key('2025')!.toString('base64')}`);
    assert.throws(
      () => open(retired, written),
      (e: unknown) => e instanceof UnknownEncryptionKey && e.keyId === '2024' && /holds 2025/.test(e.message),
    );
  });

  it('a bad key ring stops the configuration with every problem at once, and never shows key bytes', () => {
    const short = randomBytes(16).toString('base64');
    const good = newKey();
    const err = configError({
      FLYWHEEL_CODEC_KEYS: `a:${short},a:${good},no-colon,b:not*base64,${good}:`,
      FLYWHEEL_CODEC_TOKEN: 'short',
    });
    assert.deepEqual(
      err.problems.map((p) => p.expected),
      [
        'a token of at least 16 characters, e.g. from `openssl rand -hex 32`',
        'key 3 to be id:base64key',
        'key 4 to be base64',
        'key 5 to be base64',
        'key "a" to be 32 bytes (it is 16); make one with `openssl rand -base64 32`',
        'key ids to be unique ("a" appears twice)',
      ],
    );
    for (const secret of [short, good, good.slice(0, 20), 'short']) assert.ok(!err.message.includes(secret), secret);
    assert.match(err.message, /FLYWHEEL_CODEC_KEYS="\*\*\*": expected key "a" to be 32 bytes/);
    assert.ok(configError({ FLYWHEEL_CODEC_KEYS: ' , ' }).problems[0].expected.startsWith('a key ring'));
  });

  it('the key ring can come from a file; both sources at once, or an unreadable file, are refused', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-keys-'));
    const file = path.join(dir, 'keys');
    fs.writeFileSync(file, `new:${newKey()}\nold:${newKey()}\n`, { mode: 0o600 });
    try {
      const ring = loadConfig({ FLYWHEEL_CODEC_KEYS_FILE: file }).codec.keyRing!;
      assert.deepEqual(ring.toJSON(), { current: 'new', keyIds: ['new', 'old'] });
      assert.doesNotMatch(JSON.stringify(ring) + inspect(ring), /[A-Za-z0-9+/]{43}=/, 'key bytes never print');
      assert.equal(loadConfig({}).codec.keyRing, undefined, 'encryption is off when nothing is set');
      assert.match(
        configError({ FLYWHEEL_CODEC_KEYS: `k:${newKey()}`, FLYWHEEL_CODEC_KEYS_FILE: file }).message,
        /FLYWHEEL_CODEC_KEYS_FILE: expected unset when FLYWHEEL_CODEC_KEYS is set/,
      );
      assert.match(
        configError({ FLYWHEEL_CODEC_KEYS_FILE: path.join(dir, 'missing') }).message,
        /FLYWHEEL_CODEC_KEYS_FILE=".*missing": expected a readable file/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('on a real Temporal server', () => {
    let workers: FlywheelWorkers;
    let running: Promise<void>;
    let client: Client;
    let config: ReturnType<typeof testConfig>;

    before(async () => {
      config = testConfig(await temporalAddress(), { FLYWHEEL_CODEC_KEYS: `current:${newKey()},previous:${newKey()}` });
      workers = await createWorkers(config);
      running = workers.run();
      client = await connectClient(config);
    });

    after(async () => {
      await workers.shutdown();
      await running;
      await client.connection.close();
    });

    it('a storage check runs encrypted: raw history holds no plaintext input or result, and names the key', async () => {
      const flywheel = new FlywheelClient(client, { taskQueuePrefix: config.worker.taskQueuePrefix });
      const name = `classified-${randomBytes(4).toString('hex')}`;
      const handle = await flywheel.startStorageCheck({ name, objects: 2, objectBytes: 4096, seed: 9091 });
      const result = await handle.result();
      assert.equal(result.verified, true, 'the codec client decodes the result');
      assert.match(result.manifest.uri, new RegExp(name));

      const raw = new Client({ connection: client.connection, namespace: config.temporal.namespace });
      const history = await raw.workflow.getHandle(handle.workflowId).fetchHistory();
      // The workflow id (which embeds the name) and search attributes are metadata Temporal never encodes.
      const serialized = Buffer.from(temporal.api.history.v1.History.encode(history).finish())
        .toString('latin1')
        .split(handle.workflowId)
        .join('');
      for (const plaintext of [name, result.manifest.uri, result.manifest.sha256, 'objectBytes', '9091', 'verified'])
        assert.ok(!serialized.includes(plaintext), `${plaintext} must not appear in the raw history`);

      const payloads = payloadsIn(history.events);
      const where = payloads.map((p) => p.at).join('\n');
      for (const field of [
        'workflowExecutionStartedEventAttributes.input',
        'memo',
        'activityTaskScheduledEventAttributes.input',
      ])
        assert.ok(where.includes(field), `${field} is among the payloads:\n${where}`);
      assert.match(where, /activityTaskCompletedEventAttributes\.result/);
      assert.match(where, /workflowExecutionCompletedEventAttributes\.result/);
      for (const { at, payload } of payloads) {
        assert.equal(text(payload.metadata?.encoding), ENCRYPTED_ENCODING, at);
        assert.equal(text(payload.metadata?.[KEY_ID_METADATA_KEY]), 'current', at);
      }
      const started = history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads!;
      const [input] = await new EncryptionCodec(config.codec.keyRing!).decode(started);
      assert.equal((defaultPayloadConverter.fromPayload(input) as { name: string }).name, name);
    });
  });

  describe('the codec server the Web UI calls', () => {
    const token = randomBytes(24).toString('hex');
    const uiOrigin = 'http://localhost:8233';
    const codec = new EncryptionCodec(ringOf(`k1:${newKey()}`));
    let server: RunningCodecServer;

    before(async () => {
      server = await startCodecServer({ codec, port: 0, uiOrigins: [uiOrigin], token });
    });
    after(() => server.close());

    const request = (method: string, route: string, headers: Record<string, string>, body?: unknown) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const req = http.request(`${server.url}${route}`, { method, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
          );
        });
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    const asJson = (p: Payload) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      data: Buffer.from(p.data!).toString('base64'),
    });
    const uiHeaders = {
      'Content-Type': 'application/json',
      'X-Namespace': 'default',
      Origin: uiOrigin,
      Authorization: `Bearer ${token}`,
    };

    it('binds to loopback by default', () => {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    });

    it('POST /decode returns the plaintext payloads, with CORS for the UI origin (also under a namespace path)', async () => {
      const encoded = await codec.encode([defaultPayloadConverter.toPayload({ name: 'attack-at-dawn' })]);
      for (const route of ['/decode', '/default/decode']) {
        const res = await request('POST', route, uiHeaders, { payloads: encoded.map(asJson) });
        assert.equal(res.status, 200, res.body);
        assert.equal(res.headers['access-control-allow-origin'], uiOrigin);
        const [payload] = JSON.parse(res.body).payloads;
        assert.equal(Buffer.from(payload.metadata.encoding, 'base64').toString(), 'json/plain');
        assert.deepEqual(JSON.parse(Buffer.from(payload.data, 'base64').toString()), { name: 'attack-at-dawn' });
      }
      const plain = asJson(defaultPayloadConverter.toPayload('from the start workflow form'));
      const encodedRes = await request('POST', '/encode', uiHeaders, { payloads: [plain] });
      const [sealed] = JSON.parse(encodedRes.body).payloads;
      assert.equal(Buffer.from(sealed.metadata[KEY_ID_METADATA_KEY], 'base64').toString(), 'k1');
      const back = await request('POST', '/decode', uiHeaders, { payloads: [sealed] });
      assert.deepEqual(JSON.parse(back.body).payloads, [plain]);
    });

    it('answers the preflight for the UI origin with the headers the UI sends, and refuses other origins', async () => {
      const preflight = {
        Origin: uiOrigin,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,x-namespace,authorization',
      };
      const res = await request('OPTIONS', '/decode', preflight);
      assert.equal(res.status, 204);
      assert.equal(res.headers['access-control-allow-origin'], uiOrigin);
      assert.equal(res.headers['access-control-allow-credentials'], 'true');
      assert.match(res.headers['access-control-allow-methods']!, /POST/);
      const allowed = res.headers['access-control-allow-headers']!.toLowerCase();
      for (const header of ['content-type', 'x-namespace', 'authorization']) assert.match(allowed, new RegExp(header));
      const foreign = await request('OPTIONS', '/decode', { ...preflight, Origin: 'http://evil.example' });
      assert.equal(foreign.status, 403);
      assert.equal(foreign.headers['access-control-allow-origin'], undefined);
    });

    it('401 without the bearer token or with a wrong one; 400 for a tampered payload', async () => {
      const [encoded] = await codec.encode([defaultPayloadConverter.toPayload('secret')]);
      const body = { payloads: [asJson(encoded)] };
      const noAuth: Record<string, string> = { ...uiHeaders };
      delete noAuth.Authorization;
      const missing = await request('POST', '/decode', noAuth, body);
      assert.equal(missing.status, 401);
      assert.match(missing.headers['www-authenticate']!, /^Bearer/);
      assert.ok(!missing.body.includes('secret'));
      const wrong = await request('POST', '/decode', { ...uiHeaders, Authorization: `Bearer ${token}x` }, body);
      assert.equal(wrong.status, 401);
      encoded.data![15] ^= 0xff;
      const tampered = await request('POST', '/decode', uiHeaders, { payloads: [asJson(encoded)] });
      assert.equal(tampered.status, 400);
      assert.match(JSON.parse(tampered.body).error, /authentication failed/);
      assert.equal((await request('POST', '/decode', uiHeaders, 'not json')).status, 400);
    });
  });
});
