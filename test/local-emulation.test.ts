/**
 * The embedded backend's emulation layer, driven only through AWS SDK v3 clients and plain HTTP:
 * SQS (long poll, visibility timeout, redrive to a DLQ) as the handlers rely on it, and the HTTP API
 * adapter (route mapping, payload-format-2.0 events, API Gateway's error statuses).
 */
import {
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, startBackend } from '../local/backend.ts';
import { compileRoutes, matchRoute } from '../local/http-api.ts';
import { ROUTES } from '../stacks/manifest.ts';
import { until } from './e2e.ts';

let backend: Backend;
let sqs: SQSClient;

beforeAll(async () => {
  backend = await startBackend();
  sqs = new SQSClient({ endpoint: backend.env.AWS_ENDPOINT_URL_SQS ?? '', useQueueUrlAsEndpoint: false });
});

afterAll(async () => {
  sqs?.destroy();
  await backend?.close();
});

/** A queue's visible and in-flight message counts (exact on the embedded SQS, which has one node). */
async function counts(url: string): Promise<{ visible: number; hidden: number }> {
  const { Attributes: a } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return {
    visible: Number(a?.ApproximateNumberOfMessages),
    hidden: Number(a?.ApproximateNumberOfMessagesNotVisible),
  };
}

async function queue(name: string, attributes: Record<string, string> = {}): Promise<string> {
  const out = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  return out.QueueUrl ?? '';
}

describe('SQS (fauxqs, embedded)', () => {
  it('returns a long poll as soon as a message arrives, not at the end of the wait', async () => {
    const url = await queue('t-longpoll');
    // The whole wait is far longer than the test's own timeout: the poll can only return the message in
    // time if it wakes on arrival, so no clock needs to be read here.
    const receive = sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 20 }));
    setTimeout(() => void sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'hello' })), 300);
    const out = await receive;
    expect(out.Messages?.[0]?.Body).toBe('hello');
  });

  it('hides a received message for its visibility timeout, then redelivers it', async () => {
    // 3 s of visibility: the immediate "hidden" check below has seconds of margin on a loaded machine.
    const url = await queue('t-visibility', { VisibilityTimeout: '3' });
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'once' }));
    const first = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1 }));
    expect(first.Messages).toHaveLength(1);
    const hidden = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 0 }));
    expect(hidden.Messages ?? []).toHaveLength(0);
    expect(await counts(url)).toEqual({ visible: 0, hidden: 1 });
    const again = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        WaitTimeSeconds: 10,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      }),
    );
    expect(again.Messages?.[0]?.Body).toBe('once');
    expect(again.Messages?.[0]?.Attributes?.ApproximateReceiveCount).toBe('2');
    // Visibility 0 makes it visible at once; a delete removes it for good.
    const handle = again.Messages?.[0]?.ReceiptHandle ?? '';
    await sqs.send(
      new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: handle, VisibilityTimeout: 0 }),
    );
    const third = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1 }));
    await sqs.send(
      new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: third.Messages?.[0]?.ReceiptHandle ?? '' }),
    );
    // Gone for good: the queue's own counts say so, no waiting to see whether it comes back.
    expect(await counts(url)).toEqual({ visible: 0, hidden: 0 });
  });

  it('moves a message received maxReceiveCount times to the dead-letter queue', async () => {
    const dlq = await queue('t-dlq');
    const dlqArn = (
      await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq, AttributeNames: ['QueueArn'] }))
    ).Attributes?.QueueArn;
    const url = await queue('t-redrive', {
      VisibilityTimeout: '1',
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: '2' }),
    });
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'poison' }));
    for (let i = 0; i < 2; i++) {
      // A long poll returns when the message is visible again, so a generous wait costs nothing.
      const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 10 }));
      expect(got.Messages).toHaveLength(1);
    }
    // As in SQS, the move happens when a receive would exceed maxReceiveCount: that receive gets nothing,
    // and no receive ever gets it a third time. Receive until it is in the DLQ (it moves once its
    // visibility has run out, however long a loaded machine takes to get there).
    const dead = await until(
      'poison message moved to the DLQ',
      async () => {
        const third = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1 }));
        expect(third.Messages ?? []).toHaveLength(0);
        const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: dlq, WaitTimeSeconds: 0 }));
        return out.Messages?.[0];
      },
      20_000,
      0,
    );
    expect(dead.Body).toBe('poison');
    expect(await counts(url)).toEqual({ visible: 0, hidden: 0 });
  });
});

describe('HTTP API adapter', () => {
  it('maps every manifest route, with path parameters', () => {
    const routes = compileRoutes(ROUTES);
    for (const key of Object.keys(ROUTES)) {
      const [method, path] = key.split(' ') as [string, string];
      const concrete = path.replace(/\{(\w+)\}/g, (_m, p: string) => `${p}-value`);
      const hit = matchRoute(routes, method, concrete);
      expect(hit?.route.routeKey).toBe(key);
      for (const p of path.match(/\{(\w+)\}/g) ?? []) {
        const name = p.slice(1, -1);
        expect(hit?.pathParameters[name]).toBe(`${name}-value`);
      }
    }
    expect(matchRoute(routes, 'DELETE', '/sessions')).toBeUndefined();
    expect(matchRoute(routes, 'GET', '/sessions/a/b/c/d')).toBeUndefined();
  });

  it('answers like API Gateway: 404 for no route, JSON 4xx from handlers, never a 5xx for bad input', async () => {
    const none = await fetch(`${backend.apiUrl}/nope`);
    expect(none.status).toBe(404);
    expect(await none.json()).toEqual({ message: 'Not Found' });
    const bad = await fetch(`${backend.apiUrl}/sessions`, { method: 'POST', body: '{not json' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('BadParameter');
    const unauth = await fetch(`${backend.apiUrl}/sessions/x/pmgrs`);
    expect(unauth.status).toBe(401);
    const created = await fetch(`${backend.apiUrl}/sessions`, { method: 'POST', body: '{}' });
    expect(created.status).toBe(200);
    expect(created.headers.get('content-type')).toMatch(/application\/json/);
  });
});
