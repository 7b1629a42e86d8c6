/**
 * What the stacks share: physical names, the functions built from the manifest, their environment and
 * the rights every function gets. Kept apart from the stacks so that each stack file only wires its
 * own resources.
 */
import { ArnFormat } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Bucket } from 'aws-cdk-lib/aws-s3';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Function as SstFunction, type Stack } from 'sst/constructs';
import { DEFAULT_PURGE_BUDGET_ITEMS, parseRetentionSeconds } from '../core/purge.ts';
import {
  ENV,
  EVENT_SOURCES,
  FUNCTIONS,
  type FunctionName,
  PILOT_QUEUE_PREFIX,
  ROUTES,
  SCHEDULES,
  STATE_MACHINES,
} from './manifest.ts';

/** The environment every function gets: one value for each name in the manifest's `ENV`. */
export type SortieEnv = Record<(typeof ENV)[keyof typeof ENV], string>;

/** The Data stack's resources that every function's environment and rights refer to. */
export interface SortieData {
  /** The single table (`TABLE`). */
  readonly table: Table;
  /** Dead letters of the per-pilot unit queues (`QUEUES.unitsDlq`). */
  readonly unitsDlq: Queue;
  /** Refused or failing event-triggered submissions (`QUEUES.submissionsDlq`). */
  readonly submissionsDlq: Queue;
  /** The TRANSFER bucket (`BUCKET`). */
  readonly bucket: Bucket;
  /** The value of `SORTIE_SECRET_KEY`, as a CloudFormation dynamic reference (see Data.ts). */
  readonly secretKeyValue: string;
}

/**
 * Stage-qualified physical name (`prod-sortie-pilot`), so that two stages can share an account and
 * region. The stage goes first on purpose: `prod-sortie-units-dlq` does not start with
 * `PILOT_QUEUE_PREFIX`, so the runtime queue rights below can never delete the DLQ.
 */
export function physicalName(stack: Stack, name: string): string {
  return `${stack.stage}-${name}`;
}

/**
 * ARN of the pilot state machine, computed from its fixed name instead of read from the resource.
 * The pilot functions sit inside that state machine, so an attribute reference would be a cycle;
 * the API stack also gets it without depending on the Pilots stack (which depends on the API's URL).
 */
export function pilotStateMachineArn(stack: Stack): string {
  return stack.formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: physicalName(stack, STATE_MACHINES.pilot.name),
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** ARN pattern of every execution of the pilot state machine (for Describe/StopExecution). */
export function pilotExecutionsArn(stack: Stack): string {
  return stack.formatArn({
    service: 'states',
    resource: 'execution',
    resourceName: `${physicalName(stack, STATE_MACHINES.pilot.name)}:*`,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** Builds the `ENV` values; the record type makes a name added to the manifest a compile error here. */
export function sortieEnv(stack: Stack, data: SortieData, apiUrl: string): SortieEnv {
  return {
    [ENV.table]: data.table.tableName,
    [ENV.stateMachineArn]: pilotStateMachineArn(stack),
    [ENV.apiUrl]: apiUrl,
    [ENV.unitsDlqUrl]: data.unitsDlq.queueUrl,
    [ENV.unitsDlqArn]: data.unitsDlq.queueArn,
    [ENV.submissionsDlqUrl]: data.submissionsDlq.queueUrl,
    [ENV.secretKey]: data.secretKeyValue,
    [ENV.heartbeatSeconds]: '60',
    [ENV.activateTimeoutSeconds]: '600',
    [ENV.jobCheckSeconds]: '30',
    [ENV.pilotsPerMinute]: '100',
    [ENV.leaseSeconds]: '300',
    [ENV.usageFlushSeconds]: '60',
    [ENV.tokenCacheMs]: '1000',
    [ENV.bucket]: data.bucket.bucketName,
    [ENV.transferUrlSeconds]: '3600',
    // A deployment setting: taken from the deploying shell, checked here so that a typo fails the deploy.
    [ENV.cleanupRetentionSeconds]: String(parseRetentionSeconds(process.env[ENV.cleanupRetentionSeconds])),
    [ENV.purgeBudgetItems]: String(DEFAULT_PURGE_BUDGET_ITEMS),
    // Copied next to the launch function's code (see Pilots.ts); `npm run build:agent` makes it.
    [ENV.agentBundle]: '/var/task/agent.cjs',
  };
}

/** Manifest functions behind HTTP routes: they live in the Api stack. */
export const ROUTED_FUNCTIONS: readonly FunctionName[] = [...new Set(Object.values(ROUTES))];

/** Manifest functions the pilot state machine invokes: they live in the Pilots stack. */
export const PILOT_FUNCTIONS: readonly FunctionName[] = [
  ...new Set(Object.values(STATE_MACHINES.pilot.substitutions)),
];

/** Manifest functions fed by SQS event sources: they live in the Events stack. */
export const EVENT_FUNCTIONS: readonly FunctionName[] = [...new Set(EVENT_SOURCES.map((e) => e.function))];

/** Manifest functions run on a schedule (the reconciler): they live in the Pilots stack, beside Finalize. */
export const SCHEDULED_FUNCTIONS: readonly FunctionName[] = [...new Set(SCHEDULES.map((s) => s.function))];

/**
 * Fails the synth when a manifest function has no stack or two: each function is created by exactly one
 * stack (the one that uses it), and a function nothing uses would be silently left out.
 *
 * @throws Error naming the function that is unplaced or placed twice.
 */
export function checkFunctionPlacement(): void {
  for (const name of Object.keys(FUNCTIONS) as FunctionName[]) {
    const homes = [ROUTED_FUNCTIONS, PILOT_FUNCTIONS, EVENT_FUNCTIONS, SCHEDULED_FUNCTIONS].filter((home) =>
      home.includes(name),
    ).length;
    if (homes !== 1) {
      throw new Error(
        `stacks/manifest.ts: function '${name}' must be used by exactly one of ROUTES, STATE_MACHINES.pilot, EVENT_SOURCES or SCHEDULES (found ${homes})`,
      );
    }
  }
}

/**
 * What a function does with the per-pilot unit queues, which are created at runtime and so can only
 * be granted by name prefix. Keyed by every manifest function so that a new one must be placed here.
 * - `manage`: the API and the pilot functions create queues at submit/launch, send units, read the
 *   DLQ's ARN for the redrive policy, and delete queues when a pilot ends.
 * - `consume`: the agent API serves `POST /agent/pull`, so it receives, deletes and re-times messages.
 */
const QUEUE_ROLE: Record<FunctionName, 'manage' | 'consume'> = {
  api: 'manage',
  agentApi: 'consume',
  launch: 'manage',
  awaitAgent: 'manage',
  checkJob: 'manage',
  finalize: 'manage',
  // Event-triggered submissions send units to pilot queues, as the API does.
  submitEvents: 'manage',
  // The reconciler runs Finalize's sweep: it re-sends units to other pilots' queues and deletes queues.
  reconcile: 'manage',
};

const QUEUE_ACTIONS = {
  // SendMessageBatch/DeleteMessageBatch are authorized by SendMessage/DeleteMessage in IAM.
  manage: [
    'sqs:CreateQueue',
    'sqs:DeleteQueue',
    'sqs:GetQueueUrl',
    'sqs:GetQueueAttributes',
    'sqs:SetQueueAttributes',
    'sqs:TagQueue',
    'sqs:SendMessage',
  ],
  consume: [
    'sqs:GetQueueUrl',
    'sqs:GetQueueAttributes',
    'sqs:ReceiveMessage',
    'sqs:DeleteMessage',
    'sqs:ChangeMessageVisibility',
  ],
} as const;

/** The agent bundle, relative to the project root (agent/bundle.ts writes it). */
export const AGENT_BUNDLE_FILE = '.sortie/agent.cjs';

/**
 * Creates a manifest function (handler path, memory, timeout from `FUNCTIONS`; runtime, architecture
 * and ESM come from the app's default function props) with the rights every function needs: the table
 * and its indexes, and the per-pilot queues in its {@link QUEUE_ROLE}.
 */
export function sortieFunction(
  stack: Stack,
  name: FunctionName,
  env: SortieEnv,
  data: SortieData,
): SstFunction {
  const spec = FUNCTIONS[name];
  const fn = new SstFunction(stack, name, {
    handler: spec.handler,
    memorySize: spec.memoryMB,
    timeout: spec.timeoutSeconds,
    environment: env,
    // The launch function ships the agent bundle (esbuild output of agent/, `npm run build:agent`) next
    // to its code, where ENV.agentBundle points.
    ...(name === 'launch' ? { copyFiles: [{ from: AGENT_BUNDLE_FILE, to: 'agent.cjs' }] } : {}),
  });
  data.table.grantReadWriteData(fn);
  // The API and the agent API presign URLs on the TRANSFER bucket (a URL carries its signer's rights)
  // and the API deletes a session's objects at close; no other function touches it.
  if (name === 'api' || name === 'agentApi') data.bucket.grantReadWrite(fn);
  if (name === 'api') data.bucket.grantDelete(fn);
  const role = QUEUE_ROLE[name];
  fn.addToRolePolicy(
    new PolicyStatement({
      actions: [...QUEUE_ACTIONS[role]],
      resources: [
        stack.formatArn({
          service: 'sqs',
          resource: `${PILOT_QUEUE_PREFIX}*`,
          arnFormat: ArnFormat.NO_RESOURCE_NAME,
        }),
      ],
    }),
  );
  if (role === 'manage') {
    // CreateQueue needs the DLQ's ARN for RedrivePolicy; functions look it up from SORTIE_UNITS_DLQ_URL.
    fn.addToRolePolicy(
      new PolicyStatement({ actions: ['sqs:GetQueueAttributes'], resources: [data.unitsDlq.queueArn] }),
    );
  }
  return fn;
}

/** Creates each named manifest function, keyed by its manifest name. */
export function sortieFunctions(
  stack: Stack,
  names: readonly FunctionName[],
  env: SortieEnv,
  data: SortieData,
): Map<FunctionName, SstFunction> {
  return new Map(names.map((name) => [name, sortieFunction(stack, name, env, data)]));
}

/**
 * The function of a manifest name from a map built by {@link sortieFunctions}.
 *
 * @throws Error when the stack did not create it (a placement bug, caught at synth).
 */
export function functionOf(fns: ReadonlyMap<FunctionName, SstFunction>, name: FunctionName): SstFunction {
  const fn = fns.get(name);
  if (!fn) throw new Error(`function '${name}' is not created by this stack`);
  return fn;
}
