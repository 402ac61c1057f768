import * as path from 'node:path';
import { trace } from '@opentelemetry/api';
import type { Context as ActivityContext } from '@temporalio/activity';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/worker';
import type { OpenTelemetrySinks } from '@temporalio/interceptors-opentelemetry/lib/workflow';
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  InjectedSinks,
  Next,
  WorkerInterceptors,
} from '@temporalio/worker';
import type { WorkflowInfo } from '@temporalio/workflow';
import type { Tracing } from '../temporal/tracing';

/** Bundled into the workflow code when traces are on: the workflow's and its activity starts' spans. */
export const WORKFLOW_TRACING_INTERCEPTORS = path.join(__dirname, '..', 'workflows', 'tracing-interceptors.ts');

/** What a worker adds to its options when traces are on. */
export interface WorkerTracing {
  interceptors: WorkerInterceptors;
  sinks: InjectedSinks<OpenTelemetrySinks>;
}

/**
 * The worker side of a trace: each activity attempt a span (a child of the workflow's start of it, with its attempt
 * number), and the workflow's own spans carried out of the sandbox through the `exporter` sink.
 */
export function workerTracing(tracing: Tracing): WorkerTracing {
  const exporter = makeWorkflowExporter(tracing.spanProcessor, tracing.resource);
  return {
    interceptors: {
      activity: [
        (ctx) => ({
          inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
          outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
        }),
        (ctx) => ({ inbound: new ActivityAttemptAttributes(ctx) }),
      ],
    },
    sinks: {
      exporter: {
        export: {
          // The SDK copies the whole WorkflowInfo onto workflow spans, memo (the spec) included; only ids go out.
          fn: (info, spans) => exporter.export.fn(workflowIdentity(info), spans),
        },
      },
    },
  };
}

function workflowIdentity(info: WorkflowInfo): WorkflowInfo {
  const identity = {
    'temporal.workflow.type': info.workflowType,
    'temporal.task_queue': info.taskQueue,
    'temporal.namespace': info.namespace,
    temporalWorkflowId: info.workflowId,
    run_id: info.runId,
  };
  // makeWorkflowExporter merges this object's fields into each span's attributes, and reads nothing else from it.
  return identity as unknown as WorkflowInfo;
}

/** Runs inside the activity's span: which attempt this is (a retry shows as attempt 2, 3, ...) and its task queue. */
class ActivityAttemptAttributes implements ActivityInboundCallsInterceptor {
  constructor(private readonly ctx: ActivityContext) {}

  execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const { attempt, taskQueue, activityType } = this.ctx.info;
    trace.getActiveSpan()?.setAttributes({
      'temporal.activity.attempt': attempt,
      'temporal.activity.type': activityType,
      'temporal.task_queue': taskQueue,
    });
    return next(input);
  }
}
