/**
 * SQS event source mappings as Lambda runs them, for the embedded backend: long-poll each source queue,
 * hand the handler a batch (up to `batchSize` records, Lambda's SQSEvent shape), delete what succeeded,
 * and leave the records named in `batchItemFailures` (or the whole batch, if the handler threw) to
 * reappear after their visibility timeout — until the queue's redrive policy moves them to the DLQ.
 */
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { EVENT_SOURCES } from '../stacks/manifest.ts';
import { invoke } from './lambdas.ts';

/** A queue of the manifest, as the backend created it. */
export interface SourceQueue {
  url: string;
  arn: string;
}

function toRecord(m: Message, arn: string): SQSRecord {
  const attrs = m.Attributes ?? {};
  return {
    messageId: m.MessageId ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    body: m.Body ?? '',
    attributes: {
      ApproximateReceiveCount: attrs.ApproximateReceiveCount ?? '1',
      SentTimestamp: attrs.SentTimestamp ?? String(Date.now()),
      SenderId: attrs.SenderId ?? 'local',
      ApproximateFirstReceiveTimestamp: attrs.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes: Object.fromEntries(
      Object.entries(m.MessageAttributes ?? {}).map(([k, v]) => [
        k,
        {
          dataType: v.DataType ?? 'String',
          ...(v.StringValue !== undefined ? { stringValue: v.StringValue } : {}),
        },
      ]),
    ),
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: arn,
    awsRegion: arn.split(':')[3] ?? 'us-east-1',
  };
}

/** Runs every manifest event source until closed. */
export function startEventSources(
  sqs: SQSClient,
  queues: Record<string, SourceQueue>,
): { close(): Promise<void> } {
  const stop = new AbortController();
  const loops = EVENT_SOURCES.map(async (source) => {
    const q = queues[source.queue];
    if (!q) throw new Error(`event source ${source.function}: queue ${source.queue} was not created`);
    while (!stop.signal.aborted) {
      let messages: Message[] = [];
      try {
        const out = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: q.url,
            MaxNumberOfMessages: source.batchSize,
            WaitTimeSeconds: 2,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
          { abortSignal: stop.signal },
        );
        messages = out.Messages ?? [];
      } catch (err) {
        if (stop.signal.aborted) return;
        console.error(`[event-source ${source.function}] receive failed:`, err);
        await new Promise((r) => setTimeout(r, 1_000));
        continue;
      }
      if (messages.length === 0) continue;
      const event: SQSEvent = { Records: messages.map((m) => toRecord(m, q.arn)) };
      let failed: Set<string>;
      try {
        const res = (await invoke(source.function, event)) as SQSBatchResponse | undefined;
        failed = new Set((res?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
      } catch (err) {
        console.error(`[event-source ${source.function}] handler threw; the batch will be retried:`, err);
        continue;
      }
      const done = messages.filter((m) => !failed.has(m.MessageId ?? ''));
      if (done.length) {
        await sqs
          .send(
            new DeleteMessageBatchCommand({
              QueueUrl: q.url,
              Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
            }),
          )
          .catch((err: unknown) => console.error(`[event-source ${source.function}] delete failed:`, err));
      }
    }
  });
  return {
    close: async () => {
      stop.abort();
      await Promise.allSettled(loops);
    },
  };
}
