/** Not a workflow: the workflow-side tracing interceptors, bundled only when traces are on (worker/tracing.ts). */
import {
  OpenTelemetryInboundInterceptor,
  OpenTelemetryInternalsInterceptor,
  OpenTelemetryOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry/lib/workflow';
import type { Next, QueryInput, WorkflowInboundCallsInterceptor, WorkflowInterceptors } from '@temporalio/workflow';

/**
 * The SDK's workflow interceptors, queries left untraced: `--wait` and `status` ask for `progress` every second, and
 * a span each, outside any trace, would bury the run's own.
 */
class TracedExceptQueries extends OpenTelemetryInboundInterceptor {
  public override async handleQuery(
    input: QueryInput,
    next: Next<WorkflowInboundCallsInterceptor, 'handleQuery'>,
  ): Promise<unknown> {
    return next(input);
  }
}

export const interceptors = (): WorkflowInterceptors => ({
  inbound: [new TracedExceptQueries()],
  outbound: [new OpenTelemetryOutboundInterceptor()],
  internals: [new OpenTelemetryInternalsInterceptor()],
});
