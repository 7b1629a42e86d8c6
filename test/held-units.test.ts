/**
 * Held units (the pull's `hold`, agent/arm-ahead.ts): through the agent routes with the pilot's own token
 * while a proxy holds the real agent's pulls — a pull that holds claims only the units it arms (and those
 * that need no write-ahead) and hands the others over unclaimed, except one cancelled while queued (its
 * message stays); its retry says so again; an arm of a held
 * unit is its claim (armed and leased in one write, and the same arm again is still answered armed); a
 * write-ahead start of a held unit is its claim too (SCHEDULING recorded as passed); a held unit cancelled
 * in the table is neither armed nor started; bad marks are refused naming the field; and when the pilot
 * whose agent held units ends, they run on another pilot, once. (A real agent's bulk run with held units
 * is in arm-ahead.test.ts.) One file of its own: the embedded backend is one per process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComputeUnit, PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import type { Backend } from '../local/backend.ts';
import { backendWithHeldPulls, type HeldPullsBackend, heldAgentPilot } from './support/held-agent.ts';

describe('held units through the agent routes (embedded backend, a held agent)', () => {
  let held: HeldPullsBackend;
  let backend: Backend;
  let proxy: HeldPullsBackend['proxy'];

  beforeAll(async () => {
    held = await backendWithHeldPulls();
    ({ backend, proxy } = held);
  }, 120_000);
  afterAll(async () => {
    await held?.close();
  });

  it('a held unit is claimed by the write that arms or starts it, once; a cancelled one by neither', async () => {
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'held-units' });
    try {
      // Prepare: an ACTIVE pilot whose agent's pulls are held; its token, as the agent has it.
      const pmgr = await PilotManager.create(session);
      const { pilot, agentCall } = await heldAgentPilot(pmgr, backend.apiUrl, proxy);
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const plain = { executable: '/bin/echo', arguments: ['ran'] };
      const units = await umgr.submitUnits([
        plain,
        { ...plain, restartable: true },
        plain,
        plain,
        plain,
        plain,
      ]);
      const [u0, u1, u2, u3, u4, u5] = units.map((u) => u.uid) as [
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      // Cancelled while queued: its message stays, and the pull must not hand it over held.
      await umgr.cancelUnits(u5);

      // Act 1: bad marks are refused, naming the field.
      const badHold = await agentCall('/agent/pull', { max: 10, waitSeconds: 0, hold: 'yes' });
      const badArm = await agentCall('/agent/started', { arms: [{ uid: u2, lease: 'x', held: 1 }] });
      const badDisarm = await agentCall('/agent/started', { disarms: [{ uid: u2, lease: 'x', held: true }] });
      // Act 2: a pull that arms one and holds the rest, then its retry (an answer lost on the way).
      const ask = { max: 10, waitSeconds: 5, pullId: 'hold-1', arm: 1, hold: true };
      const first = await agentCall('/agent/pull', ask);
      const retry = await agentCall('/agent/pull', ask);

      // Assess 1: 400s naming each field; nothing claimed by them.
      const message = (b: Record<string, unknown>) => String((b.error as { message?: string })?.message);
      expect([badHold.status, badArm.status, badDisarm.status]).toEqual([400, 400, 400]);
      expect(message(badHold.body)).toMatch(/pull\.hold: true or false, got "yes"/);
      expect(message(badArm.body)).toMatch(/started\.arms\[0\]\.held: true or absent, got 1/);
      expect(message(badDisarm.body)).toMatch(/started\.disarms\[0\]\.held: a disarm is of a claimed unit/);
      // Assess 2: the first unit claimed armed; the restartable one claimed plainly (it needs no
      // write-ahead); the others held: unclaimed in the table, bound to this pilot; the cancelled one
      // not handed over at all. The retry agrees.
      type Pulled = { uid: string; lease: string; armed?: boolean; held?: boolean };
      const marks = (b: Record<string, unknown>) =>
        Object.fromEntries(
          (b.units as Pulled[]).map((u) => [u.uid, u.armed ? 'armed' : u.held ? 'held' : 'claimed']),
        );
      expect(first.status).toBe(200);
      expect(marks(first.body)).toEqual({
        [u0]: 'armed',
        [u1]: 'claimed',
        [u2]: 'held',
        [u3]: 'held',
        [u4]: 'held',
      });
      expect(marks(retry.body)).toEqual(marks(first.body));
      const lease = (first.body.units as Pulled[])[0]?.lease as string;
      expect((first.body.units as Pulled[]).every((u) => u.lease === lease)).toBe(true);
      for (const u of units) await u.refresh();
      expect(units.map((u) => u.state)).toEqual([
        UnitState.SCHEDULING,
        UnitState.SCHEDULING,
        UnitState.PENDING_EXECUTION,
        UnitState.PENDING_EXECUTION,
        UnitState.PENDING_EXECUTION,
        UnitState.CANCELED,
      ]);

      // Act 3: u2 armed (its claim), twice (the answer lost); u3 started unarmed (the write-ahead is its
      // claim); u4 cancelled in the table first, then armed and started.
      const arm2 = { arms: [{ uid: u2, lease, held: true }] };
      const armed = await agentCall('/agent/started', arm2);
      const armedAgain = await agentCall('/agent/started', arm2);
      const now = new Date().toISOString();
      const started = await agentCall('/agent/started', {
        starts: [{ uid: u3, lease, held: true, time: now }],
      });
      await umgr.cancelUnits(u4);
      const late = await agentCall('/agent/started', {
        arms: [{ uid: u4, lease, held: true }],
        starts: [{ uid: u4, lease, held: true, time: now }],
      });

      // Assess 3: u2 claimed and armed under the pull's lease, answered armed both times; u3 EXECUTING
      // with SCHEDULING recorded as passed; u4 neither armed nor started.
      expect([armed.body.armed, armedAgain.body.armed]).toEqual([[u2], [u2]]);
      expect(started.body.started).toEqual([u3]);
      expect([late.body.armed, late.body.started]).toEqual([[], []]);
      const [r2, r3, r4] = [units[2], units[3], units[4]] as [ComputeUnit, ComputeUnit, ComputeUnit];
      for (const u of [r2, r3, r4]) await u.refresh();
      expect([r2.state, r3.state, r4.state]).toEqual([
        UnitState.SCHEDULING,
        UnitState.EXECUTING,
        UnitState.CANCELED,
      ]);
      expect(r3.stateHistory.map((e) => e.state)).toEqual([
        'New',
        'PendingExecution',
        'Scheduling',
        'Executing',
      ]);

      // Act 4: the holder ran the claimed ones and says so; the rest it never will.
      const ends = await agentCall('/agent/states', {
        updates: [u0, u1, u2, u3].flatMap((uid) => [
          ...(uid === u3 ? [] : [{ uid, state: 'Executing', time: now }]),
          { uid, state: 'Done', time: now, exitCode: 0, stdout: 'ran\n' },
        ]),
      });
      // Assess 4: each DONE once, with the history of one claim.
      expect([ends.status, ends.body.refused]).toEqual([200, 0]);
      for (const u of units.slice(0, 4)) {
        await u.refresh();
        expect(u.state, u.uid).toBe(UnitState.DONE);
        expect(u.stateHistory.filter((e) => e.state === UnitState.SCHEDULING).length, u.uid).toBe(1);
      }
    } finally {
      proxy.release();
      await session.close({ timeout: 30 });
    }
  }, 180_000);

  it('units held by an agent whose pilot ends run on another pilot, each once', async () => {
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'held-units-death' });
    try {
      // Prepare: pilot A's pulls are held; the test pulls for it, holding every unit (arm 0).
      proxy.hold(/^POST \/agent\/pull$/);
      const pmgr = await PilotManager.create(session);
      const { pilot: a, agentCall } = await heldAgentPilot(pmgr, backend.apiUrl, proxy);
      const umgr = await UnitManager.create(session, 'round_robin');
      await umgr.addPilots(a);
      const units = await umgr.submitUnits(
        [1, 2, 3].map(() => ({ executable: '/bin/echo', arguments: ['ran'] })),
      );
      const pulled = await agentCall('/agent/pull', { max: 10, waitSeconds: 5, hold: true, arm: 0 });
      expect((pulled.body.units as { held?: boolean }[]).map((u) => u.held)).toEqual([true, true, true]);
      // Act: B joins; A is cancelled (its agent never started what it held).
      const b = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 60, cores: 2 });
      await umgr.addPilots(b);
      proxy.release();
      await pmgr.cancelPilots(a.uid);
      // Assess: A's sweep rescheduled its held units (never failed: none could have started unclaimed);
      // they ran once each, on B.
      expect(await umgr.waitUnits({ timeout: 120 })).toEqual(units.map(() => UnitState.DONE));
      for (const u of units) {
        expect(u.pilotId, u.uid).toBe(b.uid);
        expect(u.stateHistory.filter((e) => e.state === UnitState.EXECUTING).length, u.uid).toBe(1);
        expect(u.stdout, u.uid).toBe('ran\n');
      }
    } finally {
      await session.close({ timeout: 30 });
    }
  }, 180_000);
});
