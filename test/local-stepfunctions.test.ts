/**
 * The local Step Functions server (local/stepfunctions), driven only through @aws-sdk/client-sfn and
 * client-sqs: the real pilot state machine (stacks/pilot.asl.json) with fake Lambdas, plus the generic
 * behaviours the pilot relies on (task tokens, heartbeats, timeouts, Retry/Catch, SQS callbacks, history).
 */

import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  CreateStateMachineCommand,
  DeleteStateMachineCommand,
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  DescribeStateMachineCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  ListExecutionsCommand,
  ListStateMachinesCommand,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENTS_PER_TURN } from '../core/job-checks.ts';
import { type LocalStepFunctions, startLocalStepFunctions } from '../local/stepfunctions/index.ts';
import { STATE_MACHINES } from '../stacks/manifest.ts';

const REGION = 'us-east-1';
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const ROOT = join(import.meta.dirname, '..');

type Lambda = (payload: unknown) => unknown;

/** Fake Lambdas by function name, plus a log of every invocation. */
const lambdas = new Map<string, Lambda>();
const invocations: { functionName: string; payload: unknown }[] = [];

async function invokeLambda(functionName: string, payload: unknown): Promise<unknown> {
  invocations.push({ functionName, payload });
  const fn = lambdas.get(functionName);
  if (!fn) {
    const error = new Error(`Function not found: ${functionName}`);
    error.name = 'Lambda.ResourceNotFoundException';
    throw error;
  }
  return fn(payload);
}

function namedError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

let sfnServer: LocalStepFunctions;
let sqsServer: { close(): Promise<unknown> };
let sfn: SFNClient;
let sqs: SQSClient;
let sqsEndpoint: string;

beforeAll(async () => {
  // fauxqs 1.9.2 exports buildApp (Fastify); its startFauxqs() would bind 0.0.0.0.
  const app = (await import('fauxqs')).buildApp({ logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  sqsServer = app;
  const address = app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('fauxqs did not bind');
  sqsEndpoint = `http://127.0.0.1:${address.port}`;
  sqs = new SQSClient({ endpoint: sqsEndpoint, region: REGION, credentials });
  sfnServer = await startLocalStepFunctions({ invokeLambda, sqs });
  sfn = new SFNClient({ endpoint: sfnServer.endpoint, region: REGION, credentials });
});

afterAll(async () => {
  await sfnServer?.close();
  sfn?.destroy();
  sqs?.destroy();
  await sqsServer?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls until `probe` returns a value (not undefined), or fails after `timeoutMs`. The bound only ends a
 * wait that will never succeed, so it is generous: a retry after a 1 s interval took over 8 s here with
 * coverage on and a load of 16 on two cores.
 */
async function eventually<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

let machineCounter = 0;

async function createMachine(
  definition: object,
  name = `m${++machineCounter}-${Date.now()}`,
): Promise<string> {
  const out = await sfn.send(
    new CreateStateMachineCommand({
      name,
      definition: JSON.stringify(definition),
      roleArn: 'arn:aws:iam::000000000000:role/test',
    }),
  );
  return out.stateMachineArn!;
}

async function start(stateMachineArn: string, input: unknown = {}, name?: string): Promise<string> {
  const out = await sfn.send(
    new StartExecutionCommand({ stateMachineArn, input: JSON.stringify(input), ...(name ? { name } : {}) }),
  );
  return out.executionArn!;
}

async function finished(executionArn: string, timeoutMs = 30_000): Promise<DescribeExecutionCommandOutput> {
  return eventually(async () => {
    const out = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    return out.status === 'RUNNING' ? undefined : out;
  }, timeoutMs);
}

async function history(executionArn: string): Promise<HistoryEvent[]> {
  const out = await sfn.send(new GetExecutionHistoryCommand({ executionArn, maxResults: 1000 }));
  return out.events ?? [];
}

/** The exception name a rejected SDK call carries. */
async function errorName(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    return (error as Error).name;
  }
  throw new Error('expected the call to fail');
}

/** Waits for the next invocation of `functionName` matching `filter` that was not taken yet. */
const taken = new Set<object>();
async function nextInvocation(functionName: string, filter: (payload: Record<string, unknown>) => boolean) {
  return eventually(() => {
    const hit = invocations.find(
      (call) =>
        call.functionName === functionName &&
        !taken.has(call) &&
        filter((call.payload ?? {}) as Record<string, unknown>),
    );
    if (hit) taken.add(hit);
    return hit?.payload as Record<string, unknown> | undefined;
  });
}

// Groups whose tests are independent run them concurrently: most of the time is spent waiting on 1 s timers.
describe.concurrent('stacks/pilot.asl.json on the local server', () => {
  // Substituted as the local backend does: `${Name}` → the function name the manifest gives it.
  const { aslFile, substitutions } = STATE_MACHINES.pilot;
  const LAUNCH = substitutions.LaunchFunction;
  const AWAIT = substitutions.AwaitAgentFunction;
  const FINALIZE = substitutions.FinalizeFunction;
  const CHECK = substitutions.CheckJobFunction;
  let pilotArn: string;

  beforeAll(async () => {
    const asl = readFileSync(join(ROOT, aslFile), 'utf8').replace(
      /\$\{(\w+)\}/g,
      (placeholder, key: string) => {
        const name = (substitutions as Record<string, string>)[key];
        if (!name) throw new Error(`no substitution for ${placeholder}`);
        return name;
      },
    );
    // 'p-flaky' meets a Lambda throttle, then a transient launch error (a dropped SSH connection), then launches.
    const flaky = ['Lambda.TooManyRequestsException', 'Sortie.Transient'];
    lambdas.set(LAUNCH, (p) => {
      const pid = (p as { pid: string }).pid;
      const error = pid === 'p-flaky' ? flaky.shift() : undefined;
      if (error) throw namedError(error, 'try again');
      return { jobId: `job-${pid}` };
    });
    // 'p-finalize-broken': Finalize keeps failing; the Failed step must still record the pilot's end.
    lambdas.set(FINALIZE, (p) => {
      const { pid, error } = p as { pid: string; error?: unknown };
      if (pid === 'p-finalize-broken' && !error)
        throw namedError('Lambda.ServiceException', 'finalize is down');
      return { state: error ? 'Failed' : 'Done' };
    });
    // The real await-agent function stores the token for the agent API and returns at once.
    lambdas.set(AWAIT, () => ({ stored: true }));
    // The real check-job function queries the batch system; this one says the job of 'p-never' ended.
    lambdas.set(CHECK, (p) => {
      const { pid, memo } = p as { pid: string; memo: { turn?: number } };
      // The real one backs off; this one counts its turns in the memo and waits a second more each time.
      if (pid === 'p-backoff') {
        const turn = (memo.turn ?? 0) + 1;
        return { waitSeconds: turn, memo: { turn } };
      }
      if (pid !== 'p-never') return { waitSeconds: 1, memo: {} };
      const err = new Error('batch job job-p-never ended before its agent became active: COMPLETED');
      err.name = 'Sortie.JobEnded';
      throw err;
    });
    const out = await sfn.send(
      new CreateStateMachineCommand({
        name: STATE_MACHINES.pilot.name,
        definition: asl,
        roleArn: 'arn:aws:iam::0:role/x',
      }),
    );
    pilotArn = out.stateMachineArn!;
  });

  const pilotInput = (pid: string, overrides: object = {}) => ({
    sid: 'session-1',
    pid,
    activateTimeoutSeconds: 5,
    jobCheckSeconds: 5,
    heartbeatSeconds: 1,
    activeTimeoutSeconds: 20,
    ...overrides,
  });
  const forPid = (pid: string, phase?: string) => (p: Record<string, unknown>) =>
    p.pid === pid && (phase === undefined || p.phase === phase);

  it('runs the happy path to SUCCEEDED while the agent heartbeats', async () => {
    // The budget comes from $.heartbeatSeconds; a generous one, because this test is about the pilot's
    // path. That heartbeats keep a task alive past its budget is tested below and, exactly, in
    // task-run.test.ts.
    const executionArn = await start(pilotArn, pilotInput('p-happy', { heartbeatSeconds: 60 }), 'p-happy');
    expect(await nextInvocation(LAUNCH, forPid('p-happy'))).toEqual({ sid: 'session-1', pid: 'p-happy' });

    const activate = await nextInvocation(AWAIT, forPid('p-happy', 'activate'));
    expect(activate.taskToken).toEqual(expect.any(String));
    await sfn.send(
      new SendTaskSuccessCommand({ taskToken: activate.taskToken as string, output: '{"up":true}' }),
    );

    const active = await nextInvocation(AWAIT, forPid('p-happy', 'active'));
    expect(active.taskToken).not.toBe(activate.taskToken);
    for (let i = 0; i < 5; i++) {
      await sleep(50);
      await sfn.send(new SendTaskHeartbeatCommand({ taskToken: active.taskToken as string }));
    }
    expect((await sfn.send(new DescribeExecutionCommand({ executionArn }))).status).toBe('RUNNING');
    await sfn.send(
      new SendTaskSuccessCommand({ taskToken: active.taskToken as string, output: '{"exit":0}' }),
    );

    const done = await finished(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(await nextInvocation(FINALIZE, forPid('p-happy'))).toEqual({
      sid: 'session-1',
      pid: 'p-happy',
      outcome: { exit: 0 },
    });
    expect(JSON.parse(done.output!)).toMatchObject({
      launch: { jobId: 'job-p-happy' },
      activation: { up: true },
      outcome: { exit: 0 },
      final: { state: 'Done' },
    });
    // A used token is gone.
    expect(
      await errorName(
        sfn.send(new SendTaskSuccessCommand({ taskToken: active.taskToken as string, output: '{}' })),
      ),
    ).toBe('TaskDoesNotExist');
  });

  it('retries a Lambda throttle and a transient launch error in Launch, then goes on to WaitActive', async () => {
    const executionArn = await start(pilotArn, pilotInput('p-flaky'), 'p-flaky');
    for (let i = 0; i < 3; i++) await nextInvocation(LAUNCH, forPid('p-flaky'));
    const activate = await nextInvocation(AWAIT, forPid('p-flaky', 'activate'));
    await sfn.send(new StopExecutionCommand({ executionArn }));
    expect(activate.taskToken).toEqual(expect.any(String));
    const failures = (await history(executionArn)).filter((e) => e.type === 'TaskFailed');
    expect(failures.map((e) => e.taskFailedEventDetails?.error)).toEqual([
      'Lambda.TooManyRequestsException',
      'Sortie.Transient',
    ]);
  });

  it('ends through the Failed step (a final pilot state) when Finalize keeps failing', async () => {
    const executionArn = await start(pilotArn, pilotInput('p-finalize-broken'), 'p-finalize-broken');
    await nextInvocation(LAUNCH, forPid('p-finalize-broken'));
    const activate = await nextInvocation(AWAIT, forPid('p-finalize-broken', 'activate'));
    await sfn.send(new SendTaskSuccessCommand({ taskToken: activate.taskToken as string, output: '{}' }));
    const active = await nextInvocation(AWAIT, forPid('p-finalize-broken', 'active'));
    await sfn.send(new SendTaskSuccessCommand({ taskToken: active.taskToken as string, output: '{}' }));
    const done = await finished(executionArn);
    const failed = await nextInvocation(FINALIZE, (p) => p.pid === 'p-finalize-broken' && 'error' in p);
    expect(failed.error).toMatchObject({ Error: 'Lambda.ServiceException' });
    expect(done.status).toBe('FAILED');
    expect(done.error).toBe('Sortie.PilotFailed');
  });

  it('takes the Failed path with States.HeartbeatTimeout when the agent misses a heartbeat', async () => {
    const executionArn = await start(pilotArn, pilotInput('p-silent'));
    const activate = await nextInvocation(AWAIT, forPid('p-silent', 'activate'));
    await sfn.send(new SendTaskSuccessCommand({ taskToken: activate.taskToken as string, output: '{}' }));
    const active = await nextInvocation(AWAIT, forPid('p-silent', 'active'));

    const done = await finished(executionArn);
    expect(done.status).toBe('FAILED');
    expect(done.error).toBe('Sortie.PilotFailed');
    const finalize = await nextInvocation(FINALIZE, forPid('p-silent'));
    expect(finalize.error).toMatchObject({ Error: 'States.HeartbeatTimeout' });
    expect(
      await errorName(sfn.send(new SendTaskHeartbeatCommand({ taskToken: active.taskToken as string }))),
    ).toMatch(/^(TaskTimedOut|TaskDoesNotExist)$/);
    const types = (await history(executionArn)).map((e) => e.type);
    expect(types).toContain('TaskTimedOut');
    expect(types.at(-1)).toBe('ExecutionFailed');
  });

  it('waits as long as each check says (its memo handed to the next), then goes on when the agent calls in', async () => {
    const executionArn = await start(
      pilotArn,
      pilotInput('p-backoff', { jobCheckSeconds: 1, heartbeatSeconds: 60 }),
    );
    for (let turn = 1; turn <= 2; turn++) {
      await nextInvocation(AWAIT, forPid('p-backoff', 'activate'));
      const check = await nextInvocation(CHECK, forPid('p-backoff'));
      expect(check.memo).toEqual(turn === 1 ? {} : { turn: turn - 1 });
    }
    // Each turn registers a fresh token: the third turn's is the one waiting now.
    const activate = await nextInvocation(AWAIT, forPid('p-backoff', 'activate'));
    await sfn.send(new SendTaskSuccessCommand({ taskToken: activate.taskToken as string, output: '{}' }));
    // The active phase checks too, starting again from the first interval, with its own phase.
    const check = await nextInvocation(CHECK, (p) => p.pid === 'p-backoff' && p.phase === 'active');
    expect(check.memo).toEqual({});
    await sfn.send(new StopExecutionCommand({ executionArn }));
    const events = await history(executionArn);
    const waits = events.flatMap((e) =>
      e.type === 'TaskScheduled' && e.taskScheduledEventDetails?.resource === 'invoke.waitForTaskToken'
        ? [e.taskScheduledEventDetails.timeoutInSeconds]
        : [],
    );
    // First turn from the input, then each from the check before it: 1, 1, 2, 3; Active restarts at 1.
    expect(waits.slice(0, 3)).toEqual([1, 1, 2]);
    expect(waits.at(-1)).toBe(1);
    // One turn (a timed-out wait and a check) costs what core/job-checks.ts budgets for the history limit.
    const checks = events.flatMap((e, i) => (e.stateEnteredEventDetails?.name === 'CheckJob' ? [i] : []));
    expect(checks.length).toBeGreaterThanOrEqual(2);
    expect((checks[1] as number) - (checks[0] as number)).toBe(EVENTS_PER_TURN);
  });

  it('checks the batch job every jobCheckSeconds (TimeoutSecondsPath) and fails when it ended', async () => {
    const executionArn = await start(pilotArn, pilotInput('p-never', { jobCheckSeconds: 1 }));
    await nextInvocation(AWAIT, forPid('p-never', 'activate'));
    expect(await nextInvocation(CHECK, forPid('p-never'))).toEqual({
      sid: 'session-1',
      pid: 'p-never',
      phase: 'activate',
      activateTimeoutSeconds: 5,
      jobCheckSeconds: 1,
      heartbeatSeconds: 1,
      activeTimeoutSeconds: 20,
      memo: {},
    });
    const done = await finished(executionArn);
    expect(done.status).toBe('FAILED');
    const finalize = await nextInvocation(FINALIZE, forPid('p-never'));
    expect(finalize.error).toMatchObject({ Error: 'Sortie.JobEnded' });
    const types = (await history(executionArn)).map((e) => e.type);
    expect(types).toContain('TaskTimedOut');
    expect(
      invocations.some((c) => c.functionName === AWAIT && forPid('p-never', 'active')(c.payload as never)),
    ).toBe(false);
  });

  it('passes SendTaskFailure(Sortie.Canceled) to Finalize as the error', async () => {
    // A budget no loaded machine overruns: this test races nothing against the heartbeat clock.
    const executionArn = await start(pilotArn, pilotInput('p-cancel', { heartbeatSeconds: 60 }));
    const activate = await nextInvocation(AWAIT, forPid('p-cancel', 'activate'));
    await sfn.send(new SendTaskSuccessCommand({ taskToken: activate.taskToken as string, output: '{}' }));
    const active = await nextInvocation(AWAIT, forPid('p-cancel', 'active'));
    await sfn.send(
      new SendTaskFailureCommand({
        taskToken: active.taskToken as string,
        error: 'Sortie.Canceled',
        cause: 'canceled by the user',
      }),
    );
    const done = await finished(executionArn);
    expect(done.status).toBe('FAILED');
    expect(done.error).toBe('Sortie.PilotFailed');
    const finalize = await nextInvocation(FINALIZE, forPid('p-cancel'));
    expect(finalize.error).toEqual({ Error: 'Sortie.Canceled', Cause: 'canceled by the user' });
  });

  it('aborts on StopExecution while waiting; the token then gives TaskDoesNotExist', async () => {
    // A budget no loaded machine overruns: this test races nothing against the heartbeat clock.
    const executionArn = await start(pilotArn, pilotInput('p-stop', { heartbeatSeconds: 60 }));
    const activate = await nextInvocation(AWAIT, forPid('p-stop', 'activate'));
    await sfn.send(new SendTaskSuccessCommand({ taskToken: activate.taskToken as string, output: '{}' }));
    const active = await nextInvocation(AWAIT, forPid('p-stop', 'active'));
    await sfn.send(new SendTaskHeartbeatCommand({ taskToken: active.taskToken as string }));

    const stopped = await sfn.send(
      new StopExecutionCommand({ executionArn, error: 'Sortie.UserStop', cause: 'pilot canceled' }),
    );
    expect(stopped.stopDate).toBeInstanceOf(Date);
    const done = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    expect(done).toMatchObject({ status: 'ABORTED', error: 'Sortie.UserStop', cause: 'pilot canceled' });
    expect(
      await errorName(
        sfn.send(new SendTaskSuccessCommand({ taskToken: active.taskToken as string, output: '{}' })),
      ),
    ).toBe('TaskDoesNotExist');
    // Stopping ends the run: the recorded history ends with the abort, and no state (Finalize included)
    // was entered after the Active wait; an abort is final, so nothing can be appended later.
    const events = await history(executionArn);
    const entered = events.flatMap((e) =>
      e.stateEnteredEventDetails?.name ? [e.stateEnteredEventDetails.name] : [],
    );
    expect(entered).not.toContain('Finalize');
    expect(entered.at(-1)).toBe('Active');
    expect(events.at(-1)?.type).toBe('ExecutionAborted');
    expect(events.at(-1)?.executionAbortedEventDetails).toEqual({
      error: 'Sortie.UserStop',
      cause: 'pilot canceled',
    });
    expect(events.map((e) => e.type)).not.toContain('TaskTimedOut');
  });
});

describe.concurrent('task tokens through @aws-sdk/client-sfn', () => {
  const waitMachine = (extra: object = {}) => ({
    StartAt: 'Wait',
    States: {
      Wait: {
        Type: 'Task',
        Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
        Parameters: { FunctionName: 'token-holder', Payload: { 'token.$': '$$.Task.Token', 'id.$': '$.id' } },
        ...extra,
        End: true,
      },
    },
  });
  const held = new Map<string, string>();

  beforeAll(() => {
    lambdas.set('token-holder', (p) => {
      const { token, id } = p as { token: string; id: string };
      held.set(id, token);
      return { ignored: true };
    });
  });

  const tokenOf = (id: string) => eventually(() => held.get(id));

  it('registers the token before invoking the function, which may answer at once', async () => {
    lambdas.set('answers-itself', async (p) => {
      const { token } = p as { token: string };
      await sfn.send(new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify({ echoed: p }) }));
      return 'ignored';
    });
    const arn = await createMachine({
      StartAt: 'Self',
      States: {
        Self: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
          Parameters: { FunctionName: 'answers-itself', Payload: { 'token.$': '$$.Task.Token', n: 1 } },
          ResultPath: '$.result',
          End: true,
        },
      },
    });
    const done = await finished(await start(arn, { keep: 'me' }));
    expect(done.status).toBe('SUCCEEDED');
    const output = JSON.parse(done.output!);
    expect(output.keep).toBe('me');
    expect(output.result.echoed).toMatchObject({ n: 1, token: expect.stringMatching(/^AQ/) });
  });

  it('succeeds with the SendTaskSuccess output', async () => {
    const executionArn = await start(await createMachine(waitMachine()), { id: 'ok' });
    await sfn.send(new SendTaskSuccessCommand({ taskToken: await tokenOf('ok'), output: '{"answer":42}' }));
    const done = await finished(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual({ answer: 42 });
    const types = (await history(executionArn)).map((e) => e.type);
    expect(types).toEqual([
      'ExecutionStarted',
      'TaskStateEntered',
      'TaskScheduled',
      'TaskStarted',
      'TaskSubmitted',
      'TaskSucceeded',
      'TaskStateExited',
      'ExecutionSucceeded',
    ]);
  });

  it('fails with the SendTaskFailure error and cause', async () => {
    const executionArn = await start(await createMachine(waitMachine()), { id: 'bad' });
    await sfn.send(
      new SendTaskFailureCommand({ taskToken: await tokenOf('bad'), error: 'Agent.Crash', cause: 'segv' }),
    );
    const done = await finished(executionArn);
    expect(done).toMatchObject({ status: 'FAILED', error: 'Agent.Crash', cause: 'segv' });
    const failed = (await history(executionArn)).find((e) => e.type === 'TaskFailed');
    expect(failed?.taskFailedEventDetails).toMatchObject({
      error: 'Agent.Crash',
      cause: 'segv',
      resourceType: 'lambda',
      resource: 'invoke.waitForTaskToken',
    });
  });

  it('keeps a task alive with heartbeats past HeartbeatSeconds, then succeeds', async () => {
    const executionArn = await start(await createMachine(waitMachine({ HeartbeatSeconds: 8 })), {
      id: 'beat',
    });
    const token = await tokenOf('beat');
    // Heartbeats every 0.2 s for 10 s or more, against an 8 s budget: the budget is far above the event-loop
    // stalls this shared machine shows (up to ~3 s measured at load 16, which failed a 1 s and a 3 s
    // budget), since the server shares this process. The sleeps pace the heartbeats; the history proves
    // none was missed. The exact rule is tested on a fake clock in task-run.test.ts.
    for (let i = 0; i < 50; i++) {
      await sleep(200);
      await sfn.send(new SendTaskHeartbeatCommand({ taskToken: token }));
    }
    expect((await sfn.send(new DescribeExecutionCommand({ executionArn }))).status).toBe('RUNNING');
    await sfn.send(new SendTaskSuccessCommand({ taskToken: token, output: '"alive"' }));
    const done = await finished(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.output).toBe('"alive"');
    expect((await history(executionArn)).map((e) => e.type)).not.toContain('TaskTimedOut');
  });

  it('fails with States.HeartbeatTimeout when no heartbeat comes', async () => {
    const executionArn = await start(await createMachine(waitMachine({ HeartbeatSeconds: 1 })), {
      id: 'mute',
    });
    const token = await tokenOf('mute');
    const done = await finished(executionArn);
    expect(done).toMatchObject({ status: 'FAILED', error: 'States.HeartbeatTimeout' });
    const timedOut = (await history(executionArn)).find((e) => e.type === 'TaskTimedOut');
    expect(timedOut?.taskTimedOutEventDetails?.error).toBe('States.HeartbeatTimeout');
    expect(await errorName(sfn.send(new SendTaskSuccessCommand({ taskToken: token, output: '{}' })))).toBe(
      'TaskTimedOut',
    );
  });

  it('fails a callback task with States.Timeout after TimeoutSeconds', async () => {
    const executionArn = await start(await createMachine(waitMachine({ TimeoutSeconds: 1 })), { id: 'slow' });
    await tokenOf('slow');
    const done = await finished(executionArn);
    expect(done).toMatchObject({ status: 'FAILED', error: 'States.Timeout' });
  });

  it('fails a plain lambda:invoke that outlives TimeoutSeconds with States.Timeout', async () => {
    let release: () => void = () => {};
    lambdas.set('hangs', () => new Promise<void>((resolve) => (release = resolve)));
    const arn = await createMachine({
      StartAt: 'Hang',
      States: {
        Hang: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke',
          Parameters: { FunctionName: 'hangs', Payload: {} },
          TimeoutSeconds: 1,
          Catch: [{ ErrorEquals: ['States.Timeout'], ResultPath: '$.caught', Next: 'Caught' }],
          End: true,
        },
        Caught: { Type: 'Pass', End: true },
      },
    });
    const done = await finished(await start(arn, {}));
    release();
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!).caught.Error).toBe('States.Timeout');
  });

  it('retries States.HeartbeatTimeout with a fresh token, then catches it', async () => {
    const arn = await createMachine({
      StartAt: 'Wait',
      States: {
        Wait: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
          Parameters: {
            FunctionName: 'token-holder',
            Payload: { 'token.$': '$$.Task.Token', 'id.$': '$.id' },
          },
          HeartbeatSeconds: 1,
          Retry: [{ ErrorEquals: ['States.HeartbeatTimeout'], IntervalSeconds: 1, MaxAttempts: 1 }],
          Catch: [{ ErrorEquals: ['States.HeartbeatTimeout'], ResultPath: '$.lost', Next: 'Lost' }],
          End: true,
        },
        Lost: { Type: 'Pass', End: true },
      },
    });
    const executionArn = await start(arn, { id: 'retry-hb' });
    const first = await tokenOf('retry-hb');
    const second = await eventually(() =>
      held.get('retry-hb') !== first ? held.get('retry-hb') : undefined,
    );
    expect(second).not.toBe(first);
    const done = await finished(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!).lost.Error).toBe('States.HeartbeatTimeout');
    const types = (await history(executionArn)).map((e) => e.type);
    expect(types.filter((t) => t === 'TaskTimedOut')).toHaveLength(2);
  });

  it('times the whole execution out after the top-level TimeoutSeconds', async () => {
    const definition = { ...waitMachine(), TimeoutSeconds: 1 };
    const executionArn = await start(await createMachine(definition), { id: 'exec-timeout' });
    const token = await tokenOf('exec-timeout');
    const done = await finished(executionArn);
    expect(done).toMatchObject({ status: 'TIMED_OUT', error: 'States.Timeout' });
    expect((await history(executionArn)).at(-1)?.type).toBe('ExecutionTimedOut');
    expect(await errorName(sfn.send(new SendTaskSuccessCommand({ taskToken: token, output: '{}' })))).toBe(
      'TaskDoesNotExist',
    );
  });

  it('refuses unknown and malformed tokens', async () => {
    expect(await errorName(sfn.send(new SendTaskSuccessCommand({ taskToken: 'AQnope', output: '{}' })))).toBe(
      'TaskDoesNotExist',
    );
    expect(await errorName(sfn.send(new SendTaskHeartbeatCommand({ taskToken: 'x'.repeat(2000) })))).toBe(
      'InvalidToken',
    );
  });
});

describe.concurrent('Task states: Lambda integrations, Retry, Catch and data flow', () => {
  it('retries a failed Lambda by error name, then succeeds', async () => {
    let calls = 0;
    lambdas.set('flaky', () => {
      calls++;
      if (calls === 1) throw namedError('Sortie.Transient', 'try again');
      return { jobId: 'j-7' };
    });
    const arn = await createMachine({
      StartAt: 'Launch',
      States: {
        Launch: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke',
          Parameters: { FunctionName: 'flaky', 'Payload.$': '$' },
          ResultSelector: { 'jobId.$': '$.Payload.jobId', 'code.$': '$.StatusCode' },
          ResultPath: '$.launch',
          Retry: [{ ErrorEquals: ['Sortie.Transient'], IntervalSeconds: 1, MaxAttempts: 2 }],
          End: true,
        },
      },
    });
    const executionArn = await start(arn, { pid: 'p' });
    const done = await finished(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(calls).toBe(2);
    expect(JSON.parse(done.output!)).toEqual({ pid: 'p', launch: { jobId: 'j-7', code: 200 } });
    const types = (await history(executionArn)).map((e) => e.type);
    expect(types.filter((t) => t === 'TaskScheduled')).toHaveLength(2);
    expect(types.indexOf('TaskFailed')).toBeLessThan(types.lastIndexOf('TaskScheduled'));
  });

  it('catches a Lambda error by name with the errorType and a Lambda-style JSON cause', async () => {
    lambdas.set('boom', () => {
      throw namedError('Sortie.Boom', 'it broke');
    });
    const arn = await createMachine({
      StartAt: 'Try',
      States: {
        Try: {
          Type: 'Task',
          Resource: 'arn:aws:lambda:us-east-1:000000000000:function:boom',
          Retry: [{ ErrorEquals: ['Other'], IntervalSeconds: 1, MaxAttempts: 3 }],
          Catch: [
            { ErrorEquals: ['Nope'], Next: 'Wrong' },
            { ErrorEquals: ['Sortie.Boom'], ResultPath: '$.err', Next: 'Handled' },
          ],
          End: true,
        },
        Wrong: { Type: 'Fail', Error: 'Wrong' },
        Handled: { Type: 'Pass', OutputPath: '$.err', End: true },
      },
    });
    const executionArn = await start(arn, { a: 1 });
    const done = await finished(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    const err = JSON.parse(done.output!);
    expect(err.Error).toBe('Sortie.Boom');
    expect(JSON.parse(err.Cause)).toMatchObject({ errorType: 'Sortie.Boom', errorMessage: 'it broke' });
    expect(invocations.find((c) => c.functionName === 'boom')?.payload).toEqual({ a: 1 });
    const types = (await history(executionArn)).map((e) => e.type);
    expect(types).toContain('LambdaFunctionFailed');
    expect(types).toContain('PassStateEntered');
  });

  it('matches States.ALL in Catch and fails the execution from a Fail state', async () => {
    lambdas.set('boom2', () => {
      throw new TypeError('bad type');
    });
    const arn = await createMachine({
      StartAt: 'Try',
      States: {
        Try: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke',
          Parameters: { FunctionName: 'arn:aws:lambda:us-east-1:000000000000:function:boom2' },
          Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Fail' }],
          End: true,
        },
        Fail: { Type: 'Fail', Error: 'Pilot.Failed', Cause: 'see log' },
      },
    });
    const executionArn = await start(arn, {});
    const done = await finished(executionArn);
    expect(done).toMatchObject({ status: 'FAILED', error: 'Pilot.Failed', cause: 'see log' });
    // The ARN in FunctionName reached the handler as a bare name, with an empty payload.
    expect(invocations.find((c) => c.functionName === 'boom2')?.payload).toEqual({});
    expect((await history(executionArn)).map((e) => e.type).slice(-2)).toEqual([
      'FailStateEntered',
      'ExecutionFailed',
    ]);
  });

  it('fails the execution with the uncaught Lambda error', async () => {
    const arn = await createMachine({
      StartAt: 'Missing',
      States: {
        Missing: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke',
          Parameters: { FunctionName: 'no-such-function', Payload: { x: 1 } },
          End: true,
        },
      },
    });
    const done = await finished(await start(arn));
    expect(done).toMatchObject({ status: 'FAILED', error: 'Lambda.ResourceNotFoundException' });
  });

  it('fails with States.Runtime (not catchable) when TimeoutSecondsPath selects nothing', async () => {
    const arn = await createMachine({
      StartAt: 'T',
      States: {
        T: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
          Parameters: { FunctionName: 'token-holder', Payload: { 'token.$': '$$.Task.Token', id: 'rt' } },
          TimeoutSecondsPath: '$.missing',
          Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }],
          End: true,
        },
        Caught: { Type: 'Succeed' },
      },
    });
    const done = await finished(await start(arn, {}));
    expect(done.status).toBe('FAILED');
    expect(done.error).toBe('States.Runtime');
  });

  it('runs Task states inside Map and Parallel', async () => {
    lambdas.set('double', (p) => (p as number) * 2);
    lambdas.set('parallel-hold', async (p) => {
      const { t } = p as { t: string };
      await sfn.send(new SendTaskSuccessCommand({ taskToken: t, output: '"from-branch"' }));
    });
    const arn = await createMachine({
      StartAt: 'Each',
      States: {
        Each: {
          Type: 'Map',
          ItemsPath: '$.items',
          MaxConcurrency: 2,
          ItemProcessor: {
            ProcessorConfig: { Mode: 'INLINE' },
            StartAt: 'Double',
            States: {
              Double: {
                Type: 'Task',
                Resource: 'arn:aws:states:::lambda:invoke',
                Parameters: { FunctionName: 'double', 'Payload.$': '$' },
                OutputPath: '$.Payload',
                End: true,
              },
            },
          },
          ResultPath: '$.doubled',
          Next: 'Both',
        },
        Both: {
          Type: 'Parallel',
          Branches: [
            { StartAt: 'B1', States: { B1: { Type: 'Pass', Result: 'pass', End: true } } },
            {
              StartAt: 'B2',
              States: {
                B2: {
                  Type: 'Task',
                  Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
                  Parameters: { FunctionName: 'parallel-hold', Payload: { 't.$': '$$.Task.Token' } },
                  End: true,
                },
              },
            },
          ],
          ResultPath: '$.branches',
          End: true,
        },
      },
    });
    const executionArn = await start(arn, { items: [1, 2, 3] });
    const done = await finished(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual({
      items: [1, 2, 3],
      doubled: [2, 4, 6],
      branches: ['pass', 'from-branch'],
    });
    const types = (await history(executionArn)).map((e) => e.type);
    expect(types.filter((t) => t === 'MapIterationSucceeded')).toHaveLength(3);
    expect(types.filter((t) => t === 'TaskSucceeded')).toHaveLength(4);
  });

  it('applies InputPath, ResultSelector, ResultPath and OutputPath', async () => {
    lambdas.set('adder', (p) => ({
      sum: (p as { a: number; b: number }).a + (p as { a: number; b: number }).b,
    }));
    const arn = await createMachine({
      StartAt: 'Add',
      States: {
        Add: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke',
          InputPath: '$.numbers',
          Parameters: { FunctionName: 'adder', 'Payload.$': '$' },
          ResultSelector: { 'total.$': '$.Payload.sum' },
          ResultPath: '$.result',
          OutputPath: '$.result',
          End: true,
        },
      },
    });
    const done = await finished(await start(arn, { numbers: { a: 2, b: 40 }, other: true }));
    expect(JSON.parse(done.output!)).toEqual({ total: 42 });
  });
});

describe.concurrent('sqs:sendMessage integrations (fauxqs)', () => {
  it('sends a message and waits for the worker to answer with the task token', async () => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `jobs-${Date.now()}` }));
    const arn = await createMachine({
      StartAt: 'Notify',
      States: {
        Notify: {
          Type: 'Task',
          Resource: 'arn:aws:states:::sqs:sendMessage',
          Parameters: { QueueUrl, MessageBody: 'hello' },
          ResultSelector: { 'id.$': '$.MessageId' },
          ResultPath: '$.sent',
          Next: 'Dispatch',
        },
        Dispatch: {
          Type: 'Task',
          Resource: 'arn:aws:states:::sqs:sendMessage.waitForTaskToken',
          Parameters: { QueueUrl, MessageBody: { 'taskToken.$': '$$.Task.Token', 'job.$': '$.job' } },
          // This test is about the token travelling through SQS, not about the heartbeat budget: a budget
          // no loaded machine can overrun before the worker's first heartbeat.
          HeartbeatSeconds: 60,
          ResultPath: '$.result',
          End: true,
        },
      },
    });
    const executionArn = await start(arn, { job: 'j1' });

    const bodies: string[] = [];
    const messages = await eventually(async () => {
      const out = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      for (const m of out.Messages ?? []) {
        bodies.push(m.Body!);
        await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: m.ReceiptHandle! }));
      }
      return bodies.length >= 2 ? bodies : undefined;
    });
    expect(messages[0]).toBe('hello');
    const work = JSON.parse(messages[1]!);
    expect(work.job).toBe('j1');
    await sfn.send(new SendTaskHeartbeatCommand({ taskToken: work.taskToken }));
    await sfn.send(new SendTaskSuccessCommand({ taskToken: work.taskToken, output: '{"rc":0}' }));

    const done = await finished(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    const output = JSON.parse(done.output!);
    expect(output.sent.id).toEqual(expect.any(String));
    expect(output.result).toEqual({ rc: 0 });
    const submitted = (await history(executionArn)).find((e) => e.type === 'TaskSubmitted');
    expect(submitted?.taskSubmittedEventDetails).toMatchObject({
      resourceType: 'sqs',
      resource: 'sendMessage.waitForTaskToken',
    });
  });

  it('fails with an SQS.* error when the queue does not exist', async () => {
    const arn = await createMachine({
      StartAt: 'Send',
      States: {
        Send: {
          Type: 'Task',
          Resource: 'arn:aws:states:::sqs:sendMessage',
          Parameters: { QueueUrl: `${sqsEndpoint}/000000000000/does-not-exist`, MessageBody: 'x' },
          End: true,
        },
      },
    });
    const done = await finished(await start(arn));
    expect(done.status).toBe('FAILED');
    expect(done.error).toMatch(/^SQS\./);
  });
});

describe('API actions', () => {
  const passMachine = { StartAt: 'P', States: { P: { Type: 'Pass', Result: { ok: 1 }, End: true } } };

  it('creates idempotently, describes, lists and deletes state machines', async () => {
    const name = `api-${Date.now()}`;
    const arn = await createMachine(passMachine, name);
    expect(arn).toBe(`arn:aws:states:us-east-1:000000000000:stateMachine:${name}`);
    expect(await createMachine(passMachine, name)).toBe(arn);
    expect(
      await errorName(
        sfn.send(
          new CreateStateMachineCommand({
            name,
            definition: JSON.stringify({ ...passMachine, Comment: 'v2' }),
            roleArn: 'arn:aws:iam::000000000000:role/test',
          }),
        ),
      ),
    ).toBe('StateMachineAlreadyExists');
    const described = await sfn.send(new DescribeStateMachineCommand({ stateMachineArn: arn }));
    expect(described).toMatchObject({ name, status: 'ACTIVE', type: 'STANDARD' });
    expect(JSON.parse(described.definition!)).toEqual(passMachine);
    expect(described.creationDate).toBeInstanceOf(Date);
    const listed = await sfn.send(new ListStateMachinesCommand({}));
    expect(listed.stateMachines?.map((m) => m.stateMachineArn)).toContain(arn);
    await sfn.send(new DeleteStateMachineCommand({ stateMachineArn: arn }));
    expect(await errorName(sfn.send(new DescribeStateMachineCommand({ stateMachineArn: arn })))).toBe(
      'StateMachineDoesNotExist',
    );
  });

  it('rejects invalid definitions, names, ARNs and inputs with the SDK exception names', async () => {
    const create = (definition: string, name = `bad-${Date.now()}`) =>
      errorName(
        sfn.send(new CreateStateMachineCommand({ name, definition, roleArn: 'arn:aws:iam::0:role/x' })),
      );
    expect(await create('{not json')).toBe('InvalidDefinition');
    expect(await create(JSON.stringify({ StartAt: 'Nope', States: {} }))).toBe('InvalidDefinition');
    expect(
      await create(
        JSON.stringify({
          StartAt: 'T',
          States: { T: { Type: 'Task', Resource: 'arn:aws:states:::dynamodb:putItem', End: true } },
        }),
      ),
    ).toBe('InvalidDefinition');
    expect(await create(JSON.stringify(passMachine), 'bad name')).toBe('InvalidName');
    expect(await errorName(sfn.send(new DescribeExecutionCommand({ executionArn: 'nope' })))).toBe(
      'InvalidArn',
    );
    expect(
      await errorName(
        sfn.send(
          new DescribeExecutionCommand({
            executionArn: 'arn:aws:states:us-east-1:000000000000:execution:x:y',
          }),
        ),
      ),
    ).toBe('ExecutionDoesNotExist');
    expect(
      await errorName(
        sfn.send(
          new StartExecutionCommand({
            stateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:none',
          }),
        ),
      ),
    ).toBe('StateMachineDoesNotExist');
    const arn = await createMachine(passMachine);
    expect(
      await errorName(sfn.send(new StartExecutionCommand({ stateMachineArn: arn, input: '{oops' }))),
    ).toBe('InvalidExecutionInput');
  });

  it('refuses a reused execution name with ExecutionAlreadyExists', async () => {
    const arn = await createMachine(passMachine);
    const first = await start(arn, { n: 1 }, 'same-name');
    await finished(first);
    expect(await errorName(start(arn, { n: 1 }, 'same-name'))).toBe('ExecutionAlreadyExists');
    expect(await errorName(start(arn, { n: 2 }, 'same-name'))).toBe('ExecutionAlreadyExists');
    const done = await sfn.send(new DescribeExecutionCommand({ executionArn: first }));
    expect(done).toMatchObject({
      status: 'SUCCEEDED',
      output: '{"ok":1}',
      input: '{"n":1}',
      name: 'same-name',
    });
    expect(done.startDate).toBeInstanceOf(Date);
    expect(done.stopDate!.getTime()).toBeGreaterThanOrEqual(done.startDate!.getTime());
  });

  it('lists executions newest first, filtered by status', async () => {
    lambdas.set('list-hold', () => ({}));
    const arn = await createMachine({
      StartAt: 'Choose',
      States: {
        Choose: {
          Type: 'Choice',
          Choices: [{ Variable: '$.hold', BooleanEquals: true, Next: 'Hold' }],
          Default: 'Done',
        },
        Hold: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
          Parameters: { FunctionName: 'list-hold', Payload: { 't.$': '$$.Task.Token' } },
          End: true,
        },
        Done: { Type: 'Succeed' },
      },
    });
    const a = await start(arn, { hold: false }, 'a');
    await finished(a);
    const b = await start(arn, { hold: true }, 'b');
    const c = await start(arn, { hold: true }, 'c');
    await sfn.send(new StopExecutionCommand({ executionArn: c }));

    const all = await sfn.send(new ListExecutionsCommand({ stateMachineArn: arn }));
    expect(all.executions?.map((e) => e.name)).toEqual(['c', 'b', 'a']);
    const running = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn: arn, statusFilter: 'RUNNING' }),
    );
    expect(running.executions?.map((e) => e.executionArn)).toEqual([b]);
    const succeeded = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn: arn, statusFilter: 'SUCCEEDED' }),
    );
    expect(succeeded.executions?.map((e) => e.name)).toEqual(['a']);
    expect(succeeded.executions?.[0]?.stopDate).toBeInstanceOf(Date);
    const aborted = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn: arn, statusFilter: 'ABORTED' }),
    );
    expect(aborted.executions?.map((e) => e.name)).toEqual(['c']);
    const paged = await sfn.send(new ListExecutionsCommand({ stateMachineArn: arn, maxResults: 2 }));
    expect(paged.executions).toHaveLength(2);
    const rest = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn: arn, maxResults: 2, nextToken: paged.nextToken! }),
    );
    expect(rest.executions?.map((e) => e.name)).toEqual(['a']);
    await sfn.send(new StopExecutionCommand({ executionArn: b }));
  });

  it('records a history a console user can follow', async () => {
    lambdas.set('hist', (p) => ({ doubled: (p as { n: number }).n * 2 }));
    const arn = await createMachine({
      StartAt: 'Prepare',
      States: {
        Prepare: { Type: 'Pass', Parameters: { 'n.$': '$.n' }, Next: 'Double' },
        Double: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke',
          Parameters: { FunctionName: 'hist', 'Payload.$': '$' },
          OutputPath: '$.Payload',
          Next: 'Check',
        },
        Check: {
          Type: 'Choice',
          Choices: [{ Variable: '$.doubled', NumericEquals: 42, Next: 'Yes' }],
          Default: 'No',
        },
        Yes: { Type: 'Succeed' },
        No: { Type: 'Fail', Error: 'Wrong' },
      },
    });
    const executionArn = await start(arn, { n: 21, noise: 'x' });
    expect((await finished(executionArn)).status).toBe('SUCCEEDED');
    const events = await history(executionArn);
    expect(events.map((e) => e.type)).toEqual([
      'ExecutionStarted',
      'PassStateEntered',
      'PassStateExited',
      'TaskStateEntered',
      'TaskScheduled',
      'TaskStarted',
      'TaskSucceeded',
      'TaskStateExited',
      'ChoiceStateEntered',
      'ChoiceStateExited',
      'SucceedStateEntered',
      'SucceedStateExited',
      'ExecutionSucceeded',
    ]);
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.timestamp!.getTime()).toBeGreaterThanOrEqual(events[i - 1]!.timestamp!.getTime());
      expect(events[i]!.previousEventId).toBe(i);
    }
    expect(JSON.parse(events[0]!.executionStartedEventDetails!.input!)).toEqual({ n: 21, noise: 'x' });
    expect(events[4]!.taskScheduledEventDetails).toMatchObject({
      resourceType: 'lambda',
      resource: 'invoke',
      region: 'us-east-1',
    });
    expect(JSON.parse(events[4]!.taskScheduledEventDetails!.parameters!)).toEqual({
      FunctionName: 'hist',
      Payload: { n: 21 },
    });
    expect(events[3]!.stateEnteredEventDetails?.name).toBe('Double');
    expect(JSON.parse(events[6]!.taskSucceededEventDetails!.output!)).toEqual({
      Payload: { doubled: 42 },
      StatusCode: 200,
    });
    expect(JSON.parse(events.at(-1)!.executionSucceededEventDetails!.output!)).toEqual({ doubled: 42 });

    const reversed = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 3 }),
    );
    expect(reversed.events?.map((e) => e.id)).toEqual([13, 12, 11]);
    expect(reversed.nextToken).toEqual(expect.any(String));
    const noData = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn, includeExecutionData: false }),
    );
    expect(noData.events?.[0]?.executionStartedEventDetails?.input).toBeUndefined();
  });

  it('works through AWS_ENDPOINT_URL_SFN with a default client', async () => {
    const saved = process.env.AWS_ENDPOINT_URL_SFN;
    process.env.AWS_ENDPOINT_URL_SFN = sfnServer.endpoint;
    try {
      const client = new SFNClient({ region: REGION, credentials });
      const out = await client.send(new ListStateMachinesCommand({}));
      expect(out.stateMachines?.length).toBeGreaterThan(0);
      client.destroy();
    } finally {
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_SFN;
      else process.env.AWS_ENDPOINT_URL_SFN = saved;
    }
  });

  it('binds 127.0.0.1 only and closes without hanging while tasks wait', async () => {
    lambdas.set('close-hold', () => ({}));
    const server = await startLocalStepFunctions({ invokeLambda, port: 0 });
    expect(server.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const client = new SFNClient({ endpoint: server.endpoint, region: REGION, credentials });
    const { stateMachineArn } = await client.send(
      new CreateStateMachineCommand({
        name: 'hold',
        roleArn: 'arn:aws:iam::0:role/x',
        definition: JSON.stringify({
          TimeoutSeconds: 3600,
          StartAt: 'Hold',
          States: {
            Hold: {
              Type: 'Task',
              Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
              Parameters: { FunctionName: 'close-hold', Payload: { 't.$': '$$.Task.Token' } },
              HeartbeatSeconds: 600,
              TimeoutSeconds: 3000,
              End: true,
            },
          },
        }),
      }),
    );
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const { executionArn } = await client.send(new StartExecutionCommand({ stateMachineArn }));
    await eventually(async () => {
      const events = (await client.send(new GetExecutionHistoryCommand({ executionArn }))).events ?? [];
      return events.some((e) => e.type === 'TaskSubmitted') ? true : undefined;
    });
    // close() must not wait out the task's 3000 s timeout (the test's own timeout would fail first) and must
    // clear that timer: the count of live timers comes back to where it was.
    await server.close();
    client.destroy();
    await eventually(async () =>
      process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length <= timersBefore
        ? true
        : undefined,
    );
  });
});

describe('ASL files under stacks/', () => {
  const aslFiles = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return aslFiles(path);
      return entry.name.endsWith('.asl.json') ? [path] : [];
    });
  const files = aslFiles(join(ROOT, 'stacks'));
  const validate = createRequire(import.meta.url)('asl-validator') as (
    definition: unknown,
    options?: object,
  ) => { isValid: boolean; errorsText: (separator?: string) => string };

  it('finds the pilot definition', () => {
    expect(files.map((f) => f.slice(ROOT.length + 1))).toContain('stacks/pilot.asl.json');
  });

  it.each(files.map((f) => [f.slice(ROOT.length + 1), f]))('%s passes asl-validator', (_, file) => {
    const result = validate(JSON.parse(readFileSync(file, 'utf8')), { checkPaths: true, checkArn: true });
    expect(result.errorsText('; ')).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('every Lambda step of the pilot machine retries Lambda service errors and throttles first', () => {
    const asl = JSON.parse(readFileSync(join(ROOT, 'stacks/pilot.asl.json'), 'utf8')) as {
      States: Record<string, { Type: string; Resource?: string; Retry?: { ErrorEquals: string[] }[] }>;
    };
    const tasks = Object.entries(asl.States).filter(([, st]) => st.Resource?.includes(':lambda:invoke'));
    expect(tasks.length).toBe(7);
    for (const [name, st] of tasks) {
      expect(st.Retry?.[0]?.ErrorEquals, name).toEqual(
        expect.arrayContaining(['Lambda.ServiceException', 'Lambda.TooManyRequestsException']),
      );
    }
  });

  it('asl-validator catches a broken definition (the check can fail)', () => {
    const broken = { StartAt: 'A', States: { A: { Type: 'Pass', Next: 'Nope' } } };
    expect(validate(broken, { checkPaths: true, checkArn: true }).isValid).toBe(false);
  });
});
