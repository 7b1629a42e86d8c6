/** The store of this process: one table (env SORTIE_TABLE) through the counted DynamoDB client. */
import { ENV } from '../../stacks/manifest.ts';
import { Store } from '../../store/index.ts';
import { dynamodb, env } from './aws.ts';
import { feedWritten } from './changes.ts';
import { metricsObserver } from './metrics.ts';
import { setUsageWriter } from './usage.ts';

let instance: Store | undefined;

// Usage counts are written to the session's record through the same store.
setUsageWriter((sid, usage) => store().addSessionUsage(sid, usage));

/** The store (built on first use, after the environment is set): metrics, and held list requests woken. */
export function store(): Store {
  instance ??= new Store({
    tableName: env(ENV.table),
    client: dynamodb(),
    observer: { ...metricsObserver, wrote: feedWritten },
  });
  return instance;
}
