import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { parse } from 'yaml';
import { createActivities } from '../activities';
import { FlywheelClient } from '../client/flywheel-client';
import { loadConfig } from '../lib/config';
import { tieredStoreFromConfig } from '../lib/storage';
import { freePort } from '../temporal/dev-server';
import * as workflows from '../workflows';
import { readPromql, type LabelMatcher } from './support/promql';
import { temporalAddress } from './support/temporal';
import { startWorker, type WorkerProcess } from './support/worker-process';

const root = path.join(__dirname, '..');
const grafanaDir = path.join(root, 'deploy', 'grafana');

interface ComposeService {
  image?: string;
  command?: string[] | string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
}
const compose = parse(fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};

interface ScrapeConfig {
  job_name: string;
  dns_sd_configs?: { names: string[]; type?: string; port: number }[];
  static_configs?: { targets: string[] }[];
  relabel_configs?: { target_label?: string }[];
}
const prometheusFile = path.join(root, 'deploy', 'prometheus', 'prometheus.yml');
const prometheus = parse(fs.readFileSync(prometheusFile, 'utf8')) as { scrape_configs: ScrapeConfig[] };

interface Panel {
  title: string;
  type: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating?: { list: { query?: unknown }[] };
}
const dashboardFiles = fs.readdirSync(path.join(grafanaDir, 'dashboards')).filter((f) => f.endsWith('.json'));
const dashboards = dashboardFiles.map((file) => ({
  file,
  board: JSON.parse(fs.readFileSync(path.join(grafanaDir, 'dashboards', file), 'utf8')) as Dashboard,
}));

/** Every query of every dashboard, where it is, as Grafana would send it to Prometheus. */
const queries = dashboards.flatMap(({ file, board }) => {
  const panels = board.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  return panels.flatMap((panel) =>
    (panel.targets ?? []).map((t) => ({ where: `${file}: "${panel.title}"`, expr: t.expr, panel })),
  );
});

/** Grafana's interval variables, replaced by durations so Prometheus' own parser can read a query. */
function withGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m');
}

const workerServices = Object.entries(compose.services).filter(([, s]) => [s.command].flat()[0] === 'worker');
const composeEnv = { GRAFANA_ADMIN_PASSWORD: 'x', FLYWHEEL_S3_SECRET_KEY: 'x', FLYWHEEL_CODEC_KEYS: '' };

/** The service's environment as compose hands it over (`${VAR:?...}` and `${VAR:-default}` filled in). */
function environmentOf(service: ComposeService): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([k, v]) => [
      k,
      String(v).replace(
        /\$\{([A-Z0-9_]+)(?::[-?]([^}]*))?\}/g,
        (_, name: string, fallback?: string) => composeEnv[name as keyof typeof composeEnv] ?? fallback ?? '',
      ),
    ]),
  );
}

/** A bind mount's container path for a folder of the repo (`./deploy/x:/etc/x:ro`). */
function mountOf(service: ComposeService, repoPath: string): string | undefined {
  for (const volume of service.volumes ?? []) {
    const [source, target] = volume.split(':');
    if (path.resolve(root, source) === path.resolve(root, repoPath)) return target;
  }
  return undefined;
}

/** Labels Prometheus adds to every series of a target: job, instance, and what relabelling sets. */
const targetLabels = new Set([
  'job',
  'instance',
  ...prometheus.scrape_configs.flatMap((c) => (c.relabel_configs ?? []).flatMap((r) => r.target_label ?? [])),
]);
/** Series Prometheus records for each scrape itself, not read from the target. */
const SCRAPE_SERIES = new Set(['up']);

/** The Prometheus text exposition: for each series name (histograms as `_bucket`, `_sum`, `_count`), its series. */
function readExposition(text: string): Map<string, Record<string, string>[]> {
  const series = new Map<string, Record<string, string>[]>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s/.exec(line);
    assert.ok(m, `cannot read the exposition line ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    series.set(m[1], [...(series.get(m[1]) ?? []), labels]);
  }
  return series;
}

/** Whether a matcher selects a value the worker reports for its label on any series (target labels: always). */
function selectsReportedValue(matcher: LabelMatcher, scrape: Map<string, Record<string, string>[]>): boolean {
  const { label, op, value } = matcher;
  if (targetLabels.has(label) || op === '!=' || op === '!~') return true;
  const re = new RegExp(`^(?:${op === '=' ? value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : value})$`);
  for (const series of scrape.values())
    if (series.some((labels) => label in labels && re.test(labels[label]))) return true;
  return false;
}

/**
 * Whether a command is on PATH (promtool and prometheus come with Debian's `prometheus` package). In CI
 * (`FLYWHEEL_REQUIRE_PROMETHEUS=1`, set by .ci/run after installing it) a missing one fails instead of skipping.
 */
function installed(command: string): boolean {
  if (spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0) return true;
  if (process.env.FLYWHEEL_REQUIRE_PROMETHEUS === '1') throw new Error(`${command} is not installed`);
  return false;
}

describe('dashboards in the stack', () => {
  it('reads the metric names, matchers and grouping labels of a PromQL query, not its functions and keywords', () => {
    const read = readPromql(
      'histogram_quantile(0.95, sum by (le, stage) (rate(flywheel_stage_seconds_bucket{stage=~"a|b"}[$__rate_interval])))' +
        ' / on (stage) group_left max without (instance) (up) or vector(0) and sum(x offset 1h)',
    );
    assert.deepEqual(read.selectors, [
      { metric: 'flywheel_stage_seconds_bucket', matchers: [{ label: 'stage', op: '=~', value: 'a|b' }] },
      { metric: 'up', matchers: [] },
      { metric: 'x', matchers: [] },
    ]);
    assert.deepEqual(read.groupingLabels, ['le', 'stage', 'stage', 'instance']);
    assert.deepEqual(readPromql('{__name__="y", job="w"}').selectors, [
      { metric: 'y', matchers: [{ label: 'job', op: '=', value: 'w' }] },
    ]);
    assert.throws(() => readPromql('rate(x{stage="a"[5m])'), /cannot read the label matchers/);
  });

  it('the stack runs Prometheus, Grafana and Jaeger, and the workers send their traces to Jaeger', () => {
    const images = Object.values(compose.services).map((s) => s.image ?? '');
    for (const image of ['prom/prometheus:', 'grafana/grafana:', 'jaegertracing/jaeger:'])
      assert.ok(
        images.some((i) => i.startsWith(image)),
        `the stack runs ${image}`,
      );
    assert.ok(
      (compose.services.jaeger.ports ?? []).some((p) => p.endsWith(':4318')),
      'OTLP/HTTP reaches Jaeger from this machine',
    );
    assert.match([compose.services.jaeger.command].flat().join(' '), /otlp\.protocols\.http\.endpoint=0\.0\.0\.0:4318/);
    for (const [name, service] of workerServices) {
      const config = loadConfig(environmentOf(service), '/app');
      assert.equal(config.tracing.tracesUrl, 'http://jaeger:4318/v1/traces', `service ${name} sends its spans`);
    }
  });

  it('Prometheus scrapes every worker service on the port its workers serve metrics on', () => {
    const service = compose.services.prometheus;
    const configPath = [service.command]
      .flat()
      .find((a) => a?.startsWith('--config.file='))
      ?.split('=')[1];
    assert.equal(mountOf(service, 'deploy/prometheus/prometheus.yml'), configPath, 'it reads the config in the repo');
    const jobs = prometheus.scrape_configs;
    assert.ok(workerServices.length >= 2);
    for (const [name, worker] of workerServices) {
      const port = loadConfig(environmentOf(worker), '/app').worker.metricsPort;
      assert.ok(port > 0, `service ${name} serves metrics`);
      // Docker's DNS answers a service's name with every replica's address: `--scale worker=N` is scraped whole.
      const byDns = jobs.flatMap((j) => j.dns_sd_configs ?? []).filter((d) => d.names.includes(name));
      const byTarget = jobs.flatMap((j) => j.static_configs ?? []).flatMap((s) => s.targets);
      assert.ok(
        byDns.some((d) => d.port === port && (d.type ?? 'SRV') === 'A') || byTarget.includes(`${name}:${port}`),
        `Prometheus scrapes service ${name} on port ${port}`,
      );
    }
  });

  it('promtool accepts the Prometheus config', (t) => {
    if (!installed('promtool')) return t.skip('promtool is not installed (Debian: apt-get install prometheus)');
    const run = spawnSync('promtool', ['check', 'config', prometheusFile], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });

  it('Grafana provisions the Prometheus and Jaeger datasources and the dashboards folder', () => {
    const grafana = compose.services.grafana;
    const provisioning = mountOf(grafana, 'deploy/grafana/provisioning');
    assert.equal(provisioning, '/etc/grafana/provisioning', 'the provisioning folder is where Grafana reads it');
    const dashboardsPath = mountOf(grafana, 'deploy/grafana/dashboards');
    assert.ok(dashboardsPath, 'the dashboards folder is mounted');

    const dir = path.join(grafanaDir, 'provisioning');
    const providers = fs
      .readdirSync(path.join(dir, 'dashboards'))
      .flatMap(
        (f) => (parse(fs.readFileSync(path.join(dir, 'dashboards', f), 'utf8')) as { providers: unknown[] }).providers,
      )
      .map((p) => p as { type: string; options: { path: string } });
    assert.deepEqual(
      providers.map((p) => [p.type, p.options.path]),
      [['file', dashboardsPath]],
      'one file provider reads the mounted dashboards folder',
    );

    const datasources = fs
      .readdirSync(path.join(dir, 'datasources'))
      .flatMap(
        (f) =>
          (parse(fs.readFileSync(path.join(dir, 'datasources', f), 'utf8')) as { datasources: unknown[] }).datasources,
      )
      .map((d) => d as { uid: string; type: string; url: string });
    const prometheusPort = (compose.services.prometheus.ports ?? [])[0].split(':').at(-1);
    const jaegerUi = (compose.services.jaeger.ports ?? [])
      .find((p) => p.endsWith(':16686'))
      ?.split(':')
      .at(-1);
    assert.deepEqual(
      datasources.map((d) => [d.type, d.url]),
      [
        ['prometheus', `http://prometheus:${prometheusPort}`],
        ['jaeger', `http://jaeger:${jaegerUi}`],
      ],
    );

    assert.ok(dashboards.length >= 4);
    assert.equal(new Set(dashboards.map((d) => d.board.uid)).size, dashboards.length, 'dashboard uids are unique');
    const uids = new Set(datasources.map((d) => d.uid));
    for (const { where, panel } of queries) {
      assert.ok(panel.datasource && uids.has(panel.datasource.uid), `${where} uses a provisioned datasource`);
    }
    const home = environmentOf(grafana).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    if (home)
      assert.ok(dashboardFiles.includes(path.posix.relative(dashboardsPath, home)), 'the home dashboard exists');
  });

  it('every dashboard query is PromQL that Prometheus parses', (t) => {
    assert.ok(queries.length > 0);
    for (const { board } of dashboards) assert.deepEqual(board.templating?.list ?? [], [], 'no template queries');
    if (!installed('promtool')) return t.skip('promtool is not installed (Debian: apt-get install prometheus)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-promql-'));
    try {
      // promtool parses rule files: each query as a recording rule.
      const rules = queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: withGrafanaVariables(q.expr) }));
      const file = path.join(dir, 'queries.yml');
      fs.writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboards', rules }] }));
      const run = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stdout + run.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('queries name real jobs, workflows and activities', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-dashboards-'));
    const activities = createActivities({ store: tieredStoreFromConfig(loadConfig({ FLYWHEEL_HOME: home })) });
    fs.rmSync(home, { recursive: true, force: true });
    const known: Record<string, Set<string>> = {
      job: new Set(prometheus.scrape_configs.map((c) => c.job_name)),
      workflow_type: new Set(Object.keys(workflows)),
      activity_type: new Set(Object.keys(activities)),
    };
    for (const { where, expr } of queries) {
      for (const { matchers } of readPromql(expr).selectors) {
        for (const { label, value } of matchers) {
          if (!known[label]) continue;
          for (const name of value.split('|'))
            assert.ok(known[label].has(name), `${where}: ${label} ${name} is not one Flywheel has`);
        }
      }
    }
  });

  describe('against a running worker', () => {
    let worker: WorkerProcess;
    let connection: Connection;
    let scrape: Map<string, Record<string, string>[]>;
    let metricsPort: number;
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-dashboards-'));

    before(async () => {
      const address = await temporalAddress();
      metricsPort = await freePort();
      const prefix = `flywheel-dash-${process.pid}`;
      worker = startWorker({
        TEMPORAL_ADDRESS: address,
        FLYWHEEL_HOME: home,
        FLYWHEEL_TASK_QUEUE_PREFIX: prefix,
        FLYWHEEL_METRICS_PORT: String(metricsPort),
      });
      await worker.ready;
      connection = await Connection.connect({ address });
      const flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: prefix });

      // What each dashboard watches, once each: a pipeline, a training run, a flywheel round and a storage lifecycle
      // run (what the schedules start), feedback, and a pipeline whose source is missing (failed activity and run).
      const data = await flywheel.runPipeline({
        dataset: 'dash',
        sources: [{ type: 'sample', limit: 20 }],
        dedup: { exact: true, near: {} },
        shards: { targetBytes: 1 << 20, validationFraction: 0.1 },
      });
      await flywheel.runTraining({
        run: 'dash',
        model: 'dash',
        dataset: data.manifest.uri,
        trainer: {
          seed: 1,
          model: { contextTokens: 3, embeddingDim: 8, hiddenDim: 16, maxVocab: 512 },
          sequenceTokens: 16,
          batch: { microBatchSizePerGpu: 4, gradientAccumulationSteps: 1 },
        },
        steps: 4,
        segmentSteps: 4,
        checkpointEvery: 2,
      });
      const round = await flywheel.runFlywheel({ model: 'dash' }, { at: new Date('2026-11-26T02:00:00Z') });
      assert.equal(round.decision, 'no-data');
      await (await flywheel.startStorageLifecycle({ policy: { intermediates: { deleteAfterDays: 30 } } })).result();
      const events = Array.from({ length: 5 }, (_, n) => ({
        id: `dash-${n}`,
        ts: `2094-04-04T0${n}:15:00.000Z`,
        modelVersion: 'dash@v1',
        prompt: `question ${n}`,
        response: `answer ${n}`,
        rating: { thumbs: 'up' },
        user: createHash('sha256').update(`user-${n}`).digest('hex'),
      }));
      const receipt = await flywheel.submitFeedback(events, { ledger: { flushIntervalMs: 200 } });
      await flywheel.waitFeedbackFlushed(receipt.ledgers);
      await assert.rejects(
        flywheel.runPipeline({ dataset: 'dash-missing', sources: [{ type: 'path', path: path.join(home, 'none') }] }),
      );
      scrape = readExposition(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    });

    after(async () => {
      await connection?.close();
      await worker?.stop();
      fs.rmSync(home, { recursive: true, force: true });
    });

    it('every metric a dashboard queries is one the worker exports, with the labels and label values it selects', () => {
      for (const { where, expr } of queries) {
        const { selectors, groupingLabels } = readPromql(expr);
        assert.ok(selectors.length > 0, `${where}: no metric in ${expr}`);
        const labelsOf = new Set<string>(targetLabels);
        for (const selector of selectors) {
          if (SCRAPE_SERIES.has(selector.metric)) continue;
          const series = scrape.get(selector.metric);
          assert.ok(series, `${where}: the worker does not export ${selector.metric}`);
          const own = new Set([...targetLabels, ...series.flatMap((labels) => Object.keys(labels))]);
          for (const matcher of selector.matchers) {
            assert.ok(own.has(matcher.label), `${where}: ${selector.metric} has no label ${matcher.label}`);
            // Failure counters carry only the values that failed, so a value counts when any series reports it.
            assert.ok(
              selectsReportedValue(matcher, scrape),
              `${where}: the worker reports no ${matcher.label} ${matcher.op} "${matcher.value}"`,
            );
          }
          for (const label of own) labelsOf.add(label);
        }
        for (const label of groupingLabels)
          assert.ok(labelsOf.has(label), `${where}: groups by ${label}, which none of its metrics has`);
      }
    });

    it('a real Prometheus scrapes the worker as the stack configures it and answers every dashboard query', async (t) => {
      if (!installed('prometheus')) return t.skip('prometheus is not installed (Debian: apt-get install prometheus)');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-prometheus-'));
      const port = await freePort();
      // The stack's job with its relabelling, the DNS lookup replaced by this worker's address.
      const [job] = prometheus.scrape_configs;
      const config = {
        global: { scrape_interval: '1s' },
        scrape_configs: [
          {
            job_name: job.job_name,
            static_configs: [{ targets: [`127.0.0.1:${metricsPort}`], labels: { __meta_dns_name: 'worker' } }],
            relabel_configs: job.relabel_configs,
          },
        ],
      };
      fs.writeFileSync(path.join(dir, 'prometheus.yml'), JSON.stringify(config));
      const server = spawn(
        'prometheus',
        [
          `--config.file=${path.join(dir, 'prometheus.yml')}`,
          `--storage.tsdb.path=${path.join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: 'ignore' },
      );
      const query = async (expr: string) => {
        const url = `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`;
        return (await (await fetch(url)).json()) as {
          status: string;
          error?: string;
          data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
        };
      };
      try {
        const up = `up{job="${job.job_name}"}`;
        for (let tries = 0; ; tries++) {
          const answer = await query(up).catch(() => undefined);
          const target = answer?.data?.result[0];
          if (target?.value[1] === '1') {
            assert.equal(target.metric.service, 'worker', 'relabelling names the compose service');
            break;
          }
          assert.ok(tries < 60, `Prometheus did not scrape the worker: ${JSON.stringify(answer)}`);
          await new Promise((r) => setTimeout(r, 500));
        }
        for (const { where, expr } of queries) {
          const answer = await query(withGrafanaVariables(expr));
          assert.equal(answer.status, 'success', `${where}: ${answer.error}`);
        }
      } finally {
        server.kill('SIGTERM');
        await new Promise((r) => (server.exitCode === null ? server.once('exit', r) : r(undefined)));
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
