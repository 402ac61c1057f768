import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  SourceForbidden,
  SourceSpec,
  hostAllowed,
  internalAddressKind,
  planSource,
  readUnit,
  sampleCorpus,
  type CollectContext,
  type CollectEvent,
  type SourceSpecInput,
} from '../lib/collect';
import { fetchWithinReach, type ResolveAll } from '../lib/collect/sources/reach-fetch';
import { ConfigError, WorkerReachUnset, checkWorkerReach, confineLocalReach, loadConfig } from '../lib/config';
import type { DatasetSummary } from '../lib/contracts/pipeline-results';
import { S3Store, createS3Client } from '../lib/storage';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';
import { temporalAddress, testConfig } from './support/temporal';

const chapters = sampleCorpus('moby-dick')
  .documents.slice(40, 43)
  .map((d) => d.text);
/** A line of this machine's /etc/passwd: it must never show up anywhere. */
const PASSWD_LINE = fs.existsSync('/etc/passwd') ? fs.readFileSync('/etc/passwd', 'utf8').split('\n')[0] : undefined;

/** Requests per path on the test HTTP server. */
const hits = new Map<string, number>();
let http: Server;
let port: number;

function startHttp(): Promise<void> {
  http = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1);
    const redirect = (to: string) => {
      res.writeHead(302, { location: to });
      res.end();
    };
    switch (url.pathname) {
      case '/chapter.txt':
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(chapters[2]);
        return;
      case '/to-allowed': // relative, so it stays on the allowed host
        return redirect('/chapter.txt');
      case '/to-outside':
        return redirect(`http://localhost:${port}/chapter.txt`);
      case '/to-metadata':
        return redirect('http://169.254.169.254/latest/meta-data/');
      case '/to-private':
        return redirect('http://10.1.2.3/internal/report.txt');
      case '/to-file':
        return redirect('file:///etc/passwd');
      case '/100%-bad%ZZ.txt': // not valid percent-encoding
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('a name that does not decode');
        return;
      default:
        res.writeHead(404);
        res.end();
    }
  });
  return new Promise((resolve) =>
    http.listen(0, '127.0.0.1', () => {
      port = (http.address() as AddressInfo).port;
      resolve();
    }),
  );
}

before(startHttp);
after(() => new Promise((resolve) => http.close(resolve)));

describe('collection reach, for specs started as the UI starts them', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-reach-'));
  const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const buckets = { allowed: `reach-ok-${suffix}`, other: `reach-other-${suffix}`, warm: `reach-warm-${suffix}` };
  let s3: TestS3Server;
  let s3Client: S3Client;
  let connection: Connection;
  let client: Client;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let taskQueue: string;
  /** A second worker whose hosts list is `*` (any public host) and the test server by name. */
  let openWorkers: FlywheelWorkers;
  let openRunning: Promise<void>;
  let openQueue: string;

  before(async () => {
    fs.writeFileSync(path.join(root, 'chapter.txt'), chapters[0]);
    fs.symlinkSync('/etc/passwd', path.join(root, 'passwd-link.txt'));
    s3 = await startS3Server();
    s3Client = createS3Client(s3ClientOptions(s3));
    for (const bucket of Object.values(buckets)) await new S3Store({ bucket, client: s3Client }).ensureBucket();
    await new S3Store({ bucket: buckets.allowed, client: s3Client }).put('corpus/chapter.txt', chapters[1]);
    await new S3Store({ bucket: buckets.other, client: s3Client }).put('private/notes.txt', 'not for collection');

    const address = await temporalAddress();
    const config = testConfig(address, {
      FLYWHEEL_COLLECT_ROOTS: root,
      FLYWHEEL_COLLECT_BUCKETS: buckets.allowed,
      FLYWHEEL_COLLECT_HOSTS: `127.0.0.1:${port}`,
      FLYWHEEL_WARM: `s3://${buckets.warm}/warm`,
      FLYWHEEL_S3_ENDPOINT: s3.endpoint,
      FLYWHEEL_S3_CHECKSUMS: s3.checksums,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      FLYWHEEL_S3_MAX_ATTEMPTS: '2',
    });
    taskQueue = `${config.worker.taskQueuePrefix}-io`;
    workers = await createWorkers(config);
    running = workers.run();
    const open = testConfig(address, {
      FLYWHEEL_COLLECT_ROOTS: root,
      FLYWHEEL_COLLECT_HOSTS: `127.0.0.1:${port},*`,
      FLYWHEEL_TASK_QUEUES: 'io',
    });
    openQueue = `${open.worker.taskQueuePrefix}-io`;
    openWorkers = await createWorkers(open);
    openRunning = openWorkers.run();
    connection = await Connection.connect({ address });
    client = new Client({ connection });
  });

  after(async () => {
    await workers?.shutdown();
    await running;
    await openWorkers?.shutdown();
    await openRunning;
    await connection?.close();
    s3Client?.destroy();
    await s3?.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  let runs = 0;
  /** Starts the pipeline with a raw JSON argument, as the Temporal UI's Start Workflow form does. */
  function startFromUi(sources: unknown[], queue = taskQueue): Promise<WorkflowHandle> {
    return client.workflow.start('dataPipeline', {
      args: [{ dataset: `reach-${++runs}`, sources }],
      taskQueue: queue,
      workflowId: `reach-${suffix}-${runs}`,
    });
  }

  /** The run's failure: its type, whether it may be retried, and the activity attempts it took. */
  async function failureOf(handle: WorkflowHandle): Promise<{ failure: ApplicationFailure; history: string }> {
    const err = await handle.result().then(
      () => assert.fail('the run must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    const failure = err.cause?.cause instanceof ApplicationFailure ? err.cause.cause : err.cause;
    assert.ok(failure instanceof ApplicationFailure, String(failure));
    const history = JSON.stringify(await handle.fetchHistory());
    return { failure, history };
  }

  async function assertRefused(sources: unknown[], detail: RegExp, queue = taskQueue): Promise<void> {
    const { failure, history } = await failureOf(await startFromUi(sources, queue));
    assert.equal(failure.type, 'SourceForbidden', failure.message);
    assert.equal(failure.nonRetryable, true);
    assert.match(failure.message, detail);
    assert.match(failure.message, /FLYWHEEL_COLLECT_(ROOTS|BUCKETS|HOSTS)/, 'the refusal names the variable');
    assert.doesNotMatch(history, /"attempt":[2-9]/, 'refused once, never retried');
    if (PASSWD_LINE) assert.ok(!history.includes(PASSWD_LINE), 'nothing of /etc/passwd reaches the history');
  }

  it('refuses a path outside FLYWHEEL_COLLECT_ROOTS (/etc/passwd) at once, without retries', async () => {
    await assertRefused([{ type: 'path', path: '/etc/passwd' }], /outside the allowed roots/);
    await assertRefused([{ type: 'path', path: `${root}/../../etc/passwd` }], /outside the allowed roots/);
  });

  it('refuses a symbolic link inside a root that points outside it', async () => {
    await assertRefused([{ type: 'path', path: path.join(root, 'passwd-link.txt') }], /symbolic link/);
  });

  it('refuses a glob that climbs out of the root as an invalid spec', async () => {
    const { failure } = await failureOf(await startFromUi([{ type: 'path', path: root, glob: '../../etc/*' }]));
    assert.equal(failure.type, 'InvalidSpec');
    assert.match(failure.message, /sources\.0\.glob/);
  });

  it('refuses an S3 bucket outside FLYWHEEL_COLLECT_BUCKETS, even one the credentials can read', async () => {
    await assertRefused([{ type: 's3', uri: `s3://${buckets.other}/private` }], /not among the allowed buckets/);
    // The worker's own warm tier is not a source either unless listed.
    await assertRefused([{ type: 's3', uri: `s3://${buckets.warm}/warm` }], /not among the allowed buckets/);
  });

  it('refuses a URL outside FLYWHEEL_COLLECT_HOSTS before sending any request', async () => {
    const fetched = hits.get('/chapter.txt') ?? 0;
    await assertRefused([{ type: 'url', url: `http://localhost:${port}/chapter.txt` }], /not among the allowed hosts/);
    await assertRefused([{ type: 'url', url: 'http://169.254.169.254/latest/meta-data/' }], /allowed hosts/);
    await assertRefused([{ type: 'url', url: `http://127.0.0.1:${port + 1}/x` }], /allowed hosts/);
    assert.equal(hits.get('/chapter.txt') ?? 0, fetched);
  });

  it('refuses redirects to hosts outside the list, or to anything but http(s), without following them', async () => {
    const fetched = hits.get('/chapter.txt') ?? 0;
    const base = `http://127.0.0.1:${port}`;
    await assertRefused([{ type: 'url', url: `${base}/to-outside` }], /redirects to http:\/\/localhost/);
    await assertRefused([{ type: 'url', url: `${base}/to-metadata` }], /redirects to http:\/\/169\.254\.169\.254/);
    await assertRefused([{ type: 'url', url: `${base}/to-file` }], /file: URL/);
    assert.equal(hits.get('/chapter.txt') ?? 0, fetched, 'the redirect targets were never fetched');
  });

  it('refuses URLs to loopback and link-local addresses, by address or by a name resolving there', async () => {
    const fetched = hits.get('/chapter.txt') ?? 0;
    const open = (url: string, detail: RegExp) => assertRefused([{ type: 'url', url }], detail, openQueue);
    await open(
      'http://127.0.0.1/latest',
      /host 127\.0\.0\.1 is a loopback address; list the host by name in FLYWHEEL_COLLECT_HOSTS/,
    );
    await open('http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is a link-local address/);
    await open('http://[::ffff:169.254.169.254]/latest/meta-data/', /is a link-local address/);
    await open('http://10.0.0.8:9000/bucket/key', /10\.0\.0\.8 is a private address/);
    // `*` lets the name through; the address DNS answers is checked as the connection is made.
    await open(
      `http://localhost:${port}/chapter.txt`,
      /host localhost resolves to (127\.0\.0\.1|::1), a loopback address/,
    );
    assert.equal(hits.get('/chapter.txt') ?? 0, fetched, 'nothing was fetched');
  });

  it('refuses redirects to private, link-local or loopback addresses from a host listed by name', async () => {
    const fetched = hits.get('/chapter.txt') ?? 0;
    const base = `http://127.0.0.1:${port}`;
    const open = (path: string, detail: RegExp) =>
      assertRefused([{ type: 'url', url: `${base}${path}` }], detail, openQueue);
    await open(
      '/to-private',
      /redirects to http:\/\/10\.1\.2\.3\/internal\/report\.txt, whose host 10\.1\.2\.3 is a private/,
    );
    await open('/to-metadata', /redirects to http:\/\/169\.254\.169\.254.* is a link-local address/);
    await open('/to-outside', /redirects to http:\/\/localhost:\d+\/chapter\.txt, whose host localhost resolves to/);
    assert.equal(hits.get('/chapter.txt') ?? 0, fetched, 'the redirect targets were never fetched');
  });

  it('collects from every allowed root, bucket and host, redirects within the list included', async () => {
    const handle = await startFromUi([
      { type: 'path', path: root, glob: '*.txt' },
      { type: 's3', uri: `s3://${buckets.allowed}/corpus` },
      { type: 'url', url: `http://127.0.0.1:${port}/to-allowed` },
    ]);
    const summary = (await handle.result()) as DatasetSummary;
    // The link to /etc/passwd beside chapter.txt is not listed: folder listings skip symbolic links.
    assert.equal(summary.stages.collect?.kept, 3, JSON.stringify(summary.stages.collect));
  });
});

describe('allow-lists in the collect library', () => {
  const ctx: CollectContext = { now: () => new Date('2025-01-01T00:00:00Z') };
  let base: string;
  before(() => {
    base = `http://127.0.0.1:${port}`;
  });

  async function collect(input: SourceSpecInput, context: CollectContext): Promise<CollectEvent[]> {
    const events: CollectEvent[] = [];
    for (const unit of await planSource(SourceSpec.parse(input), context)) {
      for await (const event of readUnit(unit, context)) events.push(event);
    }
    return events;
  }

  it('without lists (local development) loopback is still refused unless its hosts are listed by name', async () => {
    await assert.rejects(
      collect({ type: 'url', url: `${base}/to-outside` }, ctx),
      (e: unknown) => e instanceof SourceForbidden && /127\.0\.0\.1 is a loopback address/.test(e.message),
    );
    const events = await collect(
      { type: 'url', url: `${base}/to-outside` },
      { ...ctx, allowedHosts: ['127.0.0.1', 'localhost'] },
    );
    assert.deepEqual(
      events.map((e) => e.kind),
      ['document'],
    );
  });

  it('checks every address a name resolves to when it connects, whatever the lookup answers', async () => {
    // A host on a public-looking name whose DNS answer is loopback: the connection itself is refused.
    const toLoopback: ResolveAll = (_host, _options, callback) => callback(null, [{ address: '127.0.0.1', family: 4 }]);
    const fetchLocal = fetchWithinReach(['*'], 'http://rebinding.example/x', toLoopback);
    const fetched = hits.get('/chapter.txt') ?? 0;
    await assert.rejects(
      fetchLocal(`http://rebinding.example:${port}/chapter.txt`),
      (e: unknown) => e instanceof SourceForbidden && /rebinding\.example resolves to 127\.0\.0\.1/.test(e.message),
    );
    assert.equal(hits.get('/chapter.txt') ?? 0, fetched);
  });

  it('classifies internal addresses, IPv4-mapped IPv6 included', () => {
    const internal = {
      '127.0.0.1': 'a loopback',
      '0.0.0.0': 'an unspecified (this host)',
      '169.254.169.254': 'a link-local',
      '10.1.2.3': 'a private',
      '172.31.255.1': 'a private',
      '192.168.1.1': 'a private',
      '100.100.100.200': 'a shared (carrier-grade NAT)',
      '::1': 'a loopback',
      '::': 'an unspecified (this host)',
      'fe80::1': 'a link-local',
      'fd00:ec2::254': 'a private (unique local)',
      '::ffff:127.0.0.1': 'a loopback',
      '::ffff:a9fe:a9fe': 'a link-local',
    };
    for (const [address, kind] of Object.entries(internal)) assert.equal(internalAddressKind(address), kind, address);
    for (const address of ['8.8.8.8', '172.32.0.1', '93.184.216.34', '2606:4700:4700::1111', '::ffff:8.8.8.8'])
      assert.equal(internalAddressKind(address), undefined, address);
  });

  it('a refused redirect under onSourceError: skip becomes a forbidden quarantine record', async () => {
    const events = await collect(
      { type: 'url', url: `${base}/to-outside`, onSourceError: 'skip' },
      { ...ctx, allowedHosts: [`127.0.0.1:${port}`] },
    );
    assert.deepEqual(
      events.map((e) => (e.kind === 'quarantine' ? e.record.reason : 'document')),
      ['forbidden'],
    );
  });

  it('reads a URL whose name is not valid percent-encoding instead of failing on it', async () => {
    const events = await collect(
      { type: 'url', url: `${base}/100%-bad%ZZ.txt` },
      { ...ctx, allowedHosts: ['127.0.0.1'] },
    );
    assert.deepEqual(
      events.map((e) => (e.kind === 'document' ? e.doc.text : e.record.reason)),
      ['a name that does not decode'],
    );
  });

  it('plans refuse a bucket outside the list before using the S3 client', async () => {
    await assert.rejects(
      planSource(SourceSpec.parse({ type: 's3', uri: 's3://elsewhere/x' }), { ...ctx, allowedBuckets: ['mine'] }),
      (e: unknown) => e instanceof SourceForbidden && /bucket elsewhere is not among/.test(e.message),
    );
  });

  it('matches hosts by name, port and subdomain wildcard, case-insensitively', () => {
    const allowed = ['data.example.org', 'api.example.org:8443', '*.cdn.example.net', '[::1]:9000', '127.0.0.1:80'];
    const yes = [
      'https://data.example.org/a',
      'http://DATA.example.org:8080/a',
      'https://api.example.org:8443/x',
      'https://a.b.cdn.example.net/x',
      'http://[::1]:9000/x',
      'http://127.0.0.1/x',
    ];
    const no = [
      'https://api.example.org/x',
      'https://cdn.example.net/x',
      'https://data.example.org.evil.com/x',
      'https://evil.com/data.example.org',
      'http://[::1]/x',
      'http://127.0.0.1:8080/x',
      'https://127.0.0.1/x',
    ];
    for (const url of yes) assert.ok(hostAllowed(new URL(url), allowed), url);
    for (const url of no) assert.ok(!hostAllowed(new URL(url), allowed), url);
    assert.ok(hostAllowed(new URL('https://anything.example/x'), undefined), 'no list: unrestricted');
    assert.ok(hostAllowed(new URL('https://anything.example/x'), ['*']), '`*`: any host');
    assert.ok(!hostAllowed(new URL('https://anything.example/x'), []), 'none: no host');
  });

  it('reads FLYWHEEL_COLLECT_BUCKETS and FLYWHEEL_COLLECT_HOSTS, refusing malformed entries', () => {
    const config = loadConfig({
      FLYWHEEL_COLLECT_BUCKETS: 'corpus-a, corpus-b',
      FLYWHEEL_COLLECT_HOSTS: 'data.example.org,*.cdn.example.net, 10.0.0.5:9000',
    });
    assert.deepEqual(config.worker.collectBuckets, ['corpus-a', 'corpus-b']);
    assert.deepEqual(config.worker.collectHosts, ['data.example.org', '*.cdn.example.net', '10.0.0.5:9000']);
    const defaults = loadConfig({});
    assert.equal(defaults.worker.collectBuckets, undefined, 'unset: any bucket');
    assert.equal(defaults.worker.collectHosts, undefined, 'unset: any host');
    const none = loadConfig({ FLYWHEEL_COLLECT_BUCKETS: 'none', FLYWHEEL_COLLECT_HOSTS: 'none' });
    assert.deepEqual(none.worker.collectBuckets, [], 'none: no s3 sources');
    assert.deepEqual(none.worker.collectHosts, [], 'none: no url sources');
    for (const [variable, value] of [
      ['FLYWHEEL_COLLECT_BUCKETS', 'Bad_Bucket'],
      ['FLYWHEEL_COLLECT_BUCKETS', 'none,corpus-a'],
      ['FLYWHEEL_COLLECT_HOSTS', 'http://example.org/'],
      ['FLYWHEEL_COLLECT_HOSTS', 'user@example.org'],
      ['FLYWHEEL_COLLECT_HOSTS', 'example.org:99999'],
      ['FLYWHEEL_COLLECT_HOSTS', ','],
    ]) {
      assert.throws(
        () => loadConfig({ [variable]: value }),
        (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.variable === variable),
        `${variable}=${value}`,
      );
    }
  });
});

describe('reach settings of the worker processes', () => {
  const cli = path.join(__dirname, '..', 'bin', 'flywheel.js');
  /** This process's environment without any Flywheel or Temporal variable, as a fresh machine has it. */
  const bare = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('FLYWHEEL_') && !k.startsWith('TEMPORAL_')),
  );

  it('`flywheel worker` with no reach list set exits 2, naming the variables, before connecting', () => {
    const run = spawnSync(process.execPath, [cli, 'worker'], {
      env: { ...bare, TEMPORAL_ADDRESS: '127.0.0.1:1', FLYWHEEL_METRICS_PORT: '0' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 2, run.stderr);
    for (const variable of [
      'FLYWHEEL_COLLECT_ROOTS',
      'FLYWHEEL_COLLECT_BUCKETS',
      'FLYWHEEL_COLLECT_HOSTS',
      'FLYWHEEL_REACH_UNRESTRICTED=1',
    ])
      assert.ok(run.stderr.includes(variable), `the message names ${variable}:\n${run.stderr}`);
    assert.doesNotMatch(run.stdout, /worker on/);
  });

  it('starts with any one list set, or with FLYWHEEL_REACH_UNRESTRICTED=1 said on purpose', () => {
    assert.throws(() => checkWorkerReach(loadConfig({})), WorkerReachUnset);
    assert.throws(() => checkWorkerReach(loadConfig({ FLYWHEEL_REACH_UNRESTRICTED: '0' })), WorkerReachUnset);
    for (const env of [
      { FLYWHEEL_COLLECT_ROOTS: '/data' },
      { FLYWHEEL_COLLECT_BUCKETS: 'none' },
      { FLYWHEEL_COLLECT_HOSTS: 'none' },
      { FLYWHEEL_REACH_UNRESTRICTED: '1' },
    ])
      assert.doesNotThrow(() => checkWorkerReach(loadConfig(env)), JSON.stringify(env));
    assert.equal(new WorkerReachUnset().exitCode, 2);
  });

  it('`flywheel start` and `dev` confine path sources to the working directory unless told otherwise', () => {
    const local = confineLocalReach(loadConfig({}, '/srv/app'), '/srv/app');
    assert.deepEqual(local.config.worker.collectRoots, ['/srv/app']);
    assert.match(
      local.notice ?? '',
      /Path sources read only under \/srv\/app.*FLYWHEEL_COLLECT_ROOTS.*FLYWHEEL_REACH_UNRESTRICTED/,
    );
    const chosen = confineLocalReach(loadConfig({ FLYWHEEL_COLLECT_ROOTS: '/corpus' }, '/srv/app'), '/srv/app');
    assert.deepEqual(chosen.config.worker.collectRoots, ['/corpus']);
    assert.equal(chosen.notice, undefined);
    const open = confineLocalReach(loadConfig({ FLYWHEEL_REACH_UNRESTRICTED: 'true' }, '/srv/app'), '/srv/app');
    assert.equal(open.config.worker.collectRoots, undefined);
    assert.equal(open.notice, undefined);
  });
});
