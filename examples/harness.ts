/**
 * What every example shares: run against SORTIE_API_URL if set, else start the embedded backend in this
 * process; print live progress (units per state) and a final table.
 */
import { pathToFileURL } from 'node:url';
import { type ComputePilot, type ComputeUnit, type UnitManager, UnitState } from '../client/index.ts';
import { type BackendOptions, BackendStartError, startBackend } from '../local/backend.ts';

/** What every example function takes besides the endpoint. */
export interface ExampleOptions {
  /** Where progress lines go (default console.log). */
  log?: (line: string) => void;
  /** Registered on the unit manager before any unit is submitted: sees every state of every unit. */
  onUnitState?: (unit: ComputeUnit, state: UnitState) => void;
  /** No live progress line and no final table (tests). */
  quiet?: boolean;
}

/** What every example function returns: its units and pilots, final, for the caller to inspect. */
export interface ExampleResult {
  units: ComputeUnit[];
  pilots: ComputePilot[];
}

/** Runs `fn` with an API endpoint, starting (and stopping) an embedded backend if none is configured. */
export async function withBackend<T>(
  fn: (endpoint: string) => Promise<T>,
  opts: BackendOptions = {},
): Promise<T> {
  const given = process.env.SORTIE_API_URL;
  if (given) return fn(given);
  const backend = await startBackend(opts);
  try {
    return await fn(backend.apiUrl);
  } finally {
    await backend.close();
  }
}

/** Counts units per state and prints a line when the counts change (in place on a terminal). */
export class Progress {
  private readonly states = new Map<string, string>();
  private last = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout) {}

  update(unit: ComputeUnit, state: string): void {
    this.states.set(unit.uid, state);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.print();
    }, 200);
  }

  print(final = false): void {
    const counts = new Map<string, number>();
    for (const s of this.states.values()) counts.set(s, (counts.get(s) ?? 0) + 1);
    const order = Object.values(UnitState) as string[];
    const line = `units: ${[...counts.entries()]
      .sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]))
      .map(([s, n]) => `${s} ${n}`)
      .join(' | ')}`;
    if (line !== this.last || final) {
      this.out.write(this.out.isTTY && !final ? `\r${line.padEnd(100)}` : `${line}\n`);
      this.last = line;
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.out.isTTY) this.out.write('\n');
    this.print(true);
  }
}

/**
 * Registers, on `umgr` and before any unit is submitted, the live progress line (unless `quiet`) and the
 * caller's `onUnitState`. Returns what to call once the units are final: it prints the final table.
 */
export function follow(umgr: UnitManager, opts: ExampleOptions): (units: ComputeUnit[]) => void {
  const progress = opts.quiet ? undefined : new Progress();
  umgr.registerCallback((u, s) => {
    progress?.update(u, s);
    opts.onUnitState?.(u, s);
  });
  return (units) => {
    if (!progress) return;
    progress.stop();
    printTable(units);
  };
}

/** Prints uid, state, exit code, first stdout (or stderr) line and pilot of each unit. */
export function printTable(units: ComputeUnit[], out: NodeJS.WriteStream = process.stdout): void {
  const rows = units.map((u) => [
    u.uid,
    u.state,
    u.exitCode === undefined ? '-' : String(u.exitCode),
    ((u.stdout ?? '').split('\n')[0] || (u.stderr ?? '').split('\n')[0] || '').slice(0, 48),
    u.pilotId ?? '-',
  ]);
  const head = ['uid', 'state', 'exit', 'stdout (first line)', 'pilot'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  out.write(`${fmt(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.map(fmt).join('\n')}\n`);
}

/** True when the module at `url` is the script node was started with. */
export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === url;
}

/** Runs an example as a script: exit 0 only if it says so; a backend start failure is one clear line. */
export function runMain(main: () => Promise<boolean>): void {
  main().then(
    (ok) => process.exit(ok ? 0 : 1),
    (err: unknown) => {
      if (err instanceof BackendStartError) process.stderr.write(`${err.message}\n`);
      else process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
