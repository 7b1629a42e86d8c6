/**
 * Event-triggered submission through the embedded backend's SQS event source mapping: a message on the
 * submissions queue submits units as the HTTP API does; a message that can never succeed is parked in the
 * submissions DLQ with the reason, and does not hold up the valid ones of its batch.
 */
import { ReceiveMessageCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComputePilot, PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { until } from './e2e.ts';

let backend: Backend;
let sqs: SQSClient;
let session: Session;
let pilot: ComputePilot;
let umgr: UnitManager;

beforeAll(async () => {
  backend = await startBackend();
  sqs = new SQSClient({ endpoint: backend.env.AWS_ENDPOINT_URL_SQS ?? '', useQueueUrlAsEndpoint: false });
  session = await Session.create({ endpoint: backend.apiUrl });
  const pmgr = await PilotManager.create(session);
  pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
  umgr = await UnitManager.create(session, 'direct_submission');
  await umgr.addPilots(pilot);
}, 60_000);

afterAll(async () => {
  await session?.close({ timeout: 30 });
  sqs?.destroy();
  await backend?.close();
});

describe('event-triggered submission', () => {
  it('runs the units of a valid message and parks the invalid ones of the same batch in the DLQ, with the reason', async () => {
    const valid = {
      sessionId: session.uid,
      umgr: umgr.uid,
      descriptions: [{ executable: '/bin/echo', arguments: ['from an event'] }],
    };
    const invalid = {
      sessionId: session.uid,
      umgr: umgr.uid,
      descriptions: [{ executable: '/bin/echo', cores: -2 }],
    };
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: backend.queueUrls.submissions,
        Entries: [
          { Id: 'valid', MessageBody: JSON.stringify(valid) },
          { Id: 'invalid', MessageBody: JSON.stringify(invalid) },
          { Id: 'garbage', MessageBody: '{not json' },
        ],
      }),
    );
    // The valid message's unit arrives in the manager's feed and runs.
    const uids = await until(
      "the valid message's unit in the feed",
      async () => {
        const listed = await umgr.listUnits();
        return listed.length ? listed : undefined;
      },
      30_000,
      200,
    );
    await umgr.waitUnits({ timeout: 60 });
    const [unit] = await umgr.getUnits(uids);
    expect(unit?.state).toBe(UnitState.DONE);
    expect(unit?.stdout).toContain('from an event');
    // The two that can never succeed are parked, each with a reason naming the problem.
    const reasons: string[] = [];
    for (let i = 0; i < 10 && reasons.length < 2; i++) {
      const out = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: backend.queueUrls.submissionsDlq,
          WaitTimeSeconds: 1,
          MaxNumberOfMessages: 10,
          MessageAttributeNames: ['All'],
        }),
      );
      for (const m of out.Messages ?? []) reasons.push(m.MessageAttributes?.error?.StringValue ?? '');
    }
    expect(reasons).toHaveLength(2);
    // All three messages are handled now (one ran, two are parked): the invalid ones submitted nothing.
    expect(await umgr.listUnits()).toEqual([unit?.uid]);
    expect(reasons).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/\[0\]\.cores.*-2/),
        expect.stringMatching(/not valid JSON/),
      ]),
    );
  }, 90_000);
});
