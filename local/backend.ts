/**
 * The embedded backend: what LocalStack would give Sortie, without Docker, in one Node process on
 * 127.0.0.1 — DynamoDB (dynalite, or Amazon's DynamoDB Local), SQS and S3 (fauxqs), a Step Functions API
 * running the same ASL file that stacks/ deploys, and the HTTP API routes of stacks/manifest.ts mapped
 * to the same handlers. Handlers and agents find it only through environment variables
 * (`AWS_ENDPOINT_URL_*`, `SORTIE_*`): nothing in functions/ or agent/ knows it runs locally.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateStateMachineCommand, SFNClient } from '@aws-sdk/client-sfn';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { buildAgentBundle } from '../agent/bundle.ts';
import { DEFAULT_PURGE_BUDGET_ITEMS, parseRetentionSeconds } from '../core/purge.ts';
import { DEFAULT_LEASE_SECONDS } from '../core/reconcile.ts';
import { releaseHolds } from '../functions/lib/changes.ts';
import { BUCKET, ENV, EVENT_SOURCES, QUEUES, SCHEDULES, STATE_MACHINES, TABLE } from '../stacks/manifest.ts';
import { SESSION_ROUTE, sessionAuthFrom } from '../stacks/session-auth.ts';
import { createTable } from '../store/schema.ts';
import { type LocalDynamoDb, startDynalite, startDynamoDbLocal } from './dynamodb.ts';
import { type SourceQueue, startEventSources } from './event-sources.ts';
import { startHttpApi } from './http-api.ts';
import { type JwtAuthorizerConfig, jwtAuthorizer } from './jwt-authorizer.ts';
import { invoke } from './lambdas.ts';
import { type CapturedMetrics, captureMetrics } from './metrics.ts';
import { type Recovery, recoverPilots } from './recover.ts';
import { guardS3 } from './s3.ts';
import type { S3Faults } from './s3-faults.ts';
import { startSchedules } from './schedules.ts';
import { startLocalStepFunctions } from './stepfunctions/index.ts';

/** Options of {@link startBackend}. */
export interface BackendOptions {
  /** Port of the HTTP API (default: a free port). */
  port?: number;
  /** DynamoDB engine: in-process dynalite (default) or Amazon's DynamoDB Local (needs Java 17). */
  dynamodb?: 'dynalite' | 'dynamodb-local';
  /** Agent heartbeat budget in seconds (HeartbeatSeconds of the Active state); default 60. */
  heartbeatSeconds?: number;
  /** Pilots one session may create per minute; default 100. */
  pilotsPerMinute?: number;
  /**
   * A JWT authorizer on `POST /sessions`, as a deployment has it; default: from env SORTIE_JWT_ISSUER and
   * SORTIE_JWT_AUDIENCE when set (see stacks/session-auth.ts), else none (the API listens on 127.0.0.1 only).
   */
  sessionAuth?: JwtAuthorizerConfig;
  /** Seconds an agent has to activate after launch; default 600. */
  activateTimeoutSeconds?: number;
  /** Seconds between batch-job checks while a pilot waits for its agent; default 30. */
  jobCheckSeconds?: number;
  /**
   * Seconds a pull's units stay leased to the agent that pulled them; unstarted by then, the reconciler
   * returns them to the pilot's queue. Default 300 (core/reconcile.ts DEFAULT_LEASE_SECONDS).
   */
  leaseSeconds?: number;
  /**
   * Seconds between runs of each scheduled function (the reconciler); default: the manifest's rate, as
   * the EventBridge rule runs it in AWS. 0 runs none (tests that drive the reconciler themselves).
   */
  scheduleSeconds?: number;
  /**
   * Directory that keeps everything across restarts: the DynamoDB data and the sealing key (a 0600 file).
   * A backend started again on it rebuilds its queues and pilot executions from the table (see
   * local/recover.ts), so agents that rode out the outage carry on. In memory when absent.
   */
  dataDir?: string;
  /**
   * Seconds between a session's close with cleanup and the reconciler's purge of its records; default
   * 86400 (core/purge.ts). Tests set 0.
   */
  cleanupRetentionSeconds?: number;
  /** Records one reconciler run deletes at most; default 10000 (core/purge.ts). */
  purgeBudgetItems?: number;
  /** Seconds a presigned TRANSFER URL stays valid; default 3600. */
  transferUrlSeconds?: number;
  /** Faults of the embedded S3 for tests (read per request, so a test may change them while it runs). */
  s3Faults?: S3Faults;
  /** Log level of the handlers (Powertools); default WARN so that a terminal stays readable. */
  logLevel?: string;
}

/** A running embedded backend. */
export interface Backend {
  apiUrl: string;
  /** The environment a separate process (SDK, CLI) needs to use this backend. */
  env: Record<string, string>;
  /** URLs of the manifest's queues (e.g. `submissions`, for event-triggered submission). */
  queueUrls: Record<keyof typeof QUEUES, string>;
  /** What a durable backend picked up again at start (live pilots, units queued again). */
  recovered: Recovery;
  /** The CloudWatch metrics (EMF) the handlers published, captured in memory. */
  metrics: CapturedMetrics;
  /** Stops every engine; safe to call twice. */
  close(): Promise<void>;
}

const root = path.resolve(import.meta.dirname, '..');

/**
 * Creates the manifest's queues; a queue that feeds an event source gets its DLQ as redrive target
 * (maxReceiveCount from the mapping), as stacks/ declares it.
 */
async function createQueues(sqs: SQSClient): Promise<Record<keyof typeof QUEUES, SourceQueue>> {
  const out = {} as Record<keyof typeof QUEUES, SourceQueue>;
  const names = Object.keys(QUEUES) as (keyof typeof QUEUES)[];
  const redrive = new Map<string, { dlq: keyof typeof QUEUES; max: number }>(
    EVENT_SOURCES.map((e) => [e.queue, { dlq: e.deadLetterQueue, max: e.maxReceiveCount }]),
  );
  // Dead-letter queues first: their ARNs go into the others' redrive policies.
  for (const key of [...names.filter((k) => !redrive.has(k)), ...names.filter((k) => redrive.has(k))]) {
    const r = redrive.get(key);
    const target = r ? out[r.dlq] : undefined;
    const created = await sqs.send(
      new CreateQueueCommand({
        QueueName: QUEUES[key].name,
        ...(r && target
          ? {
              Attributes: {
                VisibilityTimeout: '30',
                RedrivePolicy: JSON.stringify({
                  deadLetterTargetArn: target.arn,
                  maxReceiveCount: String(r.max),
                }),
              },
            }
          : {}),
      }),
    );
    const url = created.QueueUrl ?? '';
    const attrs = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
    );
    out[key] = { url, arn: attrs.Attributes?.QueueArn ?? '' };
  }
  return out;
}

/**
 * The sealing key of a durable backend: read from `<dataDir>/secret.key`, or made once and written there
 * readable by its owner only. Contexts sealed before a restart must open after it.
 */
function sealingKey(dataDir: string): string {
  const file = path.join(dataDir, 'secret.key');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32).toString('base64url');
  // 'wx': never overwrite a key another start wrote meanwhile.
  writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
  return key;
}

/** Error with one line saying what to do, for the CLI to print instead of a stack trace. */
export class BackendStartError extends Error {
  override name = 'BackendStartError';
}

/** The deployment's JWT settings when the environment names them (an IAM choice has no local equivalent). */
function jwtFromEnv(): JwtAuthorizerConfig | undefined {
  const auth = sessionAuthFrom(process.env, true);
  return auth.type === 'jwt' ? auth : undefined;
}

/** Starts the embedded backend and points this process's environment at it. */
export async function startBackend(opts: BackendOptions = {}): Promise<Backend> {
  const closers: (() => Promise<void>)[] = [];
  const metrics = captureMetrics();
  closers.push(async () => metrics.close());
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => {});
  };
  try {
    // Local credentials only: never let the embedded backend's clients pick up a real AWS profile.
    const base: Record<string, string> = {
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      POWERTOOLS_LOG_LEVEL: opts.logLevel ?? process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
      // Node 20 is what these machines run; the SDK's notice about Node 22 is in the README.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    Object.assign(process.env, base);
    delete process.env.AWS_SESSION_TOKEN;
    delete process.env.AWS_PROFILE;

    let ddb: LocalDynamoDb;
    try {
      const dbDir = opts.dataDir ? path.join(opts.dataDir, 'dynamodb') : undefined;
      if (dbDir) mkdirSync(dbDir, { recursive: true });
      const dbOpts = dbDir ? { path: dbDir } : {};
      ddb =
        opts.dynamodb === 'dynamodb-local' ? await startDynamoDbLocal(dbOpts) : await startDynalite(dbOpts);
    } catch (err) {
      throw new BackendStartError(
        `cannot start DynamoDB (${opts.dynamodb ?? 'dynalite'}): ${(err as Error).message}`,
      );
    }
    closers.push(() => ddb.close());
    process.env.AWS_ENDPOINT_URL_DYNAMODB = ddb.endpoint;

    const { buildApp } = await import('fauxqs');
    // fauxqs names queue URLs after `host` (sqs.<region>.<host>): 'localhost' keeps them valid URLs; it listens on 127.0.0.1 only.
    const sqsApp = buildApp({ logger: false, host: 'localhost' });
    // The same app serves S3 (path-style): the TRANSFER bucket, with presigned URLs that expire.
    guardS3(sqsApp, opts.s3Faults ?? {});
    await sqsApp.listen({ port: 0, host: '127.0.0.1' });
    closers.push(async () => {
      await sqsApp.close();
    });
    const sqsAddr = sqsApp.server.address();
    if (!sqsAddr || typeof sqsAddr === 'string')
      throw new BackendStartError('SQS emulator did not bind a port');
    process.env.AWS_ENDPOINT_URL_SQS = `http://127.0.0.1:${sqsAddr.port}`;
    process.env.AWS_ENDPOINT_URL_S3 = process.env.AWS_ENDPOINT_URL_SQS;
    const bucket = `${BUCKET.name}-local`;
    await new S3Client({ forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: bucket }));

    const tableName = `${TABLE.name}-local`;
    await createTable(new DynamoDBClient({}), tableName);
    const sqs = new SQSClient({ useQueueUrlAsEndpoint: false });
    const queues = await createQueues(sqs);

    const sfn = await startLocalStepFunctions({ invokeLambda: invoke, sqs });
    closers.push(() => sfn.close());
    process.env.AWS_ENDPOINT_URL_SFN = sfn.endpoint;
    const machine = STATE_MACHINES.pilot;
    let definition = readFileSync(path.join(root, machine.aslFile), 'utf8');
    // Locally a function's "ARN" is its manifest name; the Lambda adapter resolves either.
    for (const [name, fn] of Object.entries(machine.substitutions))
      definition = definition.replaceAll(`\${${name}}`, fn);
    const sm = await new SFNClient({}).send(
      new CreateStateMachineCommand({
        name: machine.name,
        definition,
        roleArn: 'arn:aws:iam::000000000000:role/sortie-local',
      }),
    );

    let api: Awaited<ReturnType<typeof startHttpApi>>;
    try {
      const auth = opts.sessionAuth ?? jwtFromEnv();
      api = await startHttpApi({
        ...(opts.port !== undefined ? { port: opts.port } : {}),
        ...(auth ? { authorizers: { [SESSION_ROUTE]: jwtAuthorizer(auth) } } : {}),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new BackendStartError(
          `port ${opts.port} on 127.0.0.1 is taken: stop what uses it or choose another with --port`,
        );
      }
      throw err;
    }
    closers.push(() => api.close());
    // Before the API closes (closers run last first): held list requests stop re-reading the table.
    closers.push(async () => releaseHolds());

    const own: Record<string, string> = {
      [ENV.table]: tableName,
      [ENV.stateMachineArn]: sm.stateMachineArn ?? '',
      [ENV.apiUrl]: api.url,
      [ENV.unitsDlqUrl]: queues.unitsDlq.url,
      [ENV.unitsDlqArn]: queues.unitsDlq.arn,
      [ENV.submissionsDlqUrl]: queues.submissionsDlq.url,
      [ENV.secretKey]: opts.dataDir ? sealingKey(opts.dataDir) : randomBytes(32).toString('base64url'),
      [ENV.agentBundle]: await buildAgentBundle(),
      [ENV.heartbeatSeconds]: String(opts.heartbeatSeconds ?? 60),
      [ENV.activateTimeoutSeconds]: String(opts.activateTimeoutSeconds ?? 600),
      [ENV.jobCheckSeconds]: String(opts.jobCheckSeconds ?? 30),
      [ENV.pilotsPerMinute]: String(opts.pilotsPerMinute ?? 100),
      [ENV.leaseSeconds]: String(opts.leaseSeconds ?? DEFAULT_LEASE_SECONDS),
      [ENV.bucket]: bucket,
      [ENV.transferUrlSeconds]: String(opts.transferUrlSeconds ?? 3600),
      [ENV.cleanupRetentionSeconds]: String(
        opts.cleanupRetentionSeconds ?? parseRetentionSeconds(process.env[ENV.cleanupRetentionSeconds]),
      ),
      [ENV.purgeBudgetItems]: String(opts.purgeBudgetItems ?? DEFAULT_PURGE_BUDGET_ITEMS),
    };
    Object.assign(process.env, own);
    const events = startEventSources(sqs, queues);
    closers.push(() => events.close());
    // Before the schedules: the reconciler must not judge pilots whose executions are not restarted yet.
    const recovered = opts.dataDir ? await recoverPilots() : { pilots: 0, requeued: 0 };
    const schedules = startSchedules(SCHEDULES, opts.scheduleSeconds);
    closers.push(() => schedules.close());
    const env = {
      ...base,
      AWS_ENDPOINT_URL_DYNAMODB: ddb.endpoint,
      AWS_ENDPOINT_URL_SQS: process.env.AWS_ENDPOINT_URL_SQS ?? '',
      AWS_ENDPOINT_URL_SFN: sfn.endpoint,
      AWS_ENDPOINT_URL_S3: process.env.AWS_ENDPOINT_URL_S3 ?? '',
      ...own,
    };
    const queueUrls = Object.fromEntries(Object.entries(queues).map(([k, q]) => [k, q.url])) as Record<
      keyof typeof QUEUES,
      string
    >;
    return { apiUrl: api.url, env, queueUrls, recovered, metrics, close };
  } catch (err) {
    await close();
    throw err;
  }
}
