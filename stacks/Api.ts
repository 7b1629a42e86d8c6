/**
 * The HTTP API: every route of the manifest's `ROUTES`, each to its function (payload format 2.0).
 */
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import {
  type ApiAuthorizer,
  type ApiRouteProps,
  Api as SstApi,
  type Function as SstFunction,
  type StackContext,
  use,
} from 'sst/constructs';
import { Data } from './Data.ts';
import { type FunctionName, ROUTES } from './manifest.ts';
import { SESSION_ROUTE, sessionAuthFrom } from './session-auth.ts';
import {
  functionOf,
  pilotExecutionsArn,
  pilotStateMachineArn,
  ROUTED_FUNCTIONS,
  sortieEnv,
  sortieFunctions,
} from './support.ts';

/**
 * Stage-wide throttle of every route. Clients and agents batch (many units per request, callbacks
 * coalesced), so real traffic is far below this; it caps what a runaway client can cost in Lambda and
 * DynamoDB. Requests over it get 429, which the SDK retries.
 */
const THROTTLE = { rate: 200, burst: 400 } as const;

/** What the Api stack hands to the stacks after it. */
export interface ApiOutputs {
  /** The HTTP API (its `url` is `SORTIE_API_URL`). */
  readonly api: SstApi;
  /** The routed functions, keyed by manifest name. */
  readonly functions: ReadonlyMap<FunctionName, SstFunction>;
}

/** The Api stack: HTTP API, the routed functions and their rights. */
export function Api({ stack }: StackContext): ApiOutputs {
  const data = use(Data);
  // No routes yet: the functions need the API's URL in their environment, and the routes need the
  // functions. The API resource itself does not depend on its routes, so this is no cycle.
  const auth = sessionAuthFrom(process.env);
  const authorizers: Record<string, ApiAuthorizer> =
    auth.type === 'jwt'
      ? { sessions: { type: 'jwt', jwt: { issuer: auth.issuer, audience: auth.audience } } }
      : {};
  const api = new SstApi<Record<string, ApiAuthorizer>>(stack, 'Api', {
    // The SDK, the CLI and agents call the API; the dashboard page is served by it (same origin).
    cors: false,
    defaults: { throttle: THROTTLE, payloadFormatVersion: '2.0' },
    authorizers,
  });
  const env = sortieEnv(stack, data, api.url);
  const functions = sortieFunctions(stack, ROUTED_FUNCTIONS, env, data);

  const routes: Record<string, ApiRouteProps<string>> = {};
  for (const [route, name] of Object.entries(ROUTES)) {
    routes[route] = {
      function: functionOf(functions, name),
      payloadFormatVersion: '2.0',
      // Only session creation sits behind AWS's authorizer; Sortie's own tokens guard every other route.
      ...(route === SESSION_ROUTE ? { authorizer: auth.type === 'jwt' ? 'sessions' : 'iam' } : {}),
    };
  }
  api.addRoutes(stack, routes);

  // The API starts one execution per pilot and stops it on cancel.
  const apiFn = functionOf(functions, 'api');
  apiFn.addToRolePolicy(
    new PolicyStatement({ actions: ['states:StartExecution'], resources: [pilotStateMachineArn(stack)] }),
  );
  apiFn.addToRolePolicy(
    new PolicyStatement({
      actions: ['states:DescribeExecution', 'states:StopExecution'],
      resources: [pilotExecutionsArn(stack)],
    }),
  );
  // Cancel fails the task token the pilot's execution waits on (no resource-level permissions exist).
  apiFn.addToRolePolicy(new PolicyStatement({ actions: ['states:SendTaskFailure'], resources: ['*'] }));
  // Agent callbacks complete and heartbeat the pilot's WaitActive/Active task tokens. These actions
  // support no resource-level permissions (IAM service authorization reference), hence `*`.
  functionOf(functions, 'agentApi').addToRolePolicy(
    new PolicyStatement({
      actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
      resources: ['*'],
    }),
  );

  stack.addOutputs({ ApiUrl: api.url });
  return { api, functions };
}
