/**
 * Lambda-style invocation of the handlers named in stacks/manifest.ts, in this process.
 *
 * Each invocation gets a fresh context (request id, remaining time) and is bounded by the function's
 * configured timeout, as Lambda bounds it. A thrown error keeps its `name`, which is what Step Functions
 * matches in Retry/Catch (Lambda's `errorType`).
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FUNCTIONS, type FunctionName } from '../stacks/manifest.ts';

/** A Lambda handler as the functions/ modules export it. */
export type Handler = (event: unknown, context: LambdaContext) => Promise<unknown>;

/** The part of Lambda's context object that Sortie's handlers use. */
export interface LambdaContext {
  functionName: string;
  awsRequestId: string;
  getRemainingTimeInMillis(): number;
}

/** Invocations and handler wall time of one function, as Lambda would bill them (the bench prices these). */
export interface InvocationStats {
  invocations: number;
  /** Sum of handler wall times (ms); concurrent invocations in this one process overlap, so it is an upper bound. */
  totalMs: number;
  /** Sum of per-invocation times rounded up to 1 ms, as Lambda bills duration. */
  billedMs: number;
}

/** Invocations of this process's handlers, by manifest function name. */
export const lambdaInvocations: Partial<Record<FunctionName, InvocationStats>> = {};

const root = path.resolve(import.meta.dirname, '..');
// The handlers sit beside this module in the same form: TypeScript sources in the repository (tsx, vitest),
// compiled .js in the installed package's dist/.
const handlerExt = path.extname(fileURLToPath(import.meta.url));
const loaded = new Map<FunctionName, Promise<Handler>>();

/** Imports (once) the handler module of a manifest function. */
export function loadHandler(name: FunctionName): Promise<Handler> {
  let h = loaded.get(name);
  if (!h) {
    const spec = FUNCTIONS[name].handler;
    const dot = spec.lastIndexOf('.');
    const file = pathToFileURL(path.join(root, `${spec.slice(0, dot)}${handlerExt}`)).href;
    const exportName = spec.slice(dot + 1);
    h = import(file).then((mod: Record<string, unknown>) => {
      const fn = mod[exportName];
      if (typeof fn !== 'function') throw new Error(`${spec}: module has no function export '${exportName}'`);
      return fn as Handler;
    });
    loaded.set(name, h);
  }
  return h;
}

/** Resolves a function name or ARN (`arn:aws:lambda:...:function:NAME`) to a manifest function. */
export function resolveFunction(nameOrArn: string): FunctionName {
  const name = nameOrArn.includes(':') ? (nameOrArn.split(':').pop() ?? '') : nameOrArn;
  if (!(name in FUNCTIONS)) {
    const err = new Error(`Function not found: ${nameOrArn}`);
    err.name = 'Lambda.ResourceNotFoundException';
    throw err;
  }
  return name as FunctionName;
}

const faults = new Map<FunctionName, string>();

/**
 * Makes every invocation of `name` fail with a Lambda service error named `errorName` before its handler
 * runs, until called again without one. For tests of what happens when Lambda itself keeps failing a
 * step (throttling, service errors), which cannot be caused for real on one machine.
 */
export function injectLambdaFault(name: FunctionName, errorName?: string): void {
  if (errorName) faults.set(name, errorName);
  else faults.delete(name);
}

/** Invokes a manifest function with Lambda's timeout semantics. */
export async function invoke(nameOrArn: string, event: unknown): Promise<unknown> {
  const name = resolveFunction(nameOrArn);
  const fault = faults.get(name);
  if (fault) {
    const err = new Error(`${name}: injected ${fault}`);
    err.name = fault;
    throw err;
  }
  const handler = await loadHandler(name);
  const timeoutMs = FUNCTIONS[name].timeoutSeconds * 1000;
  const deadline = Date.now() + timeoutMs;
  const context: LambdaContext = {
    functionName: name,
    awsRequestId: randomUUID(),
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`Task timed out after ${FUNCTIONS[name].timeoutSeconds}.00 seconds`);
      err.name = 'Sandbox.Timedout';
      reject(err);
    }, timeoutMs);
    timer.unref();
  });
  const started = performance.now();
  try {
    return await Promise.race([handler(event, context), timedOut]);
  } finally {
    clearTimeout(timer);
    const ms = performance.now() - started;
    const stats = lambdaInvocations[name] ?? { invocations: 0, totalMs: 0, billedMs: 0 };
    lambdaInvocations[name] = stats;
    stats.invocations++;
    stats.totalMs += ms;
    stats.billedMs += Math.max(1, Math.ceil(ms));
  }
}
