/**
 * A pull leaves the delete of its queue messages to the agent's next request (`ackLater`, then `acks`), so
 * the delete is off the path from the claims to the spawns. Checked two ways: the agent's client sends what
 * a pull answered with its next request, and keeps it for the one after when that request fails (a local
 * HTTP server of our own); and with a real agent on the embedded backend, the pilot's queue holds no
 * message in flight once its units ran (unacked, they would stay in flight for the 120 s visibility timeout).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetQueueAttributesCommand, GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AgentApi } from '../agent/api.ts';
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import { pilotQueueName } from '../functions/lib/queues.ts';
import { type Backend, startBackend } from '../local/backend.ts';

describe('the agent client acks with its next request', () => {
  it('sends the receipts a pull answered with the next request, and again after a failed one', async () => {
    // Prepare: a server that answers a pull with two receipts, fails the first states call, then accepts.
    const bodies: { url: string; body: Record<string, unknown> }[] = [];
    let failStates = true;
    const server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => {
        raw += c.toString();
      });
      req.on('end', () => {
        bodies.push({ url: req.url ?? '', body: JSON.parse(raw) as Record<string, unknown> });
        if (req.url === '/agent/states' && failStates) {
          failStates = false;
          res.writeHead(400).end('{"error":{"code":"BadParameter","message":"no"}}');
          return;
        }
        const answer =
          req.url === '/agent/pull' ? { units: [], receipts: ['r1', 'r2'] } : { applied: 0, refused: 0 };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const api = new AgentApi(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'token');
    try {
      // Act
      await api.pull(10, 0);
      await expect(api.states([])).rejects.toThrow(/HTTP 400/);
      await api.states([]);
      await api.commands();
      // Assess: the pull asked to ack later; both states calls carried the receipts, the next call none.
      expect(bodies.map((b) => [b.url, b.body.ackLater ?? null, b.body.acks ?? null])).toEqual([
        ['/agent/pull', true, null],
        ['/agent/states', null, ['r1', 'r2']],
        ['/agent/states', null, ['r1', 'r2']],
        ['/agent/commands', null, null],
      ]);
    } finally {
      server.close();
    }
  });
});

describe('acks on the embedded backend', () => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await startBackend();
  });
  afterAll(async () => {
    await backend?.close();
  });

  it('a real agent acks every message its pulls took: none is left in flight once its units ran', async () => {
    // Prepare
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'acks' });
    try {
      const pmgr = await PilotManager.create(session);
      const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 20, cores: 2 });
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      // Act: three submissions, so that the agent pulls several messages apart.
      for (let i = 0; i < 3; i++)
        await umgr.submitUnits(Array.from({ length: 5 }, () => ({ executable: '/bin/true' })));
      // Assess
      expect(new Set(await umgr.waitUnits({ timeout: 60 }))).toEqual(new Set([UnitState.DONE]));
      const sqs = new SQSClient({ useQueueUrlAsEndpoint: false });
      const { QueueUrl } = await sqs.send(
        new GetQueueUrlCommand({ QueueName: pilotQueueName(session.uid, pilot.uid) }),
      );
      // The agent's next pull (it pulls again at once, idle) carries the acks of the last answer.
      await vi.waitFor(
        async () => {
          const out = await sqs.send(
            new GetQueueAttributesCommand({
              QueueUrl,
              AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
            }),
          );
          expect(out.Attributes).toMatchObject({
            ApproximateNumberOfMessages: '0',
            ApproximateNumberOfMessagesNotVisible: '0',
          });
        },
        { timeout: 20_000, interval: 200 },
      );
    } finally {
      await session.close({ timeout: 30 });
    }
  });
});
