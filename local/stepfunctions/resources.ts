/**
 * The Task resources this server can run, and how each one is called. Everything else is refused when the
 * state machine is created, so that an unsupported integration is a clear InvalidDefinition at deploy time
 * instead of a puzzling failure at run time.
 */

import { SendMessageCommand, type SendMessageCommandInput, type SQSClient } from '@aws-sdk/client-sqs';
import { lambdaFunctionName } from './arn.ts';
import { lambdaFailure, runtimeError, TaskError } from './errors.ts';
import { isJsonObject, type Json, toJson } from './json.ts';

/** A parsed Task `Resource`. */
export type TaskResource =
  /** `arn:aws:states:::lambda:invoke[.waitForTaskToken]`: Parameters are `{FunctionName, Payload}`. */
  | { kind: 'lambdaInvoke'; arn: string; waitForTaskToken: boolean }
  /** A Lambda function ARN: the effective input is the payload, the result is the return value. */
  | { kind: 'lambdaFunction'; arn: string; functionName: string; waitForTaskToken: false }
  /** `arn:aws:states:::sqs:sendMessage[.waitForTaskToken]`: Parameters are SendMessage's input. */
  | { kind: 'sqsSendMessage'; arn: string; waitForTaskToken: boolean };

/** Resources accepted by {@link parseResource}, for error messages. */
export const SUPPORTED_RESOURCES = [
  'arn:aws:states:::lambda:invoke',
  'arn:aws:states:::lambda:invoke.waitForTaskToken',
  'arn:aws:lambda:<region>:<account>:function:<name>',
  'arn:aws:states:::sqs:sendMessage',
  'arn:aws:states:::sqs:sendMessage.waitForTaskToken',
];

/** Parses a Task `Resource`; undefined if this server cannot run it. */
export function parseResource(arn: string): TaskResource | undefined {
  switch (arn) {
    case 'arn:aws:states:::lambda:invoke':
      return { kind: 'lambdaInvoke', arn, waitForTaskToken: false };
    case 'arn:aws:states:::lambda:invoke.waitForTaskToken':
      return { kind: 'lambdaInvoke', arn, waitForTaskToken: true };
    case 'arn:aws:states:::sqs:sendMessage':
      return { kind: 'sqsSendMessage', arn, waitForTaskToken: false };
    case 'arn:aws:states:::sqs:sendMessage.waitForTaskToken':
      return { kind: 'sqsSendMessage', arn, waitForTaskToken: true };
  }
  if (/^arn:aws[\w-]*:lambda:[^:]*:[^:]*:function:[^:]+(:[^:]+)?$/.test(arn)) {
    return { kind: 'lambdaFunction', arn, functionName: lambdaFunctionName(arn), waitForTaskToken: false };
  }
  return undefined;
}

/**
 * `resourceType` and `resource` of Task* history events: for `arn:aws:states:::lambda:invoke.waitForTaskToken`
 * AWS records `lambda` and `invoke.waitForTaskToken`.
 */
export function describeResource(resource: TaskResource): { resourceType: string; resource: string } {
  if (resource.kind === 'lambdaFunction') return { resourceType: 'lambda', resource: resource.arn };
  const [resourceType = '', action = ''] = resource.arn.slice('arn:aws:states:::'.length).split(':');
  return { resourceType, resource: action };
}

/** What a resource call needs from the server's options. */
export interface ResourceClients {
  invokeLambda: (functionName: string, payload: unknown) => Promise<unknown>;
  sqs: SQSClient | undefined;
}

async function invoke(clients: ResourceClients, functionName: string, payload: Json): Promise<Json> {
  let value: unknown;
  try {
    value = await clients.invokeLambda(lambdaFunctionName(functionName), payload);
  } catch (thrown) {
    const { error, cause } = lambdaFailure(thrown);
    throw new TaskError(error, cause);
  }
  return toJson(value);
}

async function sendMessage(clients: ResourceClients, params: Json): Promise<Json> {
  if (!clients.sqs) {
    throw runtimeError(
      'sqs:sendMessage needs the `sqs` option of startLocalStepFunctions, which was not given',
    );
  }
  if (!isJsonObject(params) || typeof params.QueueUrl !== 'string' || params.MessageBody === undefined) {
    throw runtimeError('sqs:sendMessage Parameters need a string QueueUrl and a MessageBody');
  }
  const { MessageBody: body, ...rest } = params;
  // AWS serialises a non-string MessageBody as JSON, which is how task tokens usually travel to workers.
  const input = {
    ...rest,
    MessageBody: typeof body === 'string' ? body : JSON.stringify(body),
  } as unknown as SendMessageCommandInput;
  try {
    const out = await clients.sqs.send(new SendMessageCommand(input));
    const result: { [key: string]: Json } = {};
    for (const key of [
      'MessageId',
      'MD5OfMessageBody',
      'MD5OfMessageAttributes',
      'SequenceNumber',
    ] as const) {
      const value = out[key];
      if (value !== undefined) result[key] = value;
    }
    return result;
  } catch (thrown) {
    // AWS prefixes the service's exception name, e.g. `SQS.QueueDoesNotExistException`.
    const name = thrown instanceof Error ? thrown.name : 'AmazonSQSException';
    const message = thrown instanceof Error ? thrown.message : String(thrown);
    throw new TaskError(`SQS.${name}`, message);
  }
}

/**
 * Calls the resource with the task's effective parameters. For a waitForTaskToken resource the result is
 * the submission's response (recorded as TaskSubmitted, otherwise ignored); for the others it is the task
 * result. Rejects with a {@link TaskError} carrying the error name AWS would report.
 */
export async function callResource(
  clients: ResourceClients,
  resource: TaskResource,
  params: Json,
): Promise<Json> {
  switch (resource.kind) {
    case 'lambdaFunction':
      return invoke(clients, resource.functionName, params);
    case 'lambdaInvoke': {
      if (!isJsonObject(params) || typeof params.FunctionName !== 'string') {
        throw runtimeError('lambda:invoke Parameters need a string FunctionName');
      }
      // Invoking a Lambda without a payload hands it `{}`.
      const payload = await invoke(clients, params.FunctionName, params.Payload ?? {});
      return { Payload: payload, StatusCode: 200 };
    }
    case 'sqsSendMessage':
      return sendMessage(clients, params);
  }
}
