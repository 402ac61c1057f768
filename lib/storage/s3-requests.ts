import type { S3Client } from '@aws-sdk/client-s3';
import { currentUsage } from '../cost/usage';

interface S3Metadata {
  $metadata?: { attempts?: number };
}

/**
 * Counts S3 requests on the activity attempt's usage meter (lib/cost): every command, the parts of multipart uploads
 * included, and each of the SDK's retries of one (S3 bills every HTTP request). Outside an activity it does nothing.
 */
export function countS3Requests(client: S3Client): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const usage = currentUsage();
      if (usage === undefined) return next(args);
      try {
        const result = await next(args);
        usage.s3Requests += attemptsOf(result.output as S3Metadata);
        return result;
      } catch (err) {
        usage.s3Requests += attemptsOf(err as S3Metadata);
        throw err;
      }
    },
    { step: 'initialize', name: 'flywheelRequestCount', override: true },
  );
}

function attemptsOf(value: S3Metadata | undefined): number {
  const attempts = value?.$metadata?.attempts;
  return typeof attempts === 'number' && attempts > 0 ? attempts : 1;
}
