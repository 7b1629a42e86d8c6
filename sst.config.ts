/**
 * Sortie's AWS app (SST v2 on aws-cdk-lib), built only from stacks/manifest.ts and stacks/pilot.asl.json.
 *
 * Deploy for real (AWS credentials in the environment or a profile; the first deploy to an account and
 * region also creates SST's and CDK's bootstrap stacks):
 *
 *     npx sst deploy --stage prod          # outputs ApiUrl, TableName, StateMachineArn
 *     npx sst remove --stage dev           # every stage but prod deletes its table and secret too
 *
 * LocalStack (for those who have Docker): the deployed handlers need nothing, and the SDK clients of the
 * CLI, client and tests follow the standard endpoint variables, e.g.
 *
 *     export AWS_ENDPOINT_URL=http://localhost:4566            # every service, or per service:
 *     export AWS_ENDPOINT_URL_DYNAMODB=... AWS_ENDPOINT_URL_SQS=... AWS_ENDPOINT_URL_SFN=...
 *     export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
 *
 * Deploying this app itself into LocalStack needs its `cdklocal`/`sst` wrappers; SST v2 talks to
 * STS, CloudFormation, S3 and SSM during deploy. Offline synth (no AWS) is what test/synth.test.ts does.
 *
 * Imports carry `.ts`: SST bundles this file with esbuild before loading it, which resolves them.
 */
import type { SSTConfig } from 'sst';
import { Api } from './stacks/Api.ts';
import { Data } from './stacks/Data.ts';
import { Events } from './stacks/Events.ts';
import { Monitoring } from './stacks/Monitoring.ts';
import { Pilots } from './stacks/Pilots.ts';
import { checkFunctionPlacement } from './stacks/support.ts';

/** The SST app: name `sortie`, region from `AWS_REGION` (default us-east-1), four stacks. */
export default {
  config() {
    return { name: 'sortie', region: process.env.AWS_REGION ?? 'us-east-1' };
  },
  stacks(app) {
    checkFunctionPlacement();
    // Defaults for every function; environments are set per stack (support.ts `sortieEnv`) because
    // their values come from resources in several stacks (the API's URL is only known in Api).
    app.setDefaultFunctionProps({
      // The Lambda runtime we target; local runs use Node 20, so handlers use nothing newer.
      runtime: 'nodejs22.x',
      // Graviton: cheaper per GB-second, and the handlers are pure JavaScript.
      architecture: 'arm_64',
      nodejs: {
        format: 'esm',
        // ssh2's native add-ons are optional (it falls back to pure JS when they do not load); a bundle
        // cannot carry a `.node` file, so leave them out rather than fail the build.
        esbuild: { external: ['cpu-features', '*.node'] },
      },
      // SST turns X-Ray on by default. Like the state machine's, it is off: the handlers add no
      // segments, and per-trace charges would grow with unit throughput for little insight.
      tracing: 'disabled',
    });
    // Order matters: Pilots needs the API's URL (for agent configs) and Monitoring needs everything.
    app.stack(Data).stack(Api).stack(Pilots).stack(Events).stack(Monitoring);
  },
} satisfies SSTConfig;
