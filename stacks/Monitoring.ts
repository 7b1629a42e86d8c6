/**
 * The CloudWatch dashboard of the cloud console: units and pilots by state from the handlers' own
 * metrics (`METRICS`, published as EMF by functions/lib/metrics.ts), the dead-letter queues, DynamoDB
 * throttles, and Lambda/API errors and durations from the metrics AWS publishes; alarms on DLQ depth and
 * API 5xx.
 */
import { Duration } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IWidget,
  Metric,
  Stats,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import type { Function as SstFunction, StackContext } from 'sst/constructs';
import { use } from 'sst/constructs';
import { Api } from './Api.ts';
import { Data } from './Data.ts';
import { type FunctionName, METRICS, type MetricName } from './manifest.ts';
import { Pilots } from './Pilots.ts';
import { physicalName } from './support.ts';

/** Five minutes: CloudWatch's standard resolution for these metrics, and a steady graph at low traffic. */
const PERIOD = Duration.minutes(5);

/** One metric per function, labelled with its manifest name. */
function perFunction(
  functions: ReadonlyMap<FunctionName, SstFunction>,
  metric: (fn: SstFunction) => Metric,
): Metric[] {
  return [...functions].map(([name, fn]) => metric(fn).with({ label: name, period: PERIOD }));
}

/**
 * A widget as the dashboard takes it. aws-cdk-lib's classes declare optional getters as `T | undefined`
 * where its interfaces say `?: T`, which `exactOptionalPropertyTypes` rejects; the objects are the same.
 */
function widget(w: GraphWidget): IWidget {
  return w as IWidget;
}

/** One of the handlers' own metrics (namespace and `service` dimension of `METRICS`), summed per period. */
function sortieMetric(name: MetricName, label: string): Metric {
  return new Metric({
    namespace: METRICS.namespace,
    metricName: name,
    dimensionsMap: { service: METRICS.service },
    statistic: Stats.SUM,
    period: PERIOD,
    label,
  });
}

/** The Monitoring stack: one dashboard named `<stage>-sortie` and its alarms. */
export function Monitoring({ stack }: StackContext): void {
  const { table, unitsDlq, submissionsDlq } = use(Data);
  const { api, functions: apiFunctions } = use(Api);
  const { stateMachine, functions: pilotFunctions } = use(Pilots);
  const functions = new Map([...apiFunctions, ...pilotFunctions]);
  const sum = { statistic: Stats.SUM, period: PERIOD };

  const N = METRICS.names;
  const dlqDepth = (label: string, q: typeof unitsDlq) =>
    q.metricApproximateNumberOfMessagesVisible({ statistic: Stats.MAXIMUM, period: PERIOD, label });
  const serverErrors = api.cdk.httpApi.metricServerError({ ...sum, label: 'API 5xx' });

  const dashboard = new Dashboard(stack, 'Dashboard', { dashboardName: physicalName(stack, 'sortie') });
  dashboard.addWidgets(
    // The units' life, counted from the store's own state changes: one line per state entered.
    widget(
      new GraphWidget({
        title: 'Units by state',
        left: [
          sortieMetric(N.unitsSubmitted, 'submitted'),
          sortieMetric(N.unitsClaimed, 'claimed'),
          sortieMetric(N.unitsStarted, 'started'),
          sortieMetric(N.unitsDone, 'done'),
          sortieMetric(N.unitsFailed, 'failed'),
          sortieMetric(N.unitsCanceled, 'canceled'),
        ],
        width: 12,
      }),
    ),
    widget(
      new GraphWidget({
        title: 'Claims refused, units rescheduled and swept',
        left: [
          sortieMetric(N.claimsRefused, 'claims refused'),
          sortieMetric(N.unitsRescheduled, 'rescheduled'),
          sortieMetric(N.unitsSwept, 'swept'),
        ],
        // One UnitsSwept datapoint per pilot end: its average is the sweep per pilot end.
        right: [sortieMetric(N.unitsSwept, 'swept per pilot end').with({ statistic: Stats.AVERAGE })],
        width: 12,
      }),
    ),
  );
  dashboard.addWidgets(
    widget(
      new GraphWidget({
        title: 'Pilots by outcome',
        left: [
          sortieMetric(N.pilotsSubmitted, 'submitted'),
          sortieMetric(N.pilotsActive, 'active'),
          sortieMetric(N.pilotsDone, 'done'),
          sortieMetric(N.pilotsFailed, 'failed'),
          sortieMetric(N.pilotsCanceled, 'canceled'),
        ],
        width: 12,
      }),
    ),
    widget(
      new GraphWidget({
        title: 'Dead letters and DynamoDB throttles',
        left: [dlqDepth('units DLQ', unitsDlq), dlqDepth('submissions DLQ', submissionsDlq)],
        right: [table.metricThrottledRequestsForOperations({ ...sum, label: 'DynamoDB throttles' })],
        rightYAxis: { label: 'throttles' },
        width: 12,
      }),
    ),
  );
  dashboard.addWidgets(
    // Every pilot is one execution, so execution outcomes are pilots by final state.
    widget(
      new GraphWidget({
        title: 'Pilots by state (executions)',
        left: [
          stateMachine.metricStarted({ ...sum, label: 'started' }),
          stateMachine.metricSucceeded({ ...sum, label: 'ended (DONE/CANCELED)' }),
          stateMachine.metricFailed({ ...sum, label: 'FAILED' }),
          stateMachine.metricTimedOut({ ...sum, label: 'timed out' }),
          stateMachine.metricAborted({ ...sum, label: 'aborted' }),
        ],
        width: 12,
      }),
    ),
    // Agents report unit states and pull units through the agent API, clients submit through the API:
    // their invocation rates are the unit throughput (each call carries a batch of units).
    widget(
      new GraphWidget({
        title: 'Throughput (invocations)',
        left: perFunction(functions, (fn) => fn.metricInvocations({ statistic: Stats.SUM })),
        width: 12,
      }),
    ),
  );
  dashboard.addWidgets(
    widget(
      new GraphWidget({
        title: 'Errors',
        left: [...perFunction(functions, (fn) => fn.metricErrors({ statistic: Stats.SUM })), serverErrors],
        right: perFunction(functions, (fn) => fn.metricThrottles({ statistic: Stats.SUM })),
        rightYAxis: { label: 'throttles' },
        width: 12,
      }),
    ),
    widget(
      new GraphWidget({
        title: 'Duration p99 (ms)',
        left: perFunction(functions, (fn) => fn.metricDuration({ statistic: Stats.p(99) })),
        width: 12,
      }),
    ),
  );
  // A dead letter is a unit or submission that no retry could deliver: someone should look at once.
  for (const [id, q] of [
    ['UnitsDlqAlarm', unitsDlq],
    ['SubmissionsDlqAlarm', submissionsDlq],
  ] as const) {
    new Alarm(stack, id, {
      alarmDescription: `messages in ${q.node.id}: see the reason attribute on each message`,
      // Unlabelled: a labelled metric makes a metric-math alarm, which a plain threshold does not need.
      metric: q.metricApproximateNumberOfMessagesVisible({ statistic: Stats.MAXIMUM, period: PERIOD }),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
  }
  // A 5xx is a Sortie bug or an AWS fault (bad input is always a 4xx).
  new Alarm(stack, 'Api5xxAlarm', {
    alarmDescription: 'the HTTP API answered 5xx; see the api function log',
    metric: api.cdk.httpApi.metricServerError(sum),
    threshold: 0,
    comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: TreatMissingData.NOT_BREACHING,
  });
}
