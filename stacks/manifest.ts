/**
 * The one description of Sortie's cloud resources.
 *
 * `stacks/` turns it into CloudFormation (through SST v2 / aws-cdk-lib) and `local/` turns it into
 * tables, queues, state machines and routes on the embedded backend. Nothing is declared twice:
 * a table, route or function added here exists in both runtimes.
 */

/** Attribute names of the single table's keys and indexes. */
export const TABLE = {
  /** Logical name; the physical name comes from env `SORTIE_TABLE` at runtime. */
  name: 'sortie',
  /** Partition key: `<sessionId>#<uid>` for every entity, `<sessionId>` for the session itself. */
  partitionKey: 'pk',
  indexes: {
    /** Children of a manager (pilots of a pmgr, units of a umgr), ordered by last change: list and poll. */
    byParent: { name: 'byParent', partitionKey: 'parent', sortKey: 'changed', projection: 'ALL' },
    /** Units bound to a pilot: the sweep when a pilot ends, and claims. */
    // Keys only: a unit's state changes then never touch this index (it costs write units only when a
    // unit is bound or unbound), and the rare reader (a pilot's end) fetches the items it finds.
    byPilot: { name: 'byPilot', partitionKey: 'pilotKey', sortKey: 'pk', projection: 'KEYS_ONLY' },
  },
  /**
   * DynamoDB types (`S` string, `N` number) of every key attribute above: a table and its indexes cannot
   * be created without them. All are strings; `changed` is `<ISO-8601 UTC time>#<uid>` (store/keys.ts),
   * whose fixed-width time prefix makes string order time order.
   */
  attributeTypes: { pk: 'S', parent: 'S', changed: 'S', pilotKey: 'S' },
  /**
   * TTL attribute (epoch seconds): request-token claims carry it (store/requests.ts) and so do per-minute
   * quota counters (store/quotas.ts), which no index lists, so a session's purge could not find them.
   * Nothing else expires. The code treats a claim past it as gone, since DynamoDB deletes late and
   * dynalite never.
   */
  timeToLive: 'expires',
} as const;

/**
 * Queues that exist for the app's lifetime. Per-pilot unit queues are created at submit time and are
 * read only by the agent API (`POST /agent/pull`): agents hold no AWS credentials at all.
 */
export const QUEUES = {
  /** Dead letters of per-pilot unit queues: messages that no agent could take. */
  unitsDlq: { name: 'sortie-units-dlq' },
  /**
   * Event-triggered submissions: a message `{sessionId, umgr, descriptions}` (sent by a user, an
   * EventBridge rule or an S3-triggered process with sqs:SendMessage rights) submits units as the API does.
   */
  submissions: { name: 'sortie-submissions' },
  /** Submissions that are invalid (with the reason as an attribute) or kept failing. */
  submissionsDlq: { name: 'sortie-submissions-dlq' },
} as const;

/** SQS → Lambda event source mappings, as Lambda runs them: batches, partial batch failures, a DLQ. */
export const EVENT_SOURCES = [
  {
    queue: 'submissions',
    deadLetterQueue: 'submissionsDlq',
    function: 'submitEvents',
    batchSize: 10,
    maxReceiveCount: 3,
  },
] as const satisfies readonly {
  queue: keyof typeof QUEUES;
  deadLetterQueue: keyof typeof QUEUES;
  function: FunctionName;
  batchSize: number;
  maxReceiveCount: number;
}[];

/**
 * The bucket that carries TRANSFER directives between the user's machine and the resource. Objects are
 * `<sessionId>/…`: the SDK and the agents reach them only through presigned URLs that the API issues,
 * and a lifecycle rule expires them, so a session nobody closes with cleanup leaves nothing for ever.
 */
export const BUCKET = {
  /** Logical name; the physical name comes from env `SORTIE_BUCKET` at runtime. */
  name: 'sortie-transfers',
  /** Days after which the lifecycle rule deletes an object (and aborts an unfinished multipart upload). */
  expireDays: 7,
} as const;

/** Prefix of the per-pilot unit queues (`sortie-<session>-<pilot>`); IAM scopes agents to it. */
export const PILOT_QUEUE_PREFIX = 'sortie-';

/** Lambda functions: name → module under functions/ and its exported handler. */
export const FUNCTIONS = {
  api: { handler: 'functions/api/handler.handler', memoryMB: 512, timeoutSeconds: 29 },
  agentApi: { handler: 'functions/callbacks/handler.handler', memoryMB: 512, timeoutSeconds: 29 },
  launch: { handler: 'functions/pilot/launch.handler', memoryMB: 512, timeoutSeconds: 120 },
  awaitAgent: { handler: 'functions/pilot/await-agent.handler', memoryMB: 256, timeoutSeconds: 30 },
  checkJob: { handler: 'functions/pilot/check-job.handler', memoryMB: 512, timeoutSeconds: 90 },
  finalize: { handler: 'functions/pilot/finalize.handler', memoryMB: 512, timeoutSeconds: 300 },
  submitEvents: { handler: 'functions/events/submit.handler', memoryMB: 512, timeoutSeconds: 60 },
  // Finalizes pilots one by one (each like a Finalize step, up to ~1 min against an unanswering site).
  reconcile: { handler: 'functions/pilot/reconcile.handler', memoryMB: 512, timeoutSeconds: 900 },
} as const;
export type FunctionName = keyof typeof FUNCTIONS;

/**
 * Functions run on a schedule (an EventBridge rule in AWS, a timer in the embedded backend). The
 * reconciler ends pilots whose execution ended without finalizing them and sweeps their units; a pilot
 * that needs it waits at most this long after its execution died.
 */
export const SCHEDULES = [{ function: 'reconcile', rateMinutes: 5 }] as const satisfies readonly {
  function: FunctionName;
  rateMinutes: number;
}[];

/** HTTP API routes (API Gateway HTTP API, payload format 2.0): `METHOD path` → function. */
export const ROUTES: Record<string, FunctionName> = {
  /** The web dashboard's page (no data in it; it reads a session with that session's token). */
  'GET /dashboard': 'api',
  'POST /sessions': 'api',
  'GET /sessions/{sid}': 'api',
  'POST /sessions/{sid}/reconnect': 'api',
  'POST /sessions/{sid}/close': 'api',
  'POST /sessions/{sid}/contexts': 'api',
  'GET /sessions/{sid}/contexts': 'api',
  'POST /sessions/{sid}/keys': 'api',
  'POST /sessions/{sid}/resources': 'api',
  'GET /sessions/{sid}/resources': 'api',
  'GET /sessions/{sid}/resources/{key}': 'api',
  'POST /sessions/{sid}/pmgrs': 'api',
  'GET /sessions/{sid}/pmgrs': 'api',
  'POST /sessions/{sid}/pilots': 'api',
  'GET /sessions/{sid}/pilots': 'api',
  'GET /sessions/{sid}/pilots/{pid}': 'api',
  'POST /sessions/{sid}/pilots/cancel': 'api',
  'POST /sessions/{sid}/umgrs': 'api',
  'GET /sessions/{sid}/umgrs': 'api',
  'GET /sessions/{sid}/umgrs/{umid}': 'api',
  'POST /sessions/{sid}/umgrs/{umid}/pilots': 'api',
  'POST /sessions/{sid}/umgrs/{umid}/pilots/remove': 'api',
  'POST /sessions/{sid}/umgrs/{umid}/units': 'api',
  'GET /sessions/{sid}/umgrs/{umid}/units': 'api',
  'POST /sessions/{sid}/units/cancel': 'api',
  'POST /sessions/{sid}/endpoints': 'api',
  'GET /sessions/{sid}/endpoints': 'api',
  'POST /sessions/{sid}/endpoints/{eid}/revoke': 'api',
  /** Endpoint routes: the endpoint token only (functions/api/endpoints.ts). */
  'GET /endpoint': 'api',
  'POST /endpoint/poll': 'api',
  'POST /endpoint/answer': 'api',
  /** Presigned URLs for a unit's TRANSFER files (upload before submit, download after DONE). */
  'POST /sessions/{sid}/transfers': 'api',
  'POST /agent/activate': 'agentApi',
  'POST /agent/heartbeat': 'agentApi',
  'POST /agent/commands': 'agentApi',
  'POST /agent/pull': 'agentApi',
  'POST /agent/states': 'agentApi',
  'POST /agent/started': 'agentApi',
  'POST /agent/done': 'agentApi',
  /** Presigned URLs for the agent's side of TRANSFER directives (it holds no AWS credentials). */
  'POST /agent/transfers': 'agentApi',
};

/** The pilot state machine: ASL (JSONPath) file and the substitutions its `${...}` names take. */
export const STATE_MACHINES = {
  pilot: {
    name: 'sortie-pilot',
    aslFile: 'stacks/pilot.asl.json',
    /** `${Name}` in the ASL → function whose ARN (AWS) or name (local) replaces it. */
    substitutions: {
      LaunchFunction: 'launch',
      AwaitAgentFunction: 'awaitAgent',
      CheckJobFunction: 'checkJob',
      FinalizeFunction: 'finalize',
    },
  },
} as const satisfies Record<
  string,
  { name: string; aslFile: string; substitutions: Record<string, FunctionName> }
>;

/** Environment variables every function reads (set by stacks/ in AWS and by local/ in the embedded backend). */
export const ENV = {
  table: 'SORTIE_TABLE',
  stateMachineArn: 'SORTIE_PILOT_STATE_MACHINE_ARN',
  apiUrl: 'SORTIE_API_URL',
  unitsDlqUrl: 'SORTIE_UNITS_DLQ_URL',
  /** Where event-triggered submissions that cannot ever succeed are parked, with the reason. */
  submissionsDlqUrl: 'SORTIE_SUBMISSIONS_DLQ_URL',
  /** Redrive target of the per-pilot queues. */
  unitsDlqArn: 'SORTIE_UNITS_DLQ_ARN',
  secretKey: 'SORTIE_SECRET_KEY',
  /** Agent heartbeat budget (the Active state's HeartbeatSeconds); default 60. */
  heartbeatSeconds: 'SORTIE_HEARTBEAT_SECONDS',
  /** Time an agent has to activate after launch (WaitActive's TimeoutSeconds); default 600. */
  activateTimeoutSeconds: 'SORTIE_ACTIVATE_TIMEOUT_SECONDS',
  /** How often a pilot's batch job is checked while its agent has not activated; default 30. */
  jobCheckSeconds: 'SORTIE_JOB_CHECK_SECONDS',
  /** Pilots one session may create per minute (default 100): a runaway script cannot flood a site's queue. */
  pilotsPerMinute: 'SORTIE_PILOTS_PER_MINUTE',
  /** Seconds a pull's units stay leased to the agent that pulled them unstarted; default 300. */
  leaseSeconds: 'SORTIE_LEASE_SECONDS',
  /** Seconds a Lambda container keeps a session's usage counts before writing them (functions/lib/usage.ts). */
  usageFlushSeconds: 'SORTIE_USAGE_FLUSH_SECONDS',
  /** The TRANSFER bucket (`BUCKET`). */
  bucket: 'SORTIE_BUCKET',
  /** Seconds a presigned transfer URL stays valid; default 3600. */
  transferUrlSeconds: 'SORTIE_TRANSFER_URL_SECONDS',
  /**
   * Seconds between a close with cleanup and the reconciler's purge of the session's records (default
   * 86400: `sortie report` and the dashboard keep working for a day after a script closes its session).
   */
  cleanupRetentionSeconds: 'SORTIE_CLEANUP_RETENTION_SECONDS',
  /** Records one reconciler run deletes at most over all purged sessions (default 10000). */
  purgeBudgetItems: 'SORTIE_PURGE_BUDGET_ITEMS',
  /**
   * Milliseconds a container may answer a token check of the per-unit routes from a session or pilot it
   * read before (functions/lib/auth.ts; default 1000, 0 always reads). Its own writes drop it at once.
   */
  tokenCacheMs: 'SORTIE_TOKEN_CACHE_MS',
  /** Path of the agent bundle the launch function ships (built by esbuild). */
  agentBundle: 'SORTIE_AGENT_BUNDLE',
} as const;

/**
 * Custom metrics the Lambdas publish (CloudWatch Embedded Metric Format, through Powertools Metrics):
 * namespace, the one dimension every metric carries (`service`), and the metric names. stacks/Monitoring.ts
 * graphs exactly these; functions/lib/metrics.ts emits exactly these.
 */
export const METRICS = {
  namespace: 'Sortie',
  service: 'sortie',
  names: {
    unitsSubmitted: 'UnitsSubmitted',
    unitsClaimed: 'UnitsClaimed',
    claimsRefused: 'ClaimsRefused',
    unitsStarted: 'UnitsStarted',
    unitsDone: 'UnitsDone',
    unitsFailed: 'UnitsFailed',
    unitsCanceled: 'UnitsCanceled',
    /** Units a pilot's end sent back to be scheduled again (RP's rescheduling of restartable units). */
    unitsRescheduled: 'UnitsRescheduled',
    /** Units moved by a pilot's end (Finalize or the reconciler); one datapoint per sweep, so Average = per pilot end. */
    unitsSwept: 'UnitsSwept',
    pilotsSubmitted: 'PilotsSubmitted',
    pilotsActive: 'PilotsActive',
    pilotsDone: 'PilotsDone',
    pilotsFailed: 'PilotsFailed',
    pilotsCanceled: 'PilotsCanceled',
  },
} as const;

/** A metric name of {@link METRICS}. */
export type MetricName = (typeof METRICS.names)[keyof typeof METRICS.names];
