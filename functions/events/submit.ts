/**
 * Event-triggered submission (SQS → Lambda): each message `{sessionId, umgr, descriptions}` submits
 * units exactly as `POST /sessions/{sid}/umgrs/{umid}/units` does. Sending to the queue is the
 * authorization (IAM decides who may), so no session token travels in events.
 *
 * Partial batch failures: a message that failed for a reason that may pass (DynamoDB or SQS trouble) is
 * reported in `batchItemFailures` and comes back after its visibility timeout, up to maxReceiveCount,
 * then lands in the DLQ. A message that can never succeed (bad JSON, an invalid description, an unknown
 * session) goes to the DLQ at once with the reason as a message attribute, instead of being retried.
 */
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { BadParameter, PilotException } from '../../core/errors.ts';
import { ENV } from '../../stacks/manifest.ts';
import { env, sqsClient } from '../lib/aws.ts';
import { logger } from '../lib/log.ts';
import { withMetrics } from '../lib/metrics.ts';
import { submitUnits } from '../lib/units.ts';
import { chargeTo } from '../lib/usage.ts';

function parse(body: string): { sessionId: string; umgr: string; descriptions: unknown } {
  let msg: unknown;
  try {
    msg = JSON.parse(body);
  } catch (err) {
    throw new BadParameter(`submission: body is not valid JSON (${(err as Error).message})`);
  }
  const m = msg as Record<string, unknown> | null;
  for (const f of ['sessionId', 'umgr'] as const) {
    if (typeof m?.[f] !== 'string' || m[f] === '')
      throw new BadParameter(`submission.${f}: must be a non-empty string, got ${JSON.stringify(m?.[f])}`);
  }
  return m as { sessionId: string; umgr: string; descriptions: unknown };
}

/** True for errors that no retry can fix (client errors). */
function permanent(err: unknown): boolean {
  return err instanceof PilotException && err.httpStatus < 500;
}

async function run(event: SQSEvent): Promise<SQSBatchResponse> {
  const batchItemFailures: { itemIdentifier: string }[] = [];
  for (const record of event.Records) {
    try {
      const m = parse(record.body);
      chargeTo(m.sessionId);
      const units = await submitUnits(m.sessionId, m.umgr, m.descriptions);
      logger.info('event submission', {
        messageId: record.messageId,
        sessionId: m.sessionId,
        umgr: m.umgr,
        units: units.length,
      });
    } catch (err) {
      if (!permanent(err)) {
        logger.warn('event submission failed; will retry', {
          messageId: record.messageId,
          error: err as Error,
        });
        batchItemFailures.push({ itemIdentifier: record.messageId });
        continue;
      }
      try {
        await sqsClient().send(
          new SendMessageCommand({
            QueueUrl: env(ENV.submissionsDlqUrl),
            MessageBody: record.body,
            MessageAttributes: {
              error: { DataType: 'String', StringValue: (err as Error).message.slice(0, 1000) },
              sourceMessageId: { DataType: 'String', StringValue: record.messageId },
            },
          }),
        );
        logger.warn('event submission refused; parked in the DLQ', {
          messageId: record.messageId,
          reason: (err as Error).message,
        });
      } catch (dlqErr) {
        logger.error('cannot park a refused submission; will retry', {
          messageId: record.messageId,
          error: dlqErr as Error,
        });
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    }
  }
  return { batchItemFailures };
}

/** The Lambda entry: {@link run}, with its log context and metrics. */
export const handler = withMetrics(run);
