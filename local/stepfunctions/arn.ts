/** ARNs and names as the Step Functions API builds, parses and validates them. */

import { ApiError } from './errors.ts';

/** `arn:aws:states:<region>:<account>:stateMachine:<name>` */
export function stateMachineArn(region: string, accountId: string, name: string): string {
  return `arn:aws:states:${region}:${accountId}:stateMachine:${name}`;
}

/** `arn:aws:states:<region>:<account>:execution:<stateMachineName>:<executionName>` */
export function executionArn(region: string, accountId: string, machineName: string, name: string): string {
  return `arn:aws:states:${region}:${accountId}:execution:${machineName}:${name}`;
}

/**
 * Throws InvalidArn unless `arn` is a Step Functions ARN of the given resource type, as AWS does before it
 * looks anything up (a malformed ARN is InvalidArn, a well-formed unknown one is ...DoesNotExist).
 */
export function assertStatesArn(arn: unknown, kind: 'stateMachine' | 'execution', field: string): string {
  if (typeof arn !== 'string' || arn.length === 0) {
    throw new ApiError(
      'ValidationException',
      `1 validation error detected: Value at '${field}' must not be null`,
    );
  }
  const parts = arn.split(':');
  const minParts = kind === 'execution' ? 8 : 7;
  if (parts.length < minParts || parts[0] !== 'arn' || parts[2] !== 'states' || parts[5] !== kind) {
    throw new ApiError('InvalidArn', `Invalid Arn: 'Resource type not valid in this context: ${arn}'`);
  }
  return arn;
}

// Characters AWS refuses in state machine and execution names (control characters are checked apart).
const FORBIDDEN_NAME_CHARS = /[\s<>{}[\]?*"#%\\^|~`$&,;:/]/;

function hasControlCharacter(name: string): boolean {
  for (const char of name) {
    const code = char.codePointAt(0) ?? 0;
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return true;
  }
  return false;
}

/** Throws InvalidName unless `name` is 1–80 characters without the characters AWS forbids. */
export function assertName(name: unknown, what: string): string {
  if (
    typeof name !== 'string' ||
    name.length < 1 ||
    name.length > 80 ||
    FORBIDDEN_NAME_CHARS.test(name) ||
    hasControlCharacter(name)
  ) {
    throw new ApiError('InvalidName', `Invalid Name: '${String(name)}' is not a valid ${what} name`);
  }
  return name;
}

/**
 * The bare function name of a Lambda reference: a name (`fn`), a qualified name (`fn:live`), a partial ARN
 * (`123456789012:function:fn`) or a full ARN (`arn:aws:lambda:<region>:<acct>:function:fn[:qualifier]`).
 * Local handlers are keyed by name, and a qualifier (version or alias) has no local meaning.
 */
export function lambdaFunctionName(ref: string): string {
  const parts = ref.split(':');
  const functionIndex = parts.indexOf('function');
  if (functionIndex >= 0 && parts[functionIndex + 1]) return parts[functionIndex + 1] as string;
  if (parts[0] === 'arn') return parts[parts.length - 1] ?? ref;
  return parts[0] ?? ref;
}
