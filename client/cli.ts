#!/usr/bin/env -S npx tsx
/**
 * `sortie` command line: `sortie up` runs the embedded backend in the foreground (what LocalStack would
 * be, without Docker) and prints the one variable an SDK or CLI needs, SORTIE_API_URL.
 */
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { BackendStartError, startBackend } from '../local/backend.ts';

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError(`--port: must be 0-65535, got ${v}`);
  return n;
}

const program = new Command('sortie').description(
  'Sortie: RADICAL-Pilot pilot jobs on a serverless AWS backend',
);

program
  .command('up')
  .description(
    'start the embedded backend on 127.0.0.1 (DynamoDB, SQS, Step Functions, HTTP API) until Ctrl-C',
  )
  .option('-p, --port <port>', 'HTTP API port (default: 4680; 0 = any free port)', port, 4680)
  .option(
    '--dynamodb <engine>',
    'dynalite (in-process) or dynamodb-local (Amazon engine, needs Java 17)',
    'dynalite',
  )
  .option('--data <dir>', 'keep sessions, pilots and units across restarts in this directory', '.sortie/data')
  .option('--in-memory', 'keep nothing: every start begins empty (tests, throwaway runs)')
  .action(async (opts: { port: number; dynamodb: string; data: string; inMemory?: boolean }) => {
    if (opts.dynamodb !== 'dynalite' && opts.dynamodb !== 'dynamodb-local') {
      program.error(`--dynamodb: must be dynalite or dynamodb-local, got ${opts.dynamodb}`);
    }
    try {
      const backend = await startBackend({
        port: opts.port,
        dynamodb: opts.dynamodb as 'dynalite' | 'dynamodb-local',
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
    } catch (err) {
      if (err instanceof BackendStartError) {
        process.stderr.write(`sortie up: ${err.message}\n`);
        process.exit(1);
      }
      throw err;
    }
  });

await program.parseAsync();
