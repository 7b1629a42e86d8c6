/**
 * A durable embedded backend: `sortie up --data DIR` killed (SIGKILL, as a crash) and started again on
 * the same directory and port while a pilot runs 40 units. The agent rides out the outage, the backend
 * rebuilds its queues and the pilot's execution from the table, and the client that was waiting sees
 * every unit DONE, each having run once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PilotManager, Session, UnitManager } from '../client/index.ts';
import { PilotState, UnitState } from '../core/states.ts';
import { killUnitProcesses, until } from './e2e.ts';

const root = path.resolve(import.meta.dirname, '..');
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sortie-durable-'));
const children: ChildProcess[] = [];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Starts `sortie up` as users do and resolves with its API URL and what it printed. */
async function up(port: number): Promise<{ child: ChildProcess; url: string; out: () => string }> {
  const env = { ...process.env };
  delete env.SORTIE_API_URL;
  const child = spawn(
    process.execPath,
    [
      path.join(root, 'node_modules/tsx/dist/cli.mjs'),
      'client/cli.ts',
      'up',
      '--port',
      String(port),
      '--data',
      dataDir,
    ],
    // Its own process group: tsx runs the CLI in a child process, and a crash must take both.
    { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  children.push(child);
  let out = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const url = await until(
    'sortie up printed its URL',
    () => {
      if (child.exitCode !== null) throw new Error(`sortie up exited ${child.exitCode}:\n${out}`);
      return /export SORTIE_API_URL=(\S+)/.exec(out)?.[1];
    },
    90_000,
    100,
  );
  return { child, url, out: () => out };
}

function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    child.once('exit', () => r());
    process.kill(-(child.pid as number), signal);
  });
}

afterAll(async () => {
  for (const c of children) await kill(c, 'SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
});

describe('durable embedded backend', () => {
  it('a crash and restart of sortie up mid-run loses nothing: 40 units DONE, seen by the waiting client', async () => {
    const port = await freePort();
    const first = await up(port);
    // The sealing key survives restarts, readable by its owner only.
    expect(statSync(path.join(dataDir, 'secret.key')).mode & 0o777).toBe(0o600);

    // A generous retry budget: the client keeps waiting through the outage.
    const session = await Session.create({ endpoint: first.url, name: 'durable', retryBudgetMs: 120_000 });
    try {
      const pmgr = await PilotManager.create(session);
      const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const units = await umgr.submitUnits(
        Array.from({ length: 40 }, (_, i) => ({
          executable: '/bin/sh',
          arguments: ['-c', `sleep 1; echo unit-${i}`],
        })),
      );
      const finished = umgr.waitUnits({ timeout: 240 });
      expect(await units[0]?.wait({ state: UnitState.EXECUTING, timeout: 60 })).toBe(UnitState.EXECUTING);

      await kill(first.child, 'SIGKILL');
      const second = await up(port);
      expect(second.url).toBe(first.url);
      expect(second.out()).toMatch(/resumed 1 pilot\(s\)/);

      expect(await finished).toEqual(units.map(() => UnitState.DONE));
      for (const [i, u] of units.entries()) {
        expect(u.stdout, u.uid).toBe(`unit-${i}\n`);
        expect(
          u.stateHistory.filter((e) => e.state === UnitState.EXECUTING),
          u.uid,
        ).toHaveLength(1);
      }
      // The restarted execution carries the pilot on: it still takes heartbeats and ends when cancelled.
      await pmgr.cancelPilots([pilot.uid]);
      expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
    } finally {
      await session.close({ timeout: 30 }).catch(() => {});
      killUnitProcesses(session.uid);
    }
  }, 300_000);
});
