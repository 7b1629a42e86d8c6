/**
 * State machine definitions: validation with asl-validator (as CreateStateMachine does in AWS), the checks
 * for what this server can run, and the rewrite handed to aws-local-stepfunctions.
 *
 * The rewrite exists because the library gets some Task fields wrong for our purposes: it evaluates
 * TimeoutSecondsPath against the Parameters output rather than the state input, ignores HeartbeatSeconds[Path],
 * defaults every Task to a 60 s timeout (AWS: none), and only hands the local handler the effective parameters.
 * So each Task's timeout fields are removed (this server enforces them itself), the library's own timer is
 * pushed out of reach, and Parameters is wrapped so that the handler also receives the state input.
 */

import { createRequire } from 'node:module';
import { ApiError } from './errors.ts';
import { isJsonObject, type Json, type JsonObject } from './json.ts';
import { parseResource, SUPPORTED_RESOURCES, type TaskResource } from './resources.ts';

interface AslValidationResult {
  isValid: boolean;
  errorsText: (separator?: string) => string;
}
type AslValidator = (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => AslValidationResult;

// asl-validator is CommonJS without type declarations; load it through require and give it a type here.
const aslValidator = createRequire(import.meta.url)('asl-validator') as AslValidator;

/** Key under which the wrapped Parameters carry the state input (after InputPath) to the local handler. */
export const WRAPPED_INPUT = '__sortieStateInput';
/** Key under which the wrapped Parameters carry the task's real effective parameters. */
export const WRAPPED_PARAMETERS = '__sortieParameters';

/**
 * The largest timer Node can arm (2^31-1 ms, about 24.8 days), in whole seconds. Longer `setTimeout`s fire
 * after 1 ms instead, so every timeout beyond this is treated as "never".
 */
export const MAX_TIMER_SECONDS = Math.floor(2_147_483_647 / 1000);

/** What the server needs to know about one Task state. */
export interface TaskSpec {
  name: string;
  resource: TaskResource;
  timeoutSeconds: number | undefined;
  timeoutSecondsPath: string | undefined;
  heartbeatSeconds: number | undefined;
  heartbeatSecondsPath: string | undefined;
  /** True when the state had Parameters; otherwise the effective parameters are the state input. */
  hasParameters: boolean;
}

/** A validated definition, ready to run. */
export interface PreparedDefinition {
  /** The definition given to aws-local-stepfunctions (rewritten as described above). */
  runnable: JsonObject;
  /** Every Task state, including those inside Map and Parallel (AWS requires unique state names). */
  tasks: Map<string, TaskSpec>;
  /** Top-level TimeoutSeconds, enforced by the server (the library would overflow Node's timer). */
  timeoutSeconds: number | undefined;
}

function invalid(message: string): ApiError {
  return new ApiError('InvalidDefinition', `Invalid State Machine Definition: '${message}'`);
}

function optionalNumber(state: JsonObject, key: string): number | undefined {
  const value = state[key];
  return typeof value === 'number' ? value : undefined;
}

function optionalString(state: JsonObject, key: string): string | undefined {
  const value = state[key];
  return typeof value === 'string' ? value : undefined;
}

function hasField(params: Json | undefined, field: string): boolean {
  return isJsonObject(params) && (params[field] !== undefined || params[`${field}.$`] !== undefined);
}

function prepareTask(name: string, state: JsonObject): { spec: TaskSpec; runnable: JsonObject } {
  const resourceArn = optionalString(state, 'Resource') ?? '';
  const resource = parseResource(resourceArn);
  if (!resource) {
    throw invalid(
      `State '${name}': Resource '${resourceArn}' is not supported by the local Step Functions server ` +
        `(supported: ${SUPPORTED_RESOURCES.join(', ')})`,
    );
  }
  const params = state.Parameters;
  if (resource.kind === 'lambdaInvoke' && !hasField(params, 'FunctionName')) {
    throw invalid(`State '${name}': the field 'FunctionName' is required but was missing`);
  }
  if (
    resource.kind === 'sqsSendMessage' &&
    !(hasField(params, 'QueueUrl') && hasField(params, 'MessageBody'))
  ) {
    throw invalid(`State '${name}': the fields 'QueueUrl' and 'MessageBody' are required`);
  }
  const spec: TaskSpec = {
    name,
    resource,
    timeoutSeconds: optionalNumber(state, 'TimeoutSeconds'),
    timeoutSecondsPath: optionalString(state, 'TimeoutSecondsPath'),
    heartbeatSeconds: optionalNumber(state, 'HeartbeatSeconds'),
    heartbeatSecondsPath: optionalString(state, 'HeartbeatSecondsPath'),
    hasParameters: params !== undefined,
  };
  // The ASL spec: "HeartbeatSeconds MUST be smaller than TimeoutSeconds".
  if (spec.heartbeatSeconds !== undefined && spec.timeoutSeconds !== undefined) {
    if (spec.heartbeatSeconds >= spec.timeoutSeconds) {
      throw invalid(`State '${name}': HeartbeatSeconds must be smaller than TimeoutSeconds`);
    }
  }
  const { TimeoutSeconds, TimeoutSecondsPath, HeartbeatSeconds, HeartbeatSecondsPath, Parameters, ...rest } =
    state;
  const wrapped: JsonObject = { [`${WRAPPED_INPUT}.$`]: '$' };
  if (Parameters !== undefined) wrapped[WRAPPED_PARAMETERS] = Parameters;
  return { spec, runnable: { ...rest, TimeoutSeconds: MAX_TIMER_SECONDS, Parameters: wrapped } };
}

/** Rewrites the `States` of one (sub-)machine, collecting Task specs into `tasks`. */
function prepareStates(machine: JsonObject, tasks: Map<string, TaskSpec>): JsonObject {
  const states = machine.States;
  if (!isJsonObject(states)) return machine;
  const out: JsonObject = {};
  for (const [name, state] of Object.entries(states)) {
    if (!isJsonObject(state)) {
      out[name] = state;
      continue;
    }
    if (state.Type === 'Task') {
      const { spec, runnable } = prepareTask(name, state);
      tasks.set(name, spec);
      out[name] = runnable;
    } else if (state.Type === 'Map') {
      const copy: JsonObject = { ...state };
      for (const key of ['ItemProcessor', 'Iterator'] as const) {
        const sub = state[key];
        if (isJsonObject(sub)) copy[key] = prepareStates(sub, tasks);
      }
      out[name] = copy;
    } else if (state.Type === 'Parallel' && Array.isArray(state.Branches)) {
      out[name] = {
        ...state,
        Branches: state.Branches.map((branch) =>
          isJsonObject(branch) ? prepareStates(branch, tasks) : branch,
        ),
      };
    } else {
      out[name] = state;
    }
  }
  return { ...machine, States: out };
}

function usesJsonata(value: Json): boolean {
  if (Array.isArray(value)) return value.some(usesJsonata);
  if (!isJsonObject(value)) return false;
  if (value.QueryLanguage === 'JSONata') return true;
  return Object.values(value).some(usesJsonata);
}

/**
 * Parses and validates a definition and prepares it for running.
 * @throws ApiError InvalidDefinition for malformed JSON, anything asl-validator rejects, JSONata (which
 *   aws-local-stepfunctions would silently ignore) and Task resources this server cannot run.
 */
export function prepareDefinition(text: string): PreparedDefinition {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw invalid(`The definition is not valid JSON: ${(e as Error).message}`);
  }
  if (!isJsonObject(parsed)) throw invalid('The definition must be a JSON object');
  // asl-validator writes a QueryLanguage into every state it visits; validate a copy.
  const result = aslValidator(structuredClone(parsed), { checkPaths: true, checkArn: true });
  if (!result.isValid) throw invalid(result.errorsText('; '));
  if (usesJsonata(parsed)) {
    throw invalid('JSONata (QueryLanguage) is not supported locally; use JSONPath');
  }
  const tasks = new Map<string, TaskSpec>();
  const { TimeoutSeconds, ...top } = prepareStates(parsed, tasks);
  return {
    runnable: top,
    tasks,
    timeoutSeconds: typeof TimeoutSeconds === 'number' ? TimeoutSeconds : undefined,
  };
}

/** Splits what a rewritten Task's Parameters produced into the state input and the effective parameters. */
export function unwrapTaskInput(spec: TaskSpec, wrapped: unknown): { input: Json; params: Json } {
  const object = isJsonObject(wrapped) ? wrapped : {};
  const input = object[WRAPPED_INPUT] ?? null;
  const params = spec.hasParameters ? (object[WRAPPED_PARAMETERS] ?? null) : input;
  return { input, params };
}
