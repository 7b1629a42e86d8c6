/**
 * Claims that arm (agent/arm-ahead.ts, the pull's `arm`): through the pull route with the pilot's own
 * token while a proxy holds the real agent's pulls — the first units a pull may arm are armed in their
 * claim's write, a retried pull says so again, a bad count is refused naming the field, and an armed
 * claim whose lease runs out is not returned (its holder may have spawned it) while the others are, and
 * every unit still runs DONE once. One file of its own: the embedded backend is one per process.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComputeUnit, PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import type { ReconcileReport } from '../functions/pilot/reconcile.ts';
import type { Backend } from '../local/backend.ts';
import { invoke } from '../local/lambdas.ts';
import { agentEnds, until } from './e2e.ts';
import { backendWithHeldPulls, type HeldPullsBackend, heldAgentPilot } from './support/held-agent.ts';

describe('claims that arm through the pull route (embedded backend, a held agent)', () => {
  let held: HeldPullsBackend;
  let backend: Backend;
  let proxy: HeldPullsBackend['proxy'];

  beforeAll(async () => {
    // The real agent's pulls wait in the proxy, so the test pulls with the pilot's own token, as its
    // agent would.
    held = await backendWithHeldPulls();
    ({ backend, proxy } = held);
  }, 120_000);
  afterAll(async () => {
    await held?.close();
  });

  it('a pull arms the first units it may; its retry says so again; armed claims are not returned', async () => {
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'claim-arm' });
    try {
      // Prepare: an ACTIVE pilot whose agent's pulls are held; its token, as the agent has it.
      const pmgr = await PilotManager.create(session);
      const { pilot, agentCall } = await heldAgentPilot(pmgr, backend.apiUrl, proxy);
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const plain = { executable: '/bin/echo', arguments: ['ran'] };
      const units = await umgr.submitUnits([plain, { ...plain, restartable: true }, plain, plain, plain]);
      const [u0, u1, u2, u3, u4] = units.map((u) => u.uid) as [string, string, string, string, string];
      // Cancelled while queued: its message stays, and the pull's presumed claim of it must be refused.
      await umgr.cancelUnits(u0);

      // Act 1: bad counts are refused, naming the field; nothing is claimed by them.
      const bad = await agentCall('/agent/pull', { max: 10, waitSeconds: 0, arm: -2 });
      // Act 2: a pull asking three arms, then its retry (an answer lost on the way).
      const ask = { max: 10, waitSeconds: 5, pullId: 'arm-1', arm: 3 };
      const first = await agentCall('/agent/pull', ask);
      const retry = await agentCall('/agent/pull', ask);

      // Assess 1–2: of the first three units that need a write-ahead (not the restartable one), the
      // cancelled one is not claimed; the other two are claimed armed; the rest plainly.
      expect(bad.status).toBe(400);
      expect(String((bad.body.error as { message?: string })?.message)).toMatch(
        /pull\.arm: a count of units to arm .*got -2/,
      );
      type Pulled = { uid: string; lease: string; armed?: boolean };
      const marks = (b: Record<string, unknown>) =>
        Object.fromEntries((b.units as Pulled[]).map((u) => [u.uid, u.armed === true]));
      expect(first.status).toBe(200);
      expect(marks(first.body)).toEqual({ [u1]: false, [u2]: true, [u3]: true, [u4]: false });
      expect(marks(retry.body)).toEqual(marks(first.body));

      // Act 3: the lease runs out unstarted; the reconciler returns what it may.
      const returned = new Set<string>();
      await until(
        'the reconciler returns the unarmed claims',
        async () => {
          const r = (await invoke('reconcile', {})) as ReconcileReport;
          for (const uid of r.returned.flatMap((x) => x.uids)) returned.add(uid);
          return returned.size >= 2 ? true : undefined;
        },
        30_000,
        200,
      );
      // Assess 3: the armed two stay with their holder (it may have spawned them): never returned.
      expect(returned).toEqual(new Set([u1, u4]));
      for (const u of units.filter((x) => x.uid === u2 || x.uid === u3)) {
        await u.refresh();
        expect(u.state, u.uid).toBe(UnitState.SCHEDULING);
      }

      // Act 4: the holder ran them, armed, and says so with their ends; the real agent takes the rest.
      const now = new Date().toISOString();
      const ends = await agentCall('/agent/states', {
        updates: [u2, u3].flatMap((uid) => [
          { uid, state: 'Executing', time: now },
          { uid, state: 'Done', time: now, exitCode: 0, stdout: 'ran\n' },
        ]),
      });
      proxy.release();
      // Assess 4: every unit but the cancelled one DONE once: the armed ones under the pull that armed
      // them, the others after their return, on the real agent.
      expect([ends.status, ends.body.refused]).toEqual([200, 0]);
      expect(await umgr.waitUnits({ timeout: 120 })).toEqual([
        UnitState.CANCELED,
        ...units.slice(1).map(() => UnitState.DONE),
      ]);
      const once = ['New', 'PendingExecution', 'Scheduling', 'Executing', 'Done'];
      const returnedOnce = [
        'New',
        'PendingExecution',
        'Scheduling',
        'PendingExecution',
        'Scheduling',
        'Executing',
        'Done',
      ];
      for (const u of units.slice(1))
        expect(
          u.stateHistory.map((e) => e.state),
          u.uid,
        ).toEqual(u.uid === u2 || u.uid === u3 ? once : returnedOnce);
      expect(units.slice(1).map((u) => u.stdout)).toEqual(units.slice(1).map(() => 'ran\n'));
    } finally {
      await session.close({ timeout: 30 });
    }
  }, 180_000);

  it('a pull still out when its agent stops: what it armed is disarmed once its answer comes, and runs elsewhere', async () => {
    proxy.release();
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'claim-arm-stop' });
    try {
      // Prepare: pilot A runs units one at a time, so its pulls ask for arms; then its next pull is held.
      const pmgr = await PilotManager.create(session);
      const a = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 60, cores: 2 });
      const umgr = await UnitManager.create(session, 'round_robin');
      await umgr.addPilots(a);
      for (let i = 0; i < 3; i++) {
        const [u] = await umgr.submitUnits([{ executable: '/bin/true' }]);
        await (u as ComputeUnit).wait({ timeout: 60 });
      }
      proxy.hold(/^POST \/agent\/pull$/);
      await until('A pulls again (held)', () => (proxy.holding > 0 ? true : undefined), 30_000);
      const [x] = (await umgr.submitUnits([{ executable: '/bin/true' }])) as ComputeUnit[];
      // B takes over what A's end gives back.
      const b = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 60, cores: 2 });
      await umgr.addPilots(b);
      const agentOut = path.join(a.sandbox ?? '', 'agent.out');
      // Act: A's agent stops (SIGTERM, not a cancel) while its pull is out; only then the pull goes on,
      // claiming (and arming) the unit for an agent that will never start it.
      const pid = Number(readFileSync(path.join(a.sandbox ?? '', 'agent.pid'), 'utf8'));
      process.kill(pid, 'SIGTERM');
      await until(
        'A stops',
        () => (readFileSync(agentOut, 'utf8').includes('stopping:') ? true : undefined),
        30_000,
      );
      proxy.release();
      await a.wait({ timeout: 60 });
      // Assess: the unit was disarmed, so A's sweep rescheduled it; it ran once, on B.
      await x?.wait({ timeout: 120 });
      expect(x?.state, x?.log.join(' | ')).toBe(UnitState.DONE);
      expect(x?.pilotId).toBe(b.uid);
      expect(x?.log.join('\n')).not.toMatch(/armed to start/);
      expect(await agentEnds(a.sandbox ?? '')).not.toMatch(/could not disarm/);
    } finally {
      await session.close({ timeout: 30 });
    }
  }, 180_000);
});
