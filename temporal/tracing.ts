/* eslint-disable @typescript-eslint/no-require-imports -- the OpenTelemetry SDK loads only when tracing is on */
import { context, propagation, trace } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { WorkflowClientInterceptor } from '@temporalio/client';
import type { FlywheelConfig } from '../lib/config';

/** What the client and worker wire into the SDK's interceptors when traces are on. */
export interface Tracing {
  tracesUrl: string;
  resource: Resource;
  /** Where spans go: the batch processor in front of the OTLP exporter (workflow spans arrive here through a sink). */
  spanProcessor: SpanProcessor;
}

let installed: { tracing: Tracing; provider: NodeTracerProvider } | undefined;

/**
 * Turns traces on for this process when an OTLP endpoint is configured (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): a tracer provider registered globally (AsyncLocalStorage context, W3C trace
 * context), its spans batched to the endpoint as OTLP/HTTP JSON. Idempotent: the first call's configuration holds until
 * shutdownTracing(). Returns undefined when traces are off.
 */
export function installTracing(config: Pick<FlywheelConfig, 'tracing'>): Tracing | undefined {
  if (installed) return installed.tracing;
  const { tracesUrl, serviceName } = config.tracing;
  if (!tracesUrl) return undefined;
  const { NodeTracerProvider } =
    require('@opentelemetry/sdk-trace-node') as typeof import('@opentelemetry/sdk-trace-node');
  const { BatchSpanProcessor } =
    require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const { OTLPTraceExporter } =
    require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
  const { Resource, detectResourcesSync, envDetectorSync, hostDetectorSync } =
    require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');

  // OTEL_RESOURCE_ATTRIBUTES and the host name, under the configured service name.
  const resource = detectResourcesSync({ detectors: [envDetectorSync, hostDetectorSync] }).merge(
    new Resource({ 'service.name': serviceName }),
  );
  const exporter = new DropWithOneWarning(new OTLPTraceExporter({ url: tracesUrl }), tracesUrl);
  const spanProcessor = new BatchSpanProcessor(exporter);
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register();
  installed = { tracing: { tracesUrl, resource, spanProcessor }, provider };
  return installed.tracing;
}

/** Sends the spans ended so far (tests; a process about to exit uses shutdownTracing). Never throws: an export that
 * failed has already been warned about. */
export async function flushTracing(): Promise<void> {
  await installed?.provider.forceFlush().catch(() => undefined);
}

/**
 * Sends what is left and turns traces off, waiting at most `timeoutMs` for the endpoint: a process never hangs on
 * its exit because a collector is slow or gone. Safe to call when traces were never on.
 */
export async function shutdownTracing(timeoutMs = 5000): Promise<void> {
  const current = installed;
  if (!current) return;
  installed = undefined;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
    timer.unref();
  });
  await Promise.race([current.provider.shutdown().catch(() => undefined), deadline]);
  clearTimeout(timer);
  trace.disable();
  context.disable();
  propagation.disable();
}

/**
 * The client side of a trace: a span for each start, signal, update, cancel and terminate, its context sent to the
 * workflow in the call's headers. Queries and describes are not traced: `--wait` and `status` poll `progress` every
 * second, and a trace each would bury the run's own.
 */
export function tracingClientInterceptors(): WorkflowClientInterceptor[] {
  const { OpenTelemetryWorkflowClientInterceptor } =
    require('@temporalio/interceptors-opentelemetry/lib/client') as typeof import('@temporalio/interceptors-opentelemetry/lib/client');
  const traced = new OpenTelemetryWorkflowClientInterceptor();
  return [
    {
      start: (input, next) => traced.start(input, next),
      startWithDetails: (input, next) => traced.startWithDetails(input, next),
      signal: (input, next) => traced.signal(input, next),
      signalWithStart: (input, next) => traced.signalWithStart(input, next),
      startUpdate: (input, next) => traced.startUpdate(input, next),
      startUpdateWithStart: (input, next) => traced.startUpdateWithStart(input, next),
      cancel: (input, next) => traced.cancel(input, next),
      terminate: (input, next) => traced.terminate(input, next),
    },
  ];
}

/**
 * An unreachable or failing endpoint must never fail a run: the batch processor already drops what it cannot send;
 * this says so once, when exports start failing, and again only after they worked in between.
 */
class DropWithOneWarning implements SpanExporter {
  private failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly url: string,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code === ExportResultCode.FAILED && !this.failing) {
        this.failing = true;
        console.warn(
          `[flywheel] traces: cannot export to ${this.url} (${result.error?.message ?? 'export failed'}); ` +
            'spans are dropped until it answers, runs go on',
        );
      } else if (result.code === ExportResultCode.SUCCESS) {
        this.failing = false;
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}
