/**
 * The pilot lifecycle: the state machine from the manifest's ASL file and the functions it invokes.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { type Function as SstFunction, type StackContext, use } from 'sst/constructs';
import { Api } from './Api.ts';
import { Data } from './Data.ts';
import { type FunctionName, SCHEDULES, STATE_MACHINES } from './manifest.ts';
import {
  functionOf,
  PILOT_FUNCTIONS,
  physicalName,
  pilotExecutionsArn,
  SCHEDULED_FUNCTIONS,
  sortieEnv,
  sortieFunctions,
} from './support.ts';

/** What the Pilots stack hands to the stacks after it. */
export interface PilotsOutputs {
  /** The pilot state machine (one execution per pilot). */
  readonly stateMachine: StateMachine;
  /** The functions the state machine invokes, keyed by manifest name. */
  readonly functions: ReadonlyMap<FunctionName, SstFunction>;
}

/** The Pilots stack: the pilot state machine, its functions and its log group. */
export function Pilots({ stack }: StackContext): PilotsOutputs {
  const data = use(Data);
  // The launcher writes the API's URL into each agent's config, so this stack comes after Api.
  const { api } = use(Api);
  const spec = STATE_MACHINES.pilot;
  const functions = sortieFunctions(
    stack,
    [...PILOT_FUNCTIONS, ...SCHEDULED_FUNCTIONS],
    sortieEnv(stack, data, api.url),
    data,
  );
  // Finalize counts its execution's transitions into the session's usage (functions/lib/usage.ts).
  functionOf(functions, 'finalize').addToRolePolicy(
    new PolicyStatement({ actions: ['states:GetExecutionHistory'], resources: [pilotExecutionsArn(stack)] }),
  );
  // awaitAgent releases a token itself when the agent won the race; finalize may fail one.
  for (const name of ['awaitAgent', 'finalize'] as const) {
    functionOf(functions, name).addToRolePolicy(
      new PolicyStatement({
        actions: ['states:SendTaskSuccess', 'states:SendTaskFailure'],
        resources: ['*'],
      }),
    );
  }

  // The reconciler reads each live pilot's execution and runs Finalize's handler in-process (which may
  // fail a waiting token); an EventBridge rule runs it every `rateMinutes`.
  for (const schedule of SCHEDULES) {
    const fn = functionOf(functions, schedule.function);
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
        resources: [pilotExecutionsArn(stack)],
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['states:SendTaskSuccess', 'states:SendTaskFailure'],
        resources: ['*'],
      }),
    );
    new Rule(stack, `${schedule.function}Schedule`, {
      schedule: Schedule.rate(Duration.minutes(schedule.rateMinutes)),
      targets: [new LambdaFunction(fn, { retryAttempts: 0 })],
    });
  }

  // `/aws/vendedlogs/` names keep CloudWatch Logs' resource policy from growing with every state machine.
  const logGroup = new LogGroup(stack, 'PilotLogs', {
    logGroupName: `/aws/vendedlogs/states/${physicalName(stack, spec.name)}`,
    retention: RetentionDays.ONE_MONTH,
    removalPolicy: RemovalPolicy.DESTROY,
  });

  // Inlined (fromString) rather than an S3 asset (fromFile): the template is self-contained and the same
  // file runs under the local Step Functions. CloudFormation replaces each `${Name}` at deploy time.
  // The synth runs with the project root as working directory, which is what `aslFile` is relative to.
  const definitionSubstitutions: Record<string, string> = {};
  for (const [placeholder, name] of Object.entries(spec.substitutions)) {
    definitionSubstitutions[placeholder] = functionOf(functions, name).functionArn;
  }
  const stateMachine = new StateMachine(stack, 'PilotStateMachine', {
    // A fixed name: the functions find the machine by an ARN computed from it (see pilotStateMachineArn).
    stateMachineName: physicalName(stack, spec.name),
    // Standard, not Express: pilots wait for task tokens for hours.
    stateMachineType: StateMachineType.STANDARD,
    definitionBody: DefinitionBody.fromString(readFileSync(resolve(spec.aslFile), 'utf8')),
    definitionSubstitutions,
    // Errors only, without payloads: execution data holds unit descriptions and would cost per pilot.
    logs: { destination: logGroup, level: LogLevel.ERROR, includeExecutionData: false },
    tracingEnabled: false,
  });
  // fromString gives CDK no task objects to derive rights from, so grant the invocations explicitly.
  for (const name of PILOT_FUNCTIONS) functionOf(functions, name).grantInvoke(stateMachine);

  stack.addOutputs({ StateMachineArn: stateMachine.stateMachineArn });
  return { stateMachine, functions };
}
