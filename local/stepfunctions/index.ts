/**
 * A local AWS Step Functions API server for tests and the embedded backend: aws-local-stepfunctions runs
 * the ASL, and this server adds what it lacks — the HTTP API, task tokens (`.waitForTaskToken`),
 * SendTask*, HeartbeatSeconds, TimeoutSecondsPath/HeartbeatSecondsPath, StopExecution and AWS-shaped
 * history. Point `new SFNClient({ endpoint })` (or env AWS_ENDPOINT_URL_SFN) at `endpoint`.
 */

import './polyfill.ts';
import type { AddressInfo } from 'node:net';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { Backend } from './backend.ts';
import { createApiServer } from './server.ts';

/** Options of {@link startLocalStepFunctions}. */
export interface LocalStepFunctionsOptions {
  /** 0 or undefined = a free port; always bind 127.0.0.1 */
  port?: number;
  /** default 'us-east-1' */
  region?: string;
  /** default '000000000000' */
  accountId?: string;
  /**
   * Invoke a Lambda by name or ARN (the last ':'-segment of an ARN is the name); resolves with the function's
   * return value, rejects with the function's error (error.name is the Lambda errorType).
   * The server always passes the bare function name (ARNs and qualifiers are stripped).
   */
  invokeLambda: (functionName: string, payload: unknown) => Promise<unknown>;
  /** For arn:aws:states:::sqs:sendMessage[.waitForTaskToken] tasks. */
  sqs?: SQSClient;
}

/** A running server. */
export interface LocalStepFunctions {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  /** Stops all running executions (ABORTED), clears every timer and closes the server. */
  close(): Promise<void>;
}

// How long close() waits for stopped executions to write their final event before closing anyway.
const SHUTDOWN_GRACE_MS = 2000;

/** Starts a local Step Functions API server on 127.0.0.1. */
export async function startLocalStepFunctions(opts: LocalStepFunctionsOptions): Promise<LocalStepFunctions> {
  const backend = new Backend({
    region: opts.region ?? 'us-east-1',
    accountId: opts.accountId ?? '000000000000',
    clients: { invokeLambda: opts.invokeLambda, sqs: opts.sqs },
  });
  const server = createApiServer(backend);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close() {
      closing ??= (async () => {
        let grace: NodeJS.Timeout | undefined;
        await Promise.race([
          backend.shutdown(),
          new Promise<void>((resolve) => {
            grace = setTimeout(resolve, SHUTDOWN_GRACE_MS);
          }),
        ]);
        clearTimeout(grace);
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Keep-alive sockets of SDK clients would otherwise hold close() open.
          server.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}
