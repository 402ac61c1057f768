export interface FlywheelErrorOptions {
  /** Whether the same call can succeed when tried again (a store that was down, a lost race) or never will. */
  retryable: boolean;
  /** What a handler needs besides the message (the URI, the bad fields); Temporal carries it as the failure's detail. */
  details?: unknown;
  cause?: unknown;
}

/**
 * Every error Flywheel raises: `type` is the failure type users search for and Temporal reports (it is also the
 * error's `name`), `retryable` alone decides whether an activity that throws it is tried again.
 */
export class FlywheelError extends Error {
  readonly type: string;
  readonly retryable: boolean;
  readonly details: unknown;

  constructor(type: string, message: string, options: FlywheelErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = type;
    this.type = type;
    this.retryable = options.retryable;
    this.details = options.details;
  }
}
