/**
 * Event-triggered submission: the submissions queue and the function its event source mapping feeds
 * (`EVENT_SOURCES`), with partial batch failures and a redrive to the submissions DLQ. Anything that may
 * send to the queue — an EventBridge rule, an S3-notified process, a user with sqs:SendMessage — submits
 * units without a session token; IAM on the queue is the authorization.
 */
import { Duration } from 'aws-cdk-lib';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { type StackContext, use } from 'sst/constructs';
import { Api } from './Api.ts';
import { Data } from './Data.ts';
import { EVENT_SOURCES, FUNCTIONS, QUEUES } from './manifest.ts';
import { EVENT_FUNCTIONS, functionOf, physicalName, sortieEnv, sortieFunctions } from './support.ts';

/** The Events stack: one queue and consumer per `EVENT_SOURCES` entry. */
export function Events({ stack }: StackContext) {
  const data = use(Data);
  const { api } = use(Api);
  const functions = sortieFunctions(stack, EVENT_FUNCTIONS, sortieEnv(stack, data, api.url), data);
  const dlqs = { submissionsDlq: data.submissionsDlq, unitsDlq: data.unitsDlq };
  for (const source of EVENT_SOURCES) {
    const queue = new Queue(stack, `${source.queue}Queue`, {
      queueName: physicalName(stack, QUEUES[source.queue].name),
      // Lambda's advice: at least six times the function timeout, so retries do not overlap a running batch.
      visibilityTimeout: Duration.seconds(FUNCTIONS[source.function].timeoutSeconds * 6),
      encryption: QueueEncryption.SQS_MANAGED,
      deadLetterQueue: { queue: dlqs[source.deadLetterQueue], maxReceiveCount: source.maxReceiveCount },
    });
    const fn = functionOf(functions, source.function);
    fn.addEventSource(
      new SqsEventSource(queue, { batchSize: source.batchSize, reportBatchItemFailures: true }),
    );
    data.submissionsDlq.grantSendMessages(fn);
    stack.addOutputs({ SubmissionsQueueUrl: queue.queueUrl });
  }
}
