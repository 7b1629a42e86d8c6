/**
 * The Step Functions API actions over an in-memory store of state machines and executions. Request and
 * response bodies are the JSON documents of the AWS JSON 1.0 protocol; timestamps are epoch seconds.
 */

import { randomUUID } from 'node:crypto';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { assertName, assertStatesArn, executionArn, stateMachineArn } from './arn.ts';
import { prepareDefinition } from './definition.ts';
import { ApiError } from './errors.ts';
import { Execution, type ExecutionStatus, type MachineSnapshot } from './execution.ts';
import { serialiseEvent } from './history.ts';
import { isJsonObject, type Json, type JsonObject } from './json.ts';
import type { ResourceClients } from './resources.ts';
import { TokenRegistry } from './tokens.ts';

/** Settings of a backend. */
export interface BackendConfig {
  region: string;
  accountId: string;
  clients: ResourceClients;
}

interface MachineRecord extends MachineSnapshot {
  definition: string;
  creationDate: number;
}

type Request = JsonObject;
type Response = { [field: string]: Json | undefined };

const STATUSES: readonly ExecutionStatus[] = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'];

function seconds(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : ms / 1000;
}

function str(request: Request, field: string, required: true): string;
function str(request: Request, field: string, required?: false): string | undefined;
function str(request: Request, field: string, required = false): string | undefined {
  const value = request[field];
  if (value === undefined || value === null) {
    if (required) {
      throw new ApiError(
        'ValidationException',
        `1 validation error detected: Value at '${field}' must not be null`,
      );
    }
    return undefined;
  }
  if (typeof value !== 'string') throw new ApiError('ValidationException', `'${field}' must be a string`);
  return value;
}

/** Pages `items` with an opaque offset token, as the List* and GetExecutionHistory actions do. */
function page<T>(items: T[], request: Request): { items: T[]; nextToken: string | undefined } {
  const max = typeof request.maxResults === 'number' && request.maxResults > 0 ? request.maxResults : 100;
  if (max > 1000) throw new ApiError('ValidationException', "'maxResults' must be at most 1000");
  const token = str(request, 'nextToken');
  const start = token === undefined ? 0 : Number.parseInt(Buffer.from(token, 'base64url').toString(), 10);
  if (!Number.isInteger(start) || start < 0 || start > items.length) {
    throw new ApiError('InvalidToken', 'Invalid Token: the nextToken is not valid');
  }
  const end = start + max;
  return {
    items: items.slice(start, end),
    nextToken: end < items.length ? Buffer.from(String(end)).toString('base64url') : undefined,
  };
}

/** The state machines, executions and task tokens of one local server. */
export class Backend {
  private readonly machines = new Map<string, MachineRecord>();
  private readonly executions = new Map<string, Execution>();
  private readonly tokens = new TokenRegistry();

  constructor(private readonly config: BackendConfig) {}

  /** Runs an action; throws ApiError for anything the caller should see as an AWS error. */
  handle(action: string, request: Request): Response {
    switch (action) {
      case 'CreateStateMachine':
        return this.createStateMachine(request);
      case 'DescribeStateMachine':
        return this.describeStateMachine(request);
      case 'ListStateMachines':
        return this.listStateMachines(request);
      case 'DeleteStateMachine':
        return this.deleteStateMachine(request);
      case 'StartExecution':
        return this.startExecution(request);
      case 'DescribeExecution':
        return this.describeExecution(request);
      case 'ListExecutions':
        return this.listExecutions(request);
      case 'StopExecution':
        return this.stopExecution(request);
      case 'GetExecutionHistory':
        return this.getExecutionHistory(request);
      case 'SendTaskSuccess':
        return this.sendTaskSuccess(request);
      case 'SendTaskFailure':
        this.tokens.fail(request.taskToken, str(request, 'error') ?? '', str(request, 'cause') ?? '');
        return {};
      case 'SendTaskHeartbeat':
        this.tokens.heartbeat(request.taskToken);
        return {};
      default:
        throw new ApiError(
          'UnknownOperationException',
          `Operation ${action} is not supported by the local server`,
        );
    }
  }

  /** Stops every running execution (server shutdown) and waits until each has written its final event. */
  async shutdown(): Promise<void> {
    const running = [...this.executions.values()].filter((e) => e.running);
    for (const execution of running)
      execution.stop('Sortie.LocalServerClosed', 'The local Step Functions server closed');
    await Promise.all(running.map((e) => e.finished));
  }

  private machine(arnValue: unknown): MachineRecord {
    const arn = assertStatesArn(arnValue, 'stateMachine', 'stateMachineArn');
    const machine = this.machines.get(arn);
    if (!machine) throw new ApiError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${arn}'`);
    return machine;
  }

  private execution(arnValue: unknown): Execution {
    const arn = assertStatesArn(arnValue, 'execution', 'executionArn');
    const execution = this.executions.get(arn);
    if (!execution) throw new ApiError('ExecutionDoesNotExist', `Execution Does Not Exist: '${arn}'`);
    return execution;
  }

  private createStateMachine(request: Request): Response {
    const { region, accountId } = this.config;
    const name = assertName(str(request, 'name', true), 'state machine');
    const definition = str(request, 'definition', true);
    const type = str(request, 'type') ?? 'STANDARD';
    if (type !== 'STANDARD') {
      throw new ApiError(
        'StateMachineTypeNotSupported',
        `Only STANDARD state machines run locally, not ${type}`,
      );
    }
    const roleArn = str(request, 'roleArn') ?? `arn:aws:iam::${accountId}:role/sortie-local-stepfunctions`;
    const arn = stateMachineArn(region, accountId, name);
    const existing = this.machines.get(arn);
    if (existing) {
      // AWS makes CreateStateMachine idempotent for an identical definition and role.
      if (existing.definition === definition && existing.roleArn === roleArn) {
        return { stateMachineArn: arn, creationDate: seconds(existing.creationDate) };
      }
      throw new ApiError('StateMachineAlreadyExists', `State Machine Already Exists: '${arn}'`);
    }
    const prepared = prepareDefinition(definition);
    // prepareDefinition validated the original; validating the mechanical rewrite again would double the
    // cost (asl-validator compiles its schema on every call, ~200 ms).
    const engine = new StateMachine(prepared.runnable as unknown as StateMachineDefinition, {
      validationOptions: { noValidate: true },
    });
    const record: MachineRecord = {
      arn,
      name,
      roleArn,
      definition,
      prepared,
      engine,
      creationDate: Date.now(),
    };
    this.machines.set(arn, record);
    return { stateMachineArn: arn, creationDate: seconds(record.creationDate) };
  }

  private describeStateMachine(request: Request): Response {
    const m = this.machine(request.stateMachineArn);
    return {
      stateMachineArn: m.arn,
      name: m.name,
      status: 'ACTIVE',
      definition: m.definition,
      roleArn: m.roleArn,
      type: 'STANDARD',
      creationDate: seconds(m.creationDate),
      loggingConfiguration: { level: 'OFF', includeExecutionData: false },
    };
  }

  private listStateMachines(request: Request): Response {
    const all = [...this.machines.values()].sort((a, b) => a.name.localeCompare(b.name));
    const { items, nextToken } = page(all, request);
    return {
      stateMachines: items.map((m) => ({
        stateMachineArn: m.arn,
        name: m.name,
        type: 'STANDARD',
        creationDate: seconds(m.creationDate) ?? null,
      })),
      nextToken,
    };
  }

  private deleteStateMachine(request: Request): Response {
    const arn = assertStatesArn(request.stateMachineArn, 'stateMachine', 'stateMachineArn');
    // AWS answers success for a machine that is already gone; its running executions are stopped.
    if (this.machines.delete(arn)) {
      for (const execution of this.executions.values()) {
        if (execution.machine.arn === arn) execution.stop(undefined, 'The state machine was deleted');
      }
    }
    return {};
  }

  private startExecution(request: Request): Response {
    const { region, accountId } = this.config;
    const machine = this.machine(request.stateMachineArn);
    const name = assertName(str(request, 'name') ?? randomUUID(), 'execution');
    const input = str(request, 'input') ?? '{}';
    try {
      JSON.parse(input);
    } catch {
      throw new ApiError(
        'InvalidExecutionInput',
        'Invalid State Machine Execution Input: the input is not JSON',
      );
    }
    const arn = executionArn(region, accountId, machine.name, name);
    const existing = this.executions.get(arn);
    if (existing) {
      // Standard workflows: the same name and input while still running is an idempotent retry.
      if (existing.running && existing.input === input) {
        return { executionArn: arn, startDate: seconds(existing.startDate) };
      }
      throw new ApiError('ExecutionAlreadyExists', `Execution Already Exists: '${arn}'`);
    }
    const snapshot: MachineSnapshot = {
      arn: machine.arn,
      name: machine.name,
      roleArn: machine.roleArn,
      prepared: machine.prepared,
      engine: machine.engine,
    };
    const execution = new Execution(arn, name, snapshot, input, {
      region,
      tokens: this.tokens,
      clients: this.config.clients,
    });
    this.executions.set(arn, execution);
    return { executionArn: arn, startDate: seconds(execution.startDate) };
  }

  private describeExecution(request: Request): Response {
    const e = this.execution(request.executionArn);
    return {
      executionArn: e.executionArn,
      stateMachineArn: e.machine.arn,
      name: e.name,
      status: e.status,
      startDate: seconds(e.startDate),
      stopDate: seconds(e.stopDate),
      input: e.input,
      inputDetails: { included: true },
      output: e.output,
      outputDetails: e.output === undefined ? undefined : { included: true },
      error: e.error,
      cause: e.cause,
      redriveCount: 0,
      redriveStatus: 'NOT_REDRIVABLE',
    };
  }

  private listExecutions(request: Request): Response {
    const machineArn = assertStatesArn(request.stateMachineArn, 'stateMachine', 'stateMachineArn');
    if (
      !this.machines.has(machineArn) &&
      ![...this.executions.values()].some((e) => e.machine.arn === machineArn)
    ) {
      throw new ApiError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${machineArn}'`);
    }
    const filter = str(request, 'statusFilter');
    if (filter !== undefined && !STATUSES.includes(filter as ExecutionStatus)) {
      throw new ApiError('ValidationException', `'statusFilter' must be one of ${STATUSES.join(', ')}`);
    }
    const matching = [...this.executions.values()]
      .filter((e) => e.machine.arn === machineArn && (filter === undefined || e.status === filter))
      .reverse(); // newest first, as AWS lists them
    const { items, nextToken } = page(matching, request);
    return {
      executions: items.map((e) => {
        const item: JsonObject = {
          executionArn: e.executionArn,
          stateMachineArn: e.machine.arn,
          name: e.name,
          status: e.status,
          startDate: e.startDate / 1000,
        };
        if (e.stopDate !== undefined) item.stopDate = e.stopDate / 1000;
        return item;
      }),
      nextToken,
    };
  }

  private stopExecution(request: Request): Response {
    const e = this.execution(request.executionArn);
    e.stop(str(request, 'error'), str(request, 'cause'));
    return { stopDate: seconds(e.stopDate ?? Date.now()) };
  }

  private getExecutionHistory(request: Request): Response {
    const e = this.execution(request.executionArn);
    const includeData = request.includeExecutionData !== false;
    const events = request.reverseOrder === true ? [...e.history.events].reverse() : e.history.events;
    const { items, nextToken } = page(events, request);
    return { events: items.map((event) => serialiseEvent(event, includeData)), nextToken };
  }

  private sendTaskSuccess(request: Request): Response {
    const text = str(request, 'output', true);
    let output: Json;
    try {
      output = JSON.parse(text) as Json;
    } catch {
      throw new ApiError('InvalidOutput', 'Invalid Output: the output is not JSON');
    }
    this.tokens.succeed(request.taskToken, output);
    return {};
  }
}

/** True when a parsed request body is a JSON object (the protocol sends nothing else). */
export function isRequest(value: unknown): value is Request {
  return isJsonObject(value);
}
