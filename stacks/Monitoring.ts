/**
 * The CloudWatch dashboard of the cloud console: pilots (state machine executions), API and agent
 * traffic (Lambda invocations) and errors, built only from metrics AWS publishes for the resources
 * above, so it shows data from the first deploy without any code in the handlers.
 */
import { Duration } from 'aws-cdk-lib';
import { Dashboard, GraphWidget, type IWidget, type Metric, Stats } from 'aws-cdk-lib/aws-cloudwatch';
import type { Function as SstFunction, StackContext } from 'sst/constructs';
import { use } from 'sst/constructs';
import { Api } from './Api.ts';
import type { FunctionName } from './manifest.ts';
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

/** The Monitoring stack: one dashboard named `<stage>-sortie`. */
export function Monitoring({ stack }: StackContext): void {
  const { api, functions: apiFunctions } = use(Api);
  const { stateMachine, functions: pilotFunctions } = use(Pilots);
  const functions = new Map([...apiFunctions, ...pilotFunctions]);
  const sum = { statistic: Stats.SUM, period: PERIOD };

  const dashboard = new Dashboard(stack, 'Dashboard', { dashboardName: physicalName(stack, 'sortie') });
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
        left: [
          ...perFunction(functions, (fn) => fn.metricErrors({ statistic: Stats.SUM })),
          api.cdk.httpApi.metricServerError({ ...sum, label: 'API 5xx' }),
        ],
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
}
