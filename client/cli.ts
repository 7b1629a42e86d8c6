#!/usr/bin/env -S npx tsx
/**
 * `sortie` command line. Each command lives in cli/<command>.ts and is loaded when it runs, so that
 * `sortie ls` does not load the embedded backend `sortie up` needs. Exit codes: cli/exit-codes.ts.
 */
import { Command, InvalidArgumentError } from 'commander';
import { runCommand } from './cli/exit-codes.ts';

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError(`--port: must be 0-65535, got ${v}`);
  return n;
}

function seconds(v: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError(`must be a positive number of seconds, got ${v}`);
  return n;
}

const program = new Command('sortie')
  .description('Sortie: RADICAL-Pilot pilot jobs on a serverless AWS backend')
  // Bad usage exits 2, as EXIT.USAGE says (commander's default is 1, which means "units not DONE").
  .exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

/** The options of every command that talks to a session. */
function sessionOptions(cmd: Command): Command {
  return cmd
    .option('--session <id>', 'session uid (default: SORTIE_SESSION, else the one `sortie run` saved last)')
    .option('--api <url>', "Sortie API URL (default: SORTIE_API_URL, else the saved session's)");
}

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
  .action(async (opts) => {
    const { up } = await import('./cli/up.ts');
    const code = await up(opts);
    if (code !== undefined) process.exit(code);
  });

sessionOptions(
  program
    .command('run')
    .argument('<workload>', "workload file (YAML or JSON): pilots and units with RP's keys")
    .description(
      'run a workload in a new session (or --session) with live progress; exit 0 only when all units are DONE',
    ),
)
  .option('--timeout <seconds>', 'stop waiting after this long (exit 4)', seconds)
  .option('--keep', 'leave the session open and its pilots running (default: close it)')
  .action((file: string, opts) =>
    runCommand('run', async () => (await import('./cli/run.ts')).run(file, opts)),
  );

sessionOptions(
  program
    .command('ls')
    .argument('<what>', 'sessions (saved in .sortie), pilots or units (of a session)')
    .description('list sessions, pilots or units'),
)
  .option('--state <state>', 'only pilots or units in this state (e.g. Done, Failed, Executing)')
  .option('--json', 'print the records as JSON')
  .action((what: string, opts) => runCommand('ls', async () => (await import('./cli/ls.ts')).ls(what, opts)));

sessionOptions(
  program
    .command('show')
    .argument('<id>', 'a session uid, pilot.NNNN or unit.NNNNNN (of --session, else the saved one)')
    .description('show a session, pilot or unit: description, states with times, log, sandbox'),
)
  .option('--json', 'print JSON instead of YAML')
  .action((id: string, opts) =>
    runCommand('show', async () => (await import('./cli/show.ts')).show(id, opts)),
  );

sessionOptions(
  program
    .command('logs')
    .argument('<id>', 'unit.NNNNNN (stdout, stderr, log) or pilot.NNNN (log)')
    .description("print a unit's output and log, or a pilot's log"),
)
  .option('-f, --follow', 'print states and log lines as they come, until the unit or pilot ends')
  .action((id: string, opts) =>
    runCommand('logs', async () => (await import('./cli/logs.ts')).logs(id, opts)),
  );

sessionOptions(
  program
    .command('cancel')
    .argument('<ids...>', 'unit.NNNNNN, pilot.NNNN or a session uid (cancels its units and closes it)')
    .description('cancel units, pilots or a whole session'),
).action((ids: string[], opts) =>
  runCommand('cancel', async () => (await import('./cli/cancel.ts')).cancel(ids, opts)),
);

sessionOptions(
  program
    .command('watch')
    .description(
      "live per-state counts of a session's units until they all end; exit 0 only when all are DONE",
    ),
)
  .option('--timeout <seconds>', 'stop watching after this long (exit 4)', seconds)
  .action((opts) => runCommand('watch', async () => (await import('./cli/watch.ts')).watch(opts)));

sessionOptions(
  program
    .command('report')
    .argument('[session]', 'session uid (default: --session, else the saved one)')
    .description(
      'unit timeline and utilization plots (SVG, PNG), units/s, utilization %, time to first unit, cost',
    ),
)
  .option('--out <dir>', 'where to write the plots and report.json (default: sortie-report/<session>)')
  .action((sid: string | undefined, opts) =>
    runCommand('report', async () => (await import('./cli/report.ts')).report(sid, opts)),
  );

const endpoint = program
  .command('endpoint')
  .description(
    "an MFA site's endpoint: run on its login node, in your own login (see README, Endpoint mode)",
  );

sessionOptions(
  endpoint
    .command('start')
    .description(
      "serve a resource's pilots from this host: long-poll the API, launch/check/cancel their jobs here",
    ),
)
  .requiredOption('--resource <name>', 'resource key whose config has the endpoint access schema')
  .option('--poll-seconds <seconds>', 'long-poll length (default 20)', seconds)
  .action((opts) =>
    runCommand('endpoint start', async () => (await import('./cli/endpoint.ts')).start(opts)),
  );

sessionOptions(
  endpoint
    .command('status')
    .description("this host's endpoint process and the requests waiting for it at the API"),
)
  .requiredOption('--resource <name>', 'resource key')
  .option('--json', 'print it as JSON')
  .action((opts) =>
    runCommand('endpoint status', async () => (await import('./cli/endpoint.ts')).status(opts)),
  );

await program.parseAsync();
