/**
 * Per-pilot unit queues. Units travel many to a message (≤ 24 KiB, so ten fit one SendMessageBatch
 * under SQS's 256 KiB batch limit) — one SQS request carries hundreds of small units.
 */
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
} from '@aws-sdk/client-sqs';
import type { ComputeUnitDescription } from '../../core/descriptions.ts';
import { NoSuccess } from '../../core/errors.ts';
import { ENV, PILOT_QUEUE_PREFIX } from '../../stacks/manifest.ts';
import { chunk } from '../../store/batch.ts';
import { sqsClient } from './aws.ts';
import { logger } from './log.ts';

/** A unit as it travels to an agent. */
export interface QueuedUnit {
  uid: string;
  name?: string;
  description: ComputeUnitDescription;
}

const MESSAGE_BYTES = 24 * 1024;
const BATCH_BYTES = 250 * 1024;
const urls = new Map<string, string>();

/** Queue name of a pilot: SQS allows 80 characters of [A-Za-z0-9_-]. */
export function pilotQueueName(sessionId: string, pilotId: string): string {
  const name = `${PILOT_QUEUE_PREFIX}${sessionId}-${pilotId}`.replace(/[^A-Za-z0-9_-]/g, '_');
  return name.length <= 80 ? name : `${name.slice(0, 60)}_${name.slice(-19)}`;
}

/** Creates a pilot's queue (idempotent), with the units DLQ as its redrive target. */
export async function createPilotQueue(sessionId: string, pilotId: string): Promise<string> {
  const name = pilotQueueName(sessionId, pilotId);
  // Claims are authoritative in DynamoDB, so a redelivered message is harmless; messages that keep
  // failing (e.g. a poison body) go to the DLQ instead of circling for two weeks.
  const dlqArn = process.env[ENV.unitsDlqArn];
  const out = await sqsClient().send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: '120',
        MessageRetentionPeriod: '1209600',
        ...(dlqArn
          ? { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: '5' }) }
          : {}),
      },
    }),
  );
  if (!out.QueueUrl) throw new NoSuccess(`SQS CreateQueue ${name} returned no URL`);
  urls.set(name, out.QueueUrl);
  return out.QueueUrl;
}

async function queueUrl(sessionId: string, pilotId: string): Promise<string> {
  const name = pilotQueueName(sessionId, pilotId);
  let url = urls.get(name);
  if (!url) {
    url = (await sqsClient().send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
    if (!url) throw new NoSuccess(`SQS queue ${name} has no URL`);
    urls.set(name, url);
  }
  return url;
}

/** SQS limits are in bytes; JSON.stringify leaves non-ASCII text unescaped, so characters undercount. */
const utf8Bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Packs units into message bodies of at most MESSAGE_BYTES (a bigger unit travels alone). */
export function packUnits(units: readonly QueuedUnit[]): string[] {
  const bodies: string[] = [];
  let current: string[] = [];
  let size = 12;
  for (const u of units) {
    const s = JSON.stringify(u);
    const n = utf8Bytes(s);
    if (current.length && size + n + 1 > MESSAGE_BYTES) {
      bodies.push(`{"units":[${current.join(',')}]}`);
      current = [];
      size = 12;
    }
    current.push(s);
    size += n + 1;
  }
  if (current.length) bodies.push(`{"units":[${current.join(',')}]}`);
  return bodies;
}

/** Groups message bodies into SendMessageBatch calls: at most ten, and at most BATCH_BYTES, per call. */
export function batchBodies(bodies: readonly string[]): string[][] {
  const batches: string[][] = [];
  let batch: string[] = [];
  let bytes = 0;
  for (const b of bodies) {
    const n = utf8Bytes(b);
    if (batch.length === 10 || (batch.length && bytes + n > BATCH_BYTES)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(b);
    bytes += n;
  }
  if (batch.length) batches.push(batch);
  return batches;
}

/** Sends units to a pilot's queue in as few SendMessageBatch calls as the limits allow. */
export async function sendUnits(
  sessionId: string,
  pilotId: string,
  units: readonly QueuedUnit[],
): Promise<void> {
  if (units.length === 0) return;
  const url = await queueUrl(sessionId, pilotId);
  const batches = batchBodies(packUnits(units));
  await Promise.all(
    batches.map(async (entries) => {
      const out = await sqsClient().send(
        new SendMessageBatchCommand({
          QueueUrl: url,
          Entries: entries.map((MessageBody, i) => ({ Id: String(i), MessageBody })),
        }),
      );
      if (out.Failed?.length) {
        throw new NoSuccess(
          `SQS refused ${out.Failed.length} message(s) for ${pilotId}: ${out.Failed[0]?.Message ?? out.Failed[0]?.Code}`,
        );
      }
    }),
  );
}

/**
 * The body of a wake-up: no units, only a signal that commands (a unit cancel) wait on the pilot record.
 * It travels the units' own queue so that a pull long-polling there returns at once and carries them.
 */
const WAKE_BODY = '{"units":[],"wake":true}';

/**
 * Wakes the pilot's pull long-poll: commands for its agent were just written on the pilot record. Never
 * throws: a wake-up that fails (the pilot's queue is gone with its end) is logged and only delays
 * delivery to the agent's next call, since the commands are on the record.
 */
export async function wakePilot(sessionId: string, pilotId: string): Promise<void> {
  try {
    const url = await queueUrl(sessionId, pilotId);
    await sqsClient().send(
      new SendMessageBatchCommand({ QueueUrl: url, Entries: [{ Id: '0', MessageBody: WAKE_BODY }] }),
    );
  } catch (err) {
    logger.warn('pilot wake-up failed', { sessionId, pilotId, error: String(err) });
  }
}

/**
 * Long-polls a pilot's queue once; returns the units, the receipt handles to delete after claiming, and
 * whether a wake-up ({@link wakePilot}) was among the messages.
 */
export async function receiveUnits(
  sessionId: string,
  pilotId: string,
  waitSeconds: number,
  maxMessages = 10,
): Promise<{ units: QueuedUnit[]; receipts: string[]; wake: boolean }> {
  const url = await queueUrl(sessionId, pilotId);
  const out = await sqsClient().send(
    new ReceiveMessageCommand({
      QueueUrl: url,
      MaxNumberOfMessages: Math.max(1, Math.min(10, Math.floor(maxMessages))),
      WaitTimeSeconds: Math.max(0, Math.min(20, waitSeconds)),
    }),
  );
  const units: QueuedUnit[] = [];
  const receipts: string[] = [];
  let wake = false;
  for (const m of out.Messages ?? []) {
    if (m.ReceiptHandle) receipts.push(m.ReceiptHandle);
    const body = JSON.parse(m.Body ?? '{"units":[]}') as { units?: QueuedUnit[]; wake?: boolean };
    if (body.wake === true) wake = true;
    units.push(...(body.units ?? []));
  }
  return { units, receipts, wake };
}

/** Deletes received messages (after their units were claimed), ten per DeleteMessageBatch (SQS's limit). */
export async function deleteReceived(
  sessionId: string,
  pilotId: string,
  receipts: readonly string[],
): Promise<void> {
  if (receipts.length === 0) return;
  const url = await queueUrl(sessionId, pilotId);
  await Promise.all(
    chunk(receipts, 10).map((batch) =>
      sqsClient().send(
        new DeleteMessageBatchCommand({
          QueueUrl: url,
          Entries: batch.map((ReceiptHandle, i) => ({ Id: String(i), ReceiptHandle })),
        }),
      ),
    ),
  );
}

/** Deletes a pilot's queue (its end); a missing queue is fine. */
export async function deletePilotQueue(sessionId: string, pilotId: string): Promise<void> {
  try {
    const url = await queueUrl(sessionId, pilotId);
    await sqsClient().send(new DeleteQueueCommand({ QueueUrl: url }));
  } catch (err) {
    if (
      (err as Error).name !== 'QueueDoesNotExist' &&
      (err as Error).name !== 'AWS.SimpleQueueService.NonExistentQueue'
    )
      throw err;
  } finally {
    urls.delete(pilotQueueName(sessionId, pilotId));
  }
}
