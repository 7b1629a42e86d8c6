/**
 * Units through the real agent on a local pilot, once per `agentSpawner`: PERSISTENT (the default; units
 * are children of the node's spawner) and POPEN (a session's resource config; children of the agent). The
 * same units must end the same way either way: environment, launch script with pre_exec, exit codes,
 * output tails, a missing executable, and a cancel that kills the unit's process group.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PilotManager, PilotState, Session, UnitManager, UnitState } from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { alive, until } from './e2e.ts';

const localhost = (
  JSON.parse(readFileSync(new URL('../resources/local.json', import.meta.url), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >
).localhost as Record<string, unknown>;

let backend: Backend;
let session: Session;
const root = mkdtempSync(path.join(os.tmpdir(), 'sortie-spawner-agent-'));

beforeAll(async () => {
  backend = await startBackend();
  session = await Session.create({ endpoint: backend.apiUrl, name: 'spawner-agent' });
  await session.addResourceConfig({
    'mine.popen': {
      ...localhost,
      description: 'local.localhost, units spawned by the agent',
      agentSpawner: 'POPEN',
    },
  });
}, 60_000);

afterAll(async () => {
  await session?.close({ timeout: 30 }).catch(() => {});
  await backend?.close();
  rmSync(root, { recursive: true, force: true });
});

/** The command name and parent of a process. */
function procOf(pid: number): { comm: string; ppid: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ppid: Number(f[1]) };
}

describe.each([
  ['local.localhost', 'PERSISTENT'],
  ['mine.popen', 'POPEN'],
])('units on %s (agentSpawner %s)', (resource, kind) => {
  it('keep every semantic of a unit; a cancel kills the group', async () => {
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource, runtime: 10, cores: 2, sandbox: root });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    await pilot.wait({ state: PilotState.ACTIVE, timeout: 60, throwOnTimeout: true });
    const [direct, scripted, missing, long] = await umgr.submitUnits([
      { executable: '/usr/bin/env', environment: { GREETING: 'hello world' } },
      {
        executable: '/bin/sh',
        arguments: ['-c', 'echo "$GREETING $RP_UNIT_ID"; echo oops >&2; exit 3'],
        environment: { GREETING: 'hi' },
        preExec: ['echo pre'],
      },
      { executable: '/no/such/program' },
      // `\$` reaches the inner shell (the launch script expands a bare `$`, as RP's does).
      { executable: '/bin/sh', arguments: ['-c', 'sleep 300 & echo \\$! > kid; echo \\$\\$ > pid; wait'] },
    ]);
    if (!direct || !scripted || !missing || !long) throw new Error('submitUnits returned fewer units');
    await umgr.waitUnits({ uids: [direct.uid, scripted.uid, missing.uid], timeout: 60 });

    expect(direct.state).toBe(UnitState.DONE);
    expect(direct.exitCode).toBe(0);
    expect(direct.stdout).toContain('GREETING=hello world\n');
    expect(direct.stdout).toContain(`RP_UNIT_ID=${direct.uid}\n`);
    expect(direct.stdout).toContain(`RP_PILOT_ID=${pilot.uid}\n`);

    expect(scripted.state).toBe(UnitState.FAILED);
    expect(scripted.exitCode).toBe(3);
    expect(scripted.stdout).toBe(`pre\nhi ${scripted.uid}\n`);
    expect(scripted.stderr).toBe('oops\n');
    expect(readFileSync(path.join(scripted.workingDirectory ?? '', 'launch.sh'), 'utf8')).toContain(
      'echo pre',
    );

    expect(missing.state).toBe(UnitState.FAILED);
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toContain('cannot execute /no/such/program: ENOENT');

    // Who started it: the node's spawner, or the agent itself (the pilot's job id is the agent's pid).
    await long.wait({ state: UnitState.EXECUTING, timeout: 60, throwOnTimeout: true });
    const dir = long.workingDirectory ?? '';
    const read = (f: string) => {
      try {
        return Number(readFileSync(path.join(dir, f), 'utf8')) || undefined;
      } catch {
        return undefined;
      }
    };
    const pid = await until('the unit wrote its pid', () => read('pid'), 30_000);
    const kid = await until('the unit started its child', () => read('kid'), 30_000);
    const ancestors: { pid: number; comm: string }[] = [];
    for (let p = procOf(pid).ppid, i = 0; p > 1 && i < 3; p = procOf(p).ppid, i++)
      ancestors.push({ pid: p, comm: procOf(p).comm });
    if (kind === 'PERSISTENT') expect(ancestors.map((a) => a.comm)).toContain('sortie-spawner');
    else {
      expect(ancestors.map((a) => a.comm)).not.toContain('sortie-spawner');
      expect(ancestors.map((a) => a.pid)).toContain(Number(pilot.jobId));
    }

    await long.cancel();
    expect(await long.wait({ timeout: 30 })).toBe(UnitState.CANCELED);
    await until(
      'the unit and its child are gone',
      () => (alive(pid) || alive(kid) ? undefined : true),
      10_000,
    );

    await pilot.cancel();
    await pilot.wait({ timeout: 60 });
    umgr.close();
  }, 180_000);
});
