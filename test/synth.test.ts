/**
 * Offline synth of the SST app (sst.config.ts + stacks/), checked against stacks/manifest.ts.
 *
 * SST v2 asks STS who the caller is and CloudFormation whether its bootstrap stacks exist even for
 * `sst build`, so a fake answers those on 127.0.0.1 (shared/reference/local-aws.md §5). Every other AWS
 * endpoint points at the fake too, so nothing leaves the machine and an unexpected call fails fast
 * instead of retrying forever. The build writes to a temp dir, so concurrent runs never share output;
 * SST itself still keeps its log under the git-ignored .sst/.
 *
 * SST bundles every handler with esbuild and fails the build when a handler file is missing, so this
 * suite skips, saying which files are missing, until every handler in FUNCTIONS exists.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, parse } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAgentBundle } from '../agent/bundle.ts';
import {
  BUCKET,
  ENV,
  EVENT_SOURCES,
  FUNCTIONS,
  type FunctionName,
  METRICS,
  PILOT_QUEUE_PREFIX,
  QUEUES,
  ROUTES,
  SCHEDULES,
  STATE_MACHINES,
  TABLE,
} from '../stacks/manifest.ts';
import { SESSION_ROUTE } from '../stacks/session-auth.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STAGE = 'test';
const ACCOUNT = '123456789012';
/** `sst build` takes ~8 s here; past this it is stuck (e.g. retrying a call the fake does not answer). */
const SYNTH_TIMEOUT_MS = 120_000;
/** The extensions SST's Node runtime tries, in its order, when it resolves a handler's file. */
const HANDLER_EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs'];

/** Manifest handlers (`dir/file.export`) with no source file yet. */
function missingHandlerFiles(): string[] {
  return Object.values(FUNCTIONS)
    .map(({ handler }) => {
      const { dir, name } = parse(handler);
      return join(dir, name);
    })
    .filter((base) => !HANDLER_EXTENSIONS.some((ext) => existsSync(join(ROOT, base + ext))))
    .map((base) => `${base}.ts`);
}

// --- the fake STS + CloudFormation --------------------------------------------------------------------

/** The bootstrap stacks SST checks, with the outputs that make it consider them current. */
const BOOTSTRAP_STACKS: Record<string, Record<string, string>> = {
  CDKToolkit: { BootstrapVersion: '20', BucketName: 'cdk-assets-test' },
  SSTBootstrap: { Version: '7.4', BucketName: 'sst-assets-test' },
};

/** A running fake and the AWS actions it was asked for. */
interface FakeAws {
  readonly server: Server;
  readonly url: string;
  readonly calls: string[];
}

function answer(res: ServerResponse, status: number, xml: string): void {
  res.writeHead(status, { 'content-type': 'text/xml' }).end(xml);
}

/** Answers one Query-protocol request (form-encoded `Action=...`) the way STS/CloudFormation would. */
function handleAws(body: string, res: ServerResponse, calls: string[]): void {
  const params = new URLSearchParams(body);
  const action = params.get('Action') ?? '(none)';
  const stackName = params.get('StackName') ?? '';
  calls.push(action === 'DescribeStacks' ? `${action} ${stackName}` : action);
  if (action === 'GetCallerIdentity') {
    answer(
      res,
      200,
      `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::${ACCOUNT}:user/synth</Arn><UserId>AIDASYNTH</UserId><Account>${ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>synth</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
    );
    return;
  }
  const outputs = BOOTSTRAP_STACKS[stackName];
  if (action === 'DescribeStacks' && outputs) {
    const members = Object.entries(outputs)
      .map(
        ([key, value]) => `<member><OutputKey>${key}</OutputKey><OutputValue>${value}</OutputValue></member>`,
      )
      .join('');
    answer(
      res,
      200,
      `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member><StackName>${stackName}</StackName><StackId>arn:aws:cloudformation:us-east-1:${ACCOUNT}:stack/${stackName}/synth</StackId><CreationTime>2026-01-01T00:00:00Z</CreationTime><StackStatus>CREATE_COMPLETE</StackStatus><Outputs>${members}</Outputs></member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>synth</RequestId></ResponseMetadata></DescribeStacksResponse>`,
    );
    return;
  }
  answer(
    res,
    400,
    `<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>synth fake: unexpected ${action} ${stackName}</Message></Error><RequestId>synth</RequestId></ErrorResponse>`,
  );
}

/** Starts the fake on a free 127.0.0.1 port. */
async function startFakeAws(): Promise<FakeAws> {
  const calls: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => handleAws(body, res, calls));
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, calls };
}

// --- running sst build ----------------------------------------------------------------------------------

/** How `sst build` ended, with its combined output for the failure message. */
interface BuildResult {
  readonly code: number | null;
  readonly timedOut: boolean;
  readonly output: string;
}

/** Environment of the build: dummy credentials, every AWS endpoint on the fake, no telemetry. */
function buildEnv(fakeUrl: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    // Drop any real AWS identity, profile or endpoint the developer has set.
    if (!key.startsWith('AWS_') && !key.startsWith('SST_')) env[key] = value;
  }
  return {
    ...env,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: fakeUrl,
    AWS_ENDPOINT_URL_STS: fakeUrl,
    AWS_ENDPOINT_URL_CLOUDFORMATION: fakeUrl,
    // Without this the first run may only print the telemetry notice and exit 0 having built nothing.
    SST_TELEMETRY_DISABLED: '1',
    NO_COLOR: '1',
  };
}

/** Runs `sst build --stage test --to <outDir>` in the project root; kills its process group on timeout. */
function sstBuild(outDir: string, fakeUrl: string): Promise<BuildResult> {
  const cli = join(ROOT, 'node_modules', 'sst', 'cli', 'sst.js');
  const child = spawn(process.execPath, [cli, 'build', '--stage', STAGE, '--to', outDir], {
    cwd: ROOT,
    env: buildEnv(fakeUrl),
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so a timeout also ends the esbuild services it started.
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  return new Promise((done) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, SYNTH_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, timedOut, output });
    });
  });
}

// --- reading the templates ------------------------------------------------------------------------------

type Json = Record<string, unknown>;

/** One resource of a synthesized template. */
interface Resource {
  readonly stack: string;
  readonly id: string;
  readonly type: string;
  readonly props: Json;
}

/** Reads `<stage>-sortie-<Stack>.template.json` files, keyed by stack (`Data`, `Api`, ...). */
function readTemplates(outDir: string): Map<string, Json> {
  const prefix = `${STAGE}-sortie-`;
  const templates = new Map<string, Json>();
  for (const file of readdirSync(outDir)) {
    if (file.startsWith(prefix) && file.endsWith('.template.json')) {
      const stack = file.slice(prefix.length, -'.template.json'.length);
      templates.set(stack, JSON.parse(readFileSync(join(outDir, file), 'utf8')) as Json);
    }
  }
  return templates;
}

function resourcesOf(templates: Map<string, Json>, type: string): Resource[] {
  const found: Resource[] = [];
  for (const [stack, template] of templates) {
    const resources = (template.Resources ?? {}) as Record<string, { Type: string; Properties?: Json }>;
    for (const [id, resource] of Object.entries(resources)) {
      if (resource.Type === type) found.push({ stack, id, type, props: resource.Properties ?? {} });
    }
  }
  return found;
}

/** A stand-in for the ARN CloudFormation will put where `{ "Fn::GetAtt": [id, "Arn"] }` stands. */
function fakeFunctionArn(logicalId: string): string {
  return `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${logicalId}`;
}

// --- the suite ------------------------------------------------------------------------------------------

const missing = missingHandlerFiles();
if (missing.length > 0) {
  console.warn(
    `synth.test.ts: skipped until the manifest's handler files exist; missing: ${missing.join(', ')}`,
  );
}
const suiteName =
  missing.length > 0 ? `sst build (skipped: missing handler files ${missing.join(', ')})` : 'sst build';

describe.skipIf(missing.length > 0)(suiteName, () => {
  let fake: FakeAws;
  let outDir: string;
  let templates: Map<string, Json>;
  /** Manifest function name → logical id of its AWS::Lambda::Function. */
  const functionIds = new Map<FunctionName, { stack: string; id: string }>();

  function template(stack: string): Template {
    const json = templates.get(stack);
    if (!json) throw new Error(`no template for stack ${stack}; have ${[...templates.keys()].join(', ')}`);
    return Template.fromJSON(json);
  }

  function functionId(name: FunctionName): string {
    const found = functionIds.get(name);
    if (!found) throw new Error(`no Lambda function for manifest function ${name}`);
    return found.id;
  }

  beforeAll(async () => {
    // The launch function copies the agent bundle into its package.
    await buildAgentBundle();
    fake = await startFakeAws();
    outDir = mkdtempSync(join(tmpdir(), 'sortie-synth-'));
    const started = Date.now();
    const result = await sstBuild(outDir, fake.url);
    templates = readTemplates(outDir);
    // Judge by the files, not only the exit code: SST has exited 0 having built nothing.
    if (result.timedOut || result.code !== 0 || templates.size === 0) {
      throw new Error(
        `sst build ${result.timedOut ? `timed out after ${SYNTH_TIMEOUT_MS} ms` : `exited ${result.code}`} with ${templates.size} templates; AWS calls: ${fake.calls.join(', ')}\n${result.output.slice(-4000)}`,
      );
    }
    console.info(`sst build: ${templates.size} stacks in ${Date.now() - started} ms`);
    for (const fn of resourcesOf(templates, 'AWS::Lambda::Function')) {
      const name = (Object.keys(FUNCTIONS) as FunctionName[]).find(
        (n) => FUNCTIONS[n].handler === fn.props.Handler,
      );
      if (name) functionIds.set(name, { stack: fn.stack, id: fn.id });
    }
  }, SYNTH_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    if (outDir) rmSync(outDir, { recursive: true, force: true });
    if (fake) await new Promise((closed) => fake.server.close(closed));
  });

  it('builds the five stacks, asking AWS only who the caller is and about the bootstrap stacks', () => {
    expect([...templates.keys()].sort()).toEqual(['Api', 'Data', 'Events', 'Monitoring', 'Pilots']);
    // The bootstrap stacks are only looked up on some runs; nothing else may be asked.
    expect(fake.calls).toContain('GetCallerIdentity');
    const allowed = ['GetCallerIdentity', 'DescribeStacks CDKToolkit', 'DescribeStacks SSTBootstrap'];
    expect(fake.calls.filter((call) => !allowed.includes(call))).toEqual([]);
  });

  it('declares the one table: key schema, both GSIs, on-demand, point-in-time recovery', () => {
    const data = template('Data');
    data.resourceCountIs('AWS::DynamoDB::Table', 1);
    const { byParent, byPilot } = TABLE.indexes;
    const gsi = (index: {
      name: string;
      partitionKey: string;
      sortKey: string;
      projection: string;
    }): Json => ({
      IndexName: index.name,
      KeySchema: [
        { AttributeName: index.partitionKey, KeyType: 'HASH' },
        { AttributeName: index.sortKey, KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: index.projection },
    });
    data.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: TABLE.partitionKey, KeyType: 'HASH' }],
      AttributeDefinitions: Match.arrayEquals(
        Object.entries(TABLE.attributeTypes).map(([AttributeName, AttributeType]) => ({
          AttributeName,
          AttributeType,
        })),
      ),
      GlobalSecondaryIndexes: Match.arrayEquals([gsi(byParent), gsi(byPilot)]),
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
    expect(resourcesOf(templates, 'AWS::DynamoDB::Table')).toHaveLength(1);
  });

  it('declares the TRANSFER bucket: private, encrypted, TLS only, objects expired by a lifecycle rule', () => {
    const data = template('Data');
    data.resourceCountIs('AWS::S3::Bucket', 1);
    data.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LifecycleConfiguration: {
        Rules: [
          Match.objectLike({
            Status: 'Enabled',
            ExpirationInDays: BUCKET.expireDays,
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          }),
        ],
      },
    });
    // Only the two functions that presign (and the API, which deletes at close) may touch it.
    for (const fn of ['api', 'agentApi'] as const) {
      template('Api').hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: {
          Statement: Match.arrayWith([Match.objectLike({ Action: Match.arrayWith(['s3:PutObject']) })]),
        },
        Roles: [{ Ref: Match.stringLikeRegexp(`^${fn}ServiceRole`) }],
      });
    }
    for (const fn of ['launch', 'finalize', 'reconcile'] as const) {
      const policies = template(functionIds.get(fn)?.stack ?? '').findResources('AWS::IAM::Policy');
      for (const p of Object.values(policies) as Json[]) {
        if (JSON.stringify(p).includes(`${fn}ServiceRole`)) expect(JSON.stringify(p)).not.toContain('s3:');
      }
    }
  });

  it('declares the manifest queues, outside the per-pilot queue prefix, and the event source mappings', () => {
    const queues = resourcesOf(templates, 'AWS::SQS::Queue');
    expect(queues.map((q) => q.props.QueueName).sort()).toEqual(
      Object.values(QUEUES)
        .map((q) => `${STAGE}-${q.name}`)
        .sort(),
    );
    for (const q of queues) expect(String(q.props.QueueName).startsWith(PILOT_QUEUE_PREFIX)).toBe(false);
    const mappings = resourcesOf(templates, 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(EVENT_SOURCES.length);
    for (const [i, source] of EVENT_SOURCES.entries()) {
      expect(mappings[i]?.props.BatchSize).toBe(source.batchSize);
      expect(mappings[i]?.props.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    }
    const redriven = queues.find((q) => q.props.QueueName === `${STAGE}-${QUEUES.submissions.name}`);
    expect((redriven?.props.RedrivePolicy as { maxReceiveCount?: number } | undefined)?.maxReceiveCount).toBe(
      EVENT_SOURCES[0].maxReceiveCount,
    );
  });

  it('runs every schedule (the reconciler) from an EventBridge rate rule, and lets it read executions', () => {
    const rules = resourcesOf(templates, 'AWS::Events::Rule');
    expect(rules).toHaveLength(SCHEDULES.length);
    for (const [i, schedule] of SCHEDULES.entries()) {
      const rule = rules[i];
      expect(rule?.props.ScheduleExpression).toBe(`rate(${schedule.rateMinutes} minutes)`);
      const targets = rule?.props.Targets as { Arn?: Json }[];
      expect(JSON.stringify(targets[0]?.Arn)).toContain(functionId(schedule.function));
      const policies = resourcesOf(templates, 'AWS::IAM::Policy').filter((p) =>
        JSON.stringify(p.props.Roles).includes(functionId(schedule.function).replace(/[0-9A-F]{8}$/, '')),
      );
      expect(JSON.stringify(policies.map((p) => p.props.PolicyDocument))).toContain(
        'states:DescribeExecution',
      );
    }
  });

  it('creates every manifest function with its handler, memory, timeout, Node 22 on arm64 and the ENV names', () => {
    // SST's own custom-resource functions (index.handler) are not the manifest's.
    const ours = resourcesOf(templates, 'AWS::Lambda::Function').filter((fn) => {
      const variables = (fn.props.Environment as { Variables?: Json } | undefined)?.Variables ?? {};
      return ENV.table in variables;
    });
    expect(ours).toHaveLength(Object.keys(FUNCTIONS).length);
    for (const [name, spec] of Object.entries(FUNCTIONS) as [
      FunctionName,
      (typeof FUNCTIONS)[FunctionName],
    ][]) {
      const fn = ours.find((f) => f.id === functionIds.get(name)?.id);
      if (!fn) throw new Error(`no Lambda function for ${name} (${spec.handler})`);
      expect(fn.props).toMatchObject({
        Handler: spec.handler,
        MemorySize: spec.memoryMB,
        Timeout: spec.timeoutSeconds,
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
      });
      const variables = (fn.props.Environment as { Variables: Json }).Variables;
      expect(Object.keys(variables)).toEqual(expect.arrayContaining(Object.values(ENV)));
      // The secret is resolved by CloudFormation at deploy time, never written into the template.
      expect(JSON.stringify(variables[ENV.secretKey])).toContain('{{resolve:secretsmanager:');
    }
    // Routed functions live with the API, the state machine's with the state machine.
    for (const name of new Set(Object.values(ROUTES))) expect(functionIds.get(name)?.stack).toBe('Api');
    for (const name of Object.values(STATE_MACHINES.pilot.substitutions)) {
      expect(functionIds.get(name)?.stack).toBe('Pilots');
    }
  });

  it('runs the ASL file, each placeholder substituted by the ARN of the function the manifest names', () => {
    const machines = resourcesOf(templates, 'AWS::StepFunctions::StateMachine');
    expect(machines).toHaveLength(1);
    const props = machines[0]?.props ?? {};
    const definition = props.DefinitionString as string;
    const asl = JSON.parse(readFileSync(join(ROOT, STATE_MACHINES.pilot.aslFile), 'utf8')) as Json;
    expect(JSON.parse(definition)).toEqual(asl);
    expect(Object.keys(JSON.parse(definition).States)).toEqual(
      expect.arrayContaining(['Launch', 'WaitActive', 'Active', 'Finalize']),
    );

    // CloudFormation applies DefinitionSubstitutions at deploy; apply them here the same way.
    const substitutions = props.DefinitionSubstitutions as Record<string, unknown>;
    const expected = Object.fromEntries(
      Object.entries(STATE_MACHINES.pilot.substitutions).map(([placeholder, fn]) => [
        placeholder,
        { 'Fn::GetAtt': [functionId(fn), 'Arn'] },
      ]),
    );
    expect(substitutions).toEqual(expected);
    let resolved = definition;
    for (const [placeholder, fn] of Object.entries(STATE_MACHINES.pilot.substitutions)) {
      resolved = resolved.replaceAll(`\${${placeholder}}`, fakeFunctionArn(functionId(fn)));
    }
    expect(resolved).not.toContain('${');
    const states = JSON.parse(resolved).States as Record<string, { Parameters?: { FunctionName?: string } }>;
    expect(states.Launch?.Parameters?.FunctionName).toBe(fakeFunctionArn(functionId('launch')));
    expect(states.WaitActive?.Parameters?.FunctionName).toBe(fakeFunctionArn(functionId('awaitAgent')));
    expect(states.Finalize?.Parameters?.FunctionName).toBe(fakeFunctionArn(functionId('finalize')));
  });

  it('lets the state machine invoke its functions; logs errors only, without data; no tracing', () => {
    const pilots = template('Pilots');
    pilots.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineName: `${STAGE}-${STATE_MACHINES.pilot.name}`,
      StateMachineType: 'STANDARD',
      LoggingConfiguration: Match.objectLike({ Level: 'ERROR', IncludeExecutionData: false }),
      TracingConfiguration: { Enabled: false },
    });
    for (const fn of new Set(Object.values(STATE_MACHINES.pilot.substitutions))) {
      pilots.hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Action: 'lambda:InvokeFunction',
              Resource: Match.arrayWith([{ 'Fn::GetAtt': [functionId(fn), 'Arn'] }]),
            }),
          ]),
        },
        Roles: Match.arrayWith([{ Ref: Match.stringLikeRegexp('^PilotStateMachineRole') }]),
      });
    }
  });

  it("serves exactly the manifest's routes, each to its function (payload 2.0), without CORS, throttled", () => {
    const api = template('Api');
    api.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    api.hasResourceProperties('AWS::ApiGatewayV2::Api', { CorsConfiguration: Match.absent() });
    api.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      DefaultRouteSettings: { ThrottlingRateLimit: Match.anyValue(), ThrottlingBurstLimit: Match.anyValue() },
    });
    const integrations = new Map(
      resourcesOf(templates, 'AWS::ApiGatewayV2::Integration').map((r) => [r.id, r]),
    );
    const routes = resourcesOf(templates, 'AWS::ApiGatewayV2::Route');
    expect(routes.map((r) => r.props.RouteKey).sort()).toEqual(Object.keys(ROUTES).sort());
    for (const route of routes) {
      const target = JSON.stringify(route.props.Target);
      const integration = [...integrations.values()].find((i) => target.includes(`"${i.id}"`));
      expect(integration?.props, `integration of ${String(route.props.RouteKey)}`).toMatchObject({
        IntegrationType: 'AWS_PROXY',
        PayloadFormatVersion: '2.0',
        IntegrationUri: { 'Fn::GetAtt': [functionId(ROUTES[String(route.props.RouteKey)] ?? 'api'), 'Arn'] },
      });
    }
  });

  it("closes session creation behind AWS's authorizer (IAM without a JWT issuer); Sortie's tokens guard the rest", () => {
    const routes = resourcesOf(templates, 'AWS::ApiGatewayV2::Route');
    const authOf = (key: string) => routes.find((r) => r.props.RouteKey === key)?.props.AuthorizationType;
    expect(authOf(SESSION_ROUTE)).toBe('AWS_IAM');
    for (const key of Object.keys(ROUTES).filter((k) => k !== SESSION_ROUTE))
      expect([undefined, 'NONE'], key).toContain(authOf(key));
    // Endpoint mode's routes are served and guarded by endpoint tokens only (test/endpoint-api.test.ts
    // checks that session and pilot tokens get 401 there), not by an AWS authorizer the login node lacks.
    for (const key of ['GET /endpoint', 'POST /endpoint/poll', 'POST /endpoint/answer']) {
      expect(
        routes.some((r) => r.props.RouteKey === key),
        key,
      ).toBe(true);
      expect([undefined, 'NONE'], key).toContain(authOf(key));
    }
  });

  it('grants the API its executions, the agent API the task tokens, and every function the table and queues', () => {
    const tableArn = Match.arrayWith([{ 'Fn::ImportValue': Match.stringLikeRegexp('FnGetAttTable') }]);
    const pilotQueues = {
      'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp(`:${PILOT_QUEUE_PREFIX}\\*$`)])],
    };
    const expectRight = (fn: FunctionName, statement: Json): void => {
      template(functionIds.get(fn)?.stack ?? '').hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike(statement)]) },
        Roles: [{ Ref: Match.stringLikeRegexp(`^${fn}ServiceRole`) }],
      });
    };
    expectRight('api', { Action: 'states:StartExecution', Resource: Match.anyValue() });
    expectRight('agentApi', {
      Action: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
      Resource: '*',
    });
    for (const fn of Object.keys(FUNCTIONS) as FunctionName[]) {
      expectRight(fn, {
        Action: Match.arrayWith(['dynamodb:Query', 'dynamodb:PutItem']),
        Resource: tableArn,
      });
      expectRight(fn, { Action: Match.arrayWith(['sqs:GetQueueUrl']), Resource: pilotQueues });
    }
  });

  it("graphs every unit and pilot metric the handlers publish, the DLQs and DynamoDB's throttles", () => {
    const [dashboard] = Object.values(template('Monitoring').findResources('AWS::CloudWatch::Dashboard'));
    // The body is a Fn::Join of JSON pieces; its literal parts hold each metric's namespace/name/dimension.
    const body = JSON.stringify(dashboard?.Properties?.DashboardBody);
    for (const name of Object.values(METRICS.names)) {
      expect(body, name).toContain(
        JSON.stringify(
          JSON.stringify([METRICS.namespace, name, 'service', METRICS.service]).slice(1, -1),
        ).slice(1, -1),
      );
    }
    for (const title of [
      'Units by state',
      'Pilots by outcome',
      'Dead letters and DynamoDB throttles',
      'Errors',
    ])
      expect(body).toContain(title);
    expect(body).toContain('ApproximateNumberOfMessagesVisible');
    expect(body).toContain('ThrottledRequests');
  });

  it('alarms on each DLQ holding a message and on API 5xx', () => {
    const alarms = Object.values(template('Monitoring').findResources('AWS::CloudWatch::Alarm'));
    expect(alarms.map((a) => a.Properties.MetricName).sort()).toEqual([
      '5xx',
      'ApproximateNumberOfMessagesVisible',
      'ApproximateNumberOfMessagesVisible',
    ]);
    for (const a of alarms) {
      expect(a.Properties).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
    }
  });

  it('has the dashboard and outputs ApiUrl, TableName and StateMachineArn', () => {
    template('Monitoring').resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    template('Api').hasOutput('ApiUrl', {});
    template('Data').hasOutput('TableName', {});
    template('Pilots').hasOutput('StateMachineArn', {});
  });
});
