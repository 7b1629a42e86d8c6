/**
 * Reference Paths (`$`, `$.a.b`, `$['a b'][0]`): the subset of JSONPath that ASL allows in
 * TimeoutSecondsPath and HeartbeatSecondsPath. aws-local-stepfunctions evaluates TimeoutSecondsPath against
 * the task's Parameters instead of its input and ignores HeartbeatSecondsPath, so this server evaluates both.
 */

import { runtimeError } from './errors.ts';
import { isJsonObject, type Json } from './json.ts';

type Step = string | number;

function parse(path: string): Step[] {
  if (!path.startsWith('$')) throw runtimeError(`Invalid reference path '${path}'`);
  const steps: Step[] = [];
  let rest = path.slice(1);
  while (rest.length > 0) {
    const dotted = /^\.([^.[\]]+)/.exec(rest);
    const quoted = /^\[\s*(['"])(.*?)\1\s*\]/.exec(rest);
    const indexed = /^\[\s*(\d+)\s*\]/.exec(rest);
    if (dotted?.[1] !== undefined) {
      steps.push(dotted[1]);
      rest = rest.slice(dotted[0].length);
    } else if (quoted?.[2] !== undefined) {
      steps.push(quoted[2]);
      rest = rest.slice(quoted[0].length);
    } else if (indexed?.[1] !== undefined) {
      steps.push(Number(indexed[1]));
      rest = rest.slice(indexed[0].length);
    } else {
      throw runtimeError(`Invalid reference path '${path}'`);
    }
  }
  return steps;
}

/** The value `path` selects in `data`, or undefined when it selects nothing. */
export function queryReferencePath(path: string, data: Json): Json | undefined {
  let current: Json | undefined = data;
  for (const step of parse(path)) {
    if (typeof step === 'number') {
      current = Array.isArray(current) ? current[step] : undefined;
    } else {
      current = isJsonObject(current) ? current[step] : undefined;
    }
    if (current === undefined) return undefined;
  }
  return current;
}

/**
 * Resolves a `...Seconds` / `...SecondsPath` pair to a number of seconds, or undefined if neither is set.
 * A path that selects nothing or a value that is not a positive integer fails the execution with
 * States.Runtime, which is what AWS does.
 */
export function resolveSeconds(
  fixed: number | undefined,
  path: string | undefined,
  field: string,
  input: Json,
): number | undefined {
  if (fixed !== undefined) return fixed;
  if (path === undefined) return undefined;
  const value = queryReferencePath(path, input);
  if (value === undefined) {
    throw runtimeError(`The ${field} '${path}' does not point to a value in the state input`);
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw runtimeError(`The ${field} '${path}' must select a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}
