/**
 * The orphan sweep command, run for real by sh on this host against processes that carry a pilot's RP_*
 * environment: the pilot's are killed with their groups, a pilot whose id merely starts the same is not.
 */
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { orphanSweepCommand, orphanSweepEverywhere } from '../functions/pilot/launcher/orphans.ts';
import { alive, until } from './e2e.ts';

const started: number[] = [];

function unitProcess(sessionId: string, pilotId: string): number {
  // Its own session and group, as the agent starts units; a child in the group must die too.
  const child = spawn('/bin/sh', ['-c', 'sleep 300 & sleep 300; wait'], {
    detached: true,
    stdio: 'ignore',
    env: {
      PATH: process.env.PATH,
      RP_SESSION_ID: sessionId,
      RP_PILOT_ID: pilotId,
      RP_UNIT_ID: 'unit.000000',
    },
  });
  child.unref();
  started.push(child.pid as number);
  return child.pid as number;
}

afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {}
  }
});

describe('orphanSweepCommand', () => {
  it("kills exactly the pilot's unit processes and their groups", async () => {
    const sid = `rp.session.orphans-${process.pid}`;
    const mine = [unitProcess(sid, 'pilot.0001'), unitProcess(sid, 'pilot.0001')];
    const other = unitProcess(sid, 'pilot.00010');
    const elsewhere = unitProcess(`${sid}x`, 'pilot.0001');
    await until(
      'unit processes up',
      () => ([...mine, other, elsewhere].every(alive) ? true : undefined),
      10_000,
    );

    const out = execFileSync('/bin/sh', ['-c', orphanSweepCommand(sid, 'pilot.0001')], { encoding: 'utf8' });
    // Each unit is a shell and its two sleeps, all with the pilot's environment.
    expect(out.trim()).toMatch(/^killed [1-9]\d*$/);
    await until("the pilot's units gone", () => (mine.some(alive) ? undefined : true), 10_000);
    expect(alive(other)).toBe(true);
    expect(alive(elsewhere)).toBe(true);
  });

  it('everywhere: sweeps this host, skips its own name among the nodes and nodes it cannot reach', async () => {
    const sid = `rp.session.orphans-all-${process.pid}`;
    const mine = unitProcess(sid, 'pilot.0002');
    await until('unit process up', () => (alive(mine) ? true : undefined), 10_000);
    const here = execFileSync('hostname', { encoding: 'utf8' }).trim();
    // 'no-such-node.invalid' cannot resolve: ssh fails at once and the node is skipped, not waited for.
    const cmd = orphanSweepEverywhere(sid, 'pilot.0002', [here, 'no-such-node.invalid', 'bad;name']);
    expect(cmd).not.toContain('bad;name');
    const out = execFileSync('/bin/sh', ['-c', cmd], { encoding: 'utf8' });
    // The unit is a shell and its two sleeps; the one line is this host's.
    expect(out.trim().split('\n')).toEqual([`${here}: killed 3`]);
    await until("the pilot's unit gone", () => (alive(mine) ? undefined : true), 10_000);
    // Without nodes it is the plain sweep.
    expect(orphanSweepEverywhere(sid, 'p')).toBe(orphanSweepCommand(sid, 'p'));
  });

  it('quotes ids for the shell', () => {
    expect(orphanSweepCommand("s'1", 'p')).toContain(`'RP_SESSION_ID=s'\\''1'`);
  });
});
