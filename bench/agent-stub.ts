/**
 * Runs the real agent bundle (.sortie/agent.cjs, the same file a pilot runs) against a stub of the
 * agent routes that answers from memory: no DynamoDB, SQS or Lambda behind it. Units are handed out as
 * a real pull would (as many as ten SQS messages packed by functions/lib/queues.ts hold), so what is
 * measured is the agent's own path: pull loop, scheduler, spawn, reports. Units are leased and armed as the pull
 * route would lease and arm them, so the agent arms ahead as it does against the real control plane.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseUnitDescriptions } from '../core/descriptions.ts';
import { packUnits, type QueuedUnit } from '../functions/lib/queues.ts';
import { within } from './baselines.ts';

/** What one run of the agent against the stub gives. */
export interface AgentAloneResult {
  units: number;
  /** Units per second from the first EXECUTING to the last final report (agent timestamps). */
  rate: number;
  spanMs: number;
  failed: number;
  /** Peak RSS of the agent (VmHWM, kB). */
  agentHwmKb: number;
  pulls: number;
  stateCalls: number;
  /** Write-ahead requests (`/agent/started`), one per scheduling pass that started non-restartable units. */
  startCalls: number;
  /** Units handed out per pull (ten packed SQS messages). */
  perPull: number;
  /** CPU ms per unit of the agent itself and of its unit processes. */
  agentCpuMsPerUnit: number;
  unitCpuMsPerUnit: number;
}

/** VmHWM (peak resident set, kB) of a process, or NaN when it cannot be read. */
export function vmHwmKb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** `n` null units as a pull delivers them. */
export function nullUnits(n: number, executable = '/bin/true'): QueuedUnit[] {
  const [d] = parseUnitDescriptions([{ executable }]);
  return Array.from({ length: n }, (_, i) => ({
    uid: `unit.${String(i).padStart(6, '0')}`,
    description: d as QueuedUnit['description'],
  }));
}

async function waitExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await within(new Promise((r) => child.once('exit', r)), ms, 'agent exit').catch(() => {
    try {
      process.kill(-(child.pid ?? 0), 'SIGKILL');
    } catch {
      // gone
    }
  });
}

/** Runs `n` null units through one agent with `cores` cores against the stub; sandbox under `dir`. */
export async function runAgentAlone(opts: {
  bundle: string;
  n: number;
  cores: number;
  dir: string;
  timeoutMs: number;
  /** Who starts the units (the resource config's agentSpawner); default the agent's default. */
  spawner?: 'PERSISTENT' | 'POPEN';
  /** The sandbox's folder name under `dir` (default agent-alone). */
  name?: string;
}): Promise<AgentAloneResult> {
  const units = nullUnits(opts.n);
  const perMessage = (
    JSON.parse(packUnits(units.slice(0, 2_000))[0] ?? '{"units":[]}') as { units: unknown[] }
  ).units.length;
  const perPull = Math.max(1, perMessage * 10);
  let handed = 0;
  let pulls = 0;
  let stateCalls = 0;
  let startCalls = 0;
  let firstExec = Number.POSITIVE_INFINITY;
  let lastFinal = 0;
  let finals = 0;
  let failed = 0;
  let allDone: () => void = () => {};
  const done = new Promise<void>((r) => {
    allDone = r;
  });

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      const reply = (o: unknown) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(o));
      };
      /** Counts state reports (`/agent/states`, or carried by `/agent/started`); how many. */
      const count = (updates: unknown) => {
        const list = (updates as { state: string; time: string }[] | undefined) ?? [];
        for (const r of list) {
          const t = Date.parse(r.time);
          if (r.state === 'Executing') firstExec = Math.min(firstExec, t);
          else {
            finals++;
            if (r.state !== 'Done') failed++;
            lastFinal = Math.max(lastFinal, t);
          }
        }
        if (finals >= opts.n) allDone();
        return list.length;
      };
      switch (req.url) {
        case '/agent/activate':
          return reply({ heartbeatIntervalSeconds: 30 });
        case '/agent/pull': {
          pulls++;
          // As the pull route hands them out: leased to the pull (so the agent may arm them ahead), and
          // the first `arm` armed by their claim (functions/callbacks/handler.ts).
          const lease = `stub-lease-${pulls}`;
          const arm = Number(body.arm ?? 0) || 0;
          const out = units
            .slice(handed, handed + perPull)
            .map((u, i) => ({ ...u, lease, ...(i < arm ? { armed: true } : {}) }));
          handed += out.length;
          if (out.length) return reply({ units: out });
          // Nothing left: a long poll that returns empty, as SQS does (bounded by the agent's wait).
          return void setTimeout(() => reply({ units: [] }), 1000).unref();
        }
        case '/agent/states': {
          stateCalls++;
          const applied = count(body.updates);
          return reply({ applied, refused: 0 });
        }
        case '/agent/started': {
          // The write-ahead of starts: every unit is accepted; its time is the first moment it counts as running.
          // State reports may ride along (agent/write-ahead.ts): counted as `/agent/states` counts them.
          startCalls++;
          const starts = (body.starts as { uid: string; time: string }[]) ?? [];
          for (const s of starts) firstExec = Math.min(firstExec, Date.parse(s.time));
          const applied = count(body.updates);
          const uids = (v: unknown) => ((v as { uid: string }[] | undefined) ?? []).map((a) => a.uid);
          return reply({
            started: starts.map((s) => s.uid),
            armed: uids(body.arms),
            disarmed: uids(body.disarms),
            applied,
            refused: 0,
          });
        }
        case '/agent/heartbeat':
        case '/agent/commands':
          return reply({ cancelUnits: [], cancelPilot: false, seen: 0 });
        default:
          return reply({ ok: true });
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const sandbox = path.join(opts.dir, opts.name ?? 'agent-alone');
  mkdirSync(sandbox, { recursive: true });
  const config = path.join(sandbox, 'agent.json');
  writeFileSync(
    config,
    JSON.stringify({
      apiUrl: `http://127.0.0.1:${port}`,
      sessionId: 'bench',
      pilotId: 'pilot.stub',
      token: 'stub',
      sandbox,
      cores: opts.cores,
      runtimeSeconds: 3600,
      // More cores than this host has (figure 9 runs at the peers' concurrency): allowed, as on test beds.
      ...(opts.cores > os.availableParallelism() ? { oversubscribe: true } : {}),
      ...(opts.spawner ? { spawner: opts.spawner } : {}),
    }),
  );
  const out = openSync(path.join(sandbox, 'agent.out'), 'a');
  const child = spawn(process.execPath, [opts.bundle, config], {
    cwd: sandbox,
    detached: true,
    stdio: ['ignore', out, out],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? sandbox },
  });
  closeSync(out);
  let hwm = Number.NaN;
  let cpu = { self: Number.NaN, children: Number.NaN };
  try {
    await within(done, opts.timeoutMs, `agent alone (${finals}/${opts.n} units final)`);
    hwm = vmHwmKb(child.pid ?? 0);
    cpu = procCpuMs(child.pid ?? 0);
  } finally {
    try {
      process.kill(-(child.pid ?? 0), 'SIGTERM');
    } catch {
      // already gone
    }
    await waitExit(child, 10_000);
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  }
  const spanMs = lastFinal - firstExec;
  return {
    units: opts.n,
    rate: opts.n / (spanMs / 1000),
    spanMs,
    failed,
    agentHwmKb: hwm,
    pulls,
    stateCalls,
    startCalls,
    perPull,
    agentCpuMsPerUnit: cpu.self / opts.n,
    unitCpuMsPerUnit: cpu.children / opts.n,
  };
}

/**
 * CPU time (ms) of a process itself, and of everything under it: its waited-for children and every live
 * descendant with what each waited for (/proc/<pid>/stat; 100 ticks/s). The descendants matter: units are
 * spawned and reaped by the agent's persistent spawner, a child that lives as long as the agent, so the
 * agent's own count of waited-for children never sees them.
 */
export function procCpuMs(pid: number): { self: number; children: number } {
  const tick = 10; // ms per clock tick at the usual CLK_TCK of 100
  const stats = new Map<number, { ppid: number; self: number; reaped: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces) start at field 3.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(entry), {
        ppid: Number(f[1]),
        self: (Number(f[11]) + Number(f[12])) * tick,
        reaped: (Number(f[13]) + Number(f[14])) * tick,
      });
    } catch {
      // gone meanwhile
    }
  }
  const root = stats.get(pid);
  if (!root) return { self: Number.NaN, children: Number.NaN };
  let children = root.reaped;
  const under = new Set([pid]);
  // Parents come before their children in pid order only usually: sweep until nothing joins.
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, st] of stats)
      if (!under.has(p) && under.has(st.ppid)) {
        under.add(p);
        children += st.self + st.reaped;
        grew = true;
      }
  }
  return { self: root.self, children };
}
