import type { S3Client } from '@aws-sdk/client-s3';
import { SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';

const tracer = trace.getTracer('flywheel-storage');

interface S3Call {
  input: { Bucket?: unknown; Key?: unknown; Prefix?: unknown };
}
interface S3Metadata {
  $metadata?: { httpStatusCode?: number; requestId?: string; attempts?: number };
}

/**
 * One client span per S3 request (every command, the parts of multipart uploads included), named as OpenTelemetry's
 * AWS SDK instrumentation names them (`S3.GetObject`). Only calls made inside a trace (an activity's) get a span, so
 * start-up checks and CLI reads add no stray traces; without an OpenTelemetry SDK in the process it costs nothing.
 */
export function traceS3Calls(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (trace.getActiveSpan() === undefined) return next(args);
      const method = (context.commandName ?? 'Command').replace(/Command$/, '');
      const input = (args as S3Call).input;
      return tracer.startActiveSpan(
        `S3.${method}`,
        { kind: SpanKind.CLIENT, attributes: requestAttributes(method, input) },
        async (span) => {
          try {
            const result = await next(args);
            recordMetadata(span, result.output as S3Metadata);
            return result;
          } catch (err) {
            recordFailure(span, err);
            throw err;
          } finally {
            span.end();
          }
        },
      );
    },
    { step: 'initialize', name: 'flywheelTracing', override: true },
  );
}

function requestAttributes(method: string, input: S3Call['input']): Record<string, string> {
  const attributes: Record<string, string> = { 'rpc.system': 'aws-api', 'rpc.service': 'S3', 'rpc.method': method };
  if (typeof input.Bucket === 'string') attributes['aws.s3.bucket'] = input.Bucket;
  if (typeof input.Key === 'string') attributes['aws.s3.key'] = input.Key;
  else if (typeof input.Prefix === 'string') attributes['aws.s3.prefix'] = input.Prefix;
  return attributes;
}

function recordMetadata(span: Span, output: S3Metadata | undefined): void {
  const meta = output?.$metadata;
  if (!meta) return;
  if (meta.httpStatusCode !== undefined) span.setAttribute('http.response.status_code', meta.httpStatusCode);
  if (meta.requestId) span.setAttribute('aws.request_id', meta.requestId);
  // The SDK's own retries of one request: more than 1 means the store answered with a retryable error first.
  if (meta.attempts !== undefined) span.setAttribute('aws.sdk.attempts', meta.attempts);
}

function recordFailure(span: Span, err: unknown): void {
  recordMetadata(span, err as S3Metadata);
  const status = (err as S3Metadata).$metadata?.httpStatusCode;
  // A 404 answers a question (is the stage committed? does the object exist?); it is not a failed call.
  if (status === 404) return;
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}
