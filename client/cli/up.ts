/**
 * `sortie up`: the embedded backend in the foreground (what LocalStack would be, without Docker); prints
 * the one variable an SDK or CLI needs, SORTIE_API_URL.
 */
import path from 'node:path';
import { BackendStartError, startBackend } from '../../local/backend.ts';

/** Options of `sortie up`. */
export interface UpOptions {
  port: number;
  dynamodb: string;
  data: string;
  inMemory?: boolean;
}

/** Starts the backend and keeps the process alive until SIGINT/SIGTERM; returns an exit code only on failure. */
export async function up(opts: UpOptions): Promise<number | undefined> {
  if (opts.dynamodb !== 'dynalite' && opts.dynamodb !== 'dynamodb-local') {
    process.stderr.write(`sortie up: --dynamodb: must be dynalite or dynamodb-local, got ${opts.dynamodb}\n`);
    return 2;
  }
  try {
    const backend = await startBackend({
      port: opts.port,
      dynamodb: opts.dynamodb,
      ...(opts.inMemory ? {} : { dataDir: path.resolve(opts.data) }),
    });
    const kept = opts.inMemory ? 'in memory only' : `data in ${path.resolve(opts.data)}`;
    const { pilots, requeued } = backend.recovered;
    const resumed = pilots ? `; resumed ${pilots} pilot(s), ${requeued} unit(s) queued again` : '';
    process.stdout.write(
      `Sortie backend up (${kept}${resumed}). In another shell:\n  export SORTIE_API_URL=${backend.apiUrl}\n(Ctrl-C stops it)\n`,
    );
    const stop = () => {
      void backend.close().then(() => process.exit(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return undefined;
  } catch (err) {
    if (err instanceof BackendStartError) {
      process.stderr.write(`sortie up: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
