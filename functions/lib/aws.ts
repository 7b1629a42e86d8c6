/**
 * AWS clients for the handlers, built once per container from the SDK's default chain: credentials,
 * region and endpoints (`AWS_ENDPOINT_URL_<SERVICE>`) come from the environment, so the same code talks
 * to AWS, to LocalStack or to Sortie's embedded backend. Every request is counted per service and
 * operation (a middleware, so nothing is estimated); the bench prices those counts.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SQSClient } from '@aws-sdk/client-sqs';

/** Requests made by this process, keyed `Service.Operation`. */
export const awsRequests: Record<string, number> = {};

interface Countable {
  middlewareStack: {
    add(
      mw: (
        next: (a: unknown) => Promise<unknown>,
        ctx: { commandName?: string },
      ) => (a: unknown) => Promise<unknown>,
      o: { step: 'initialize'; name: string },
    ): void;
  };
}

function counted<C>(client: C, service: string): C {
  (client as unknown as Countable).middlewareStack.add(
    (next, ctx) => (args) => {
      const key = `${service}.${(ctx.commandName ?? 'Unknown').replace(/Command$/, '')}`;
      awsRequests[key] = (awsRequests[key] ?? 0) + 1;
      return next(args);
    },
    { step: 'initialize', name: 'sortieRequestCounter' },
  );
  return client;
}

let ddb: DynamoDBClient | undefined;
let sqs: SQSClient | undefined;
let sfn: SFNClient | undefined;
let s3: S3Client | undefined;

/** The DynamoDB client (one per process). */
export function dynamodb(): DynamoDBClient {
  ddb ??= counted(new DynamoDBClient({ maxAttempts: 5 }), 'DynamoDB');
  return ddb;
}

/** The SQS client (one per process). */
export function sqsClient(): SQSClient {
  // Queue URLs name the host the queue was made on; the configured endpoint (AWS_ENDPOINT_URL_SQS) wins.
  sqs ??= counted(new SQSClient({ maxAttempts: 5, useQueueUrlAsEndpoint: false }), 'SQS');
  return sqs;
}

/** The Step Functions client (one per process). */
export function sfnClient(): SFNClient {
  sfn ??= counted(new SFNClient({ maxAttempts: 5 }), 'SFN');
  return sfn;
}

/**
 * The S3 client (one per process). Path-style addressing when an endpoint is configured (the embedded S3
 * on 127.0.0.1 has no DNS for `<bucket>.host`); virtual-hosted in AWS.
 */
export function s3Client(): S3Client {
  s3 ??= counted(
    new S3Client({ maxAttempts: 5, forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3) }),
    'S3',
  );
  return s3;
}

/** Reads a required environment variable, failing loudly with its name. */
export function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is required`);
  return v;
}
