/**
 * Leases on claims (issue 11): units a pull claims are leased to that pull; unstarted when the lease runs
 * out, the reconciler returns them to their pilot's queue, and only the holder of the current lease may
 * start a unit, so a unit returned and claimed again runs at most once. Also: a pull never claims more
 * than it was asked for.
 *
 * The pure rule (core/reconcile.ts), the guarded writes on dynalite, and end to end: a test client takes
 * every unit with the pilot's own token while a proxy holds the real agent's pulls, never starts them,
 * and after the (short) lease the real agent runs each unit once.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import type { ComputeUnitDescription } from '../core/descriptions.ts';
import { leaseAction, returnLease } from '../core/reconcile.ts';
import type { StartReport } from '../core/wire.ts';
import { planStarts, startedOf } from '../functions/callbacks/reports.ts';
import type { ReconcileReport } from '../functions/pilot/reconcile.ts';
import type { Backend } from '../local/backend.ts';
import { type LocalDynamoDb, localClientConfig, startDynalite } from '../local/dynamodb.ts';
import { invoke } from '../local/lambdas.ts';
import { createTable, Store } from '../store/index.ts';
import { until } from './e2e.ts';
import { backendWithHeldPulls, type HeldPullsBackend, heldAgentPilot } from './support/held-agent.ts';

describe('leaseAction and returnLease (pure)', () => {
  const now = 1_000_000;
  it.each([
    // state, lease holder, deadline → action
    ['Scheduling', 'a', now - 1, 'return'],
    ['Scheduling', 'a', now, 'return'],
    ['Scheduling', 'a', now + 1, 'none'],
    ['Scheduling', undefined, undefined, 'none'],
    ['Executing', 'a', now - 1, 'none'],
    ['Done', 'a', now - 1, 'none'],
    ['PendingExecution', undefined, now - 1, 'requeue'],
    ['PendingExecution', undefined, undefined, 'none'],
    ['PendingExecution', 'a', now - 1, 'none'],
  ] as const)('%s leased to %s until %s → %s', (state, lease, leaseUntilMs, kind) => {
    const view = {
      state,
      ...(lease === undefined ? {} : { lease }),
      ...(leaseUntilMs === undefined ? {} : { leaseUntilMs }),
    };
    expect(leaseAction(view, now).kind).toBe(kind);
  });

  it('returns only an unstarted claim, and enters nothing but PendingExecution', () => {
    expect(returnLease(UnitState.SCHEDULING)).toEqual({
      ok: true,
      state: UnitState.PENDING_EXECUTION,
      passed: [UnitState.PENDING_EXECUTION],
    });
    expect(returnLease(UnitState.EXECUTING)).toEqual({
      ok: false,
      reason:
        'unit cannot go from Executing to PendingExecution: only an unstarted claim (Scheduling) is returned',
    });
    expect(returnLease(UnitState.PENDING_EXECUTION).ok).toBe(false);
  });
});

describe('lease holder on the store (dynalite)', () => {
  let engine: LocalDynamoDb;
  let client: DynamoDBClient;
  const tableName = `sortie-test-${randomUUID()}`;
  const UD: ComputeUnitDescription = { executable: '/bin/true', cores: 1 };
  const P = 'pilot.0000';

  beforeAll(async () => {
    engine = await startDynalite();
    client = new DynamoDBClient(localClientConfig(engine.endpoint));
    await createTable(client, tableName);
  });
  afterAll(async () => {
    client?.destroy();
    await engine?.close();
  });

  it('a unit returned and claimed again is started only by the new holder', async () => {
    // Prepare: a unit claimed under lease a, as the pull route claims it.
    const store = new Store({ tableName, client });
    const { sessionId: sid } = await store.createSession({ tokenHash: 'h' });
    const umgr = (await store.createUnitManager(sid, 'round_robin')).uid;
    const [unit] = await store.createUnits(sid, umgr, [
      { description: UD, state: 'PendingExecution', pilot: P },
    ]);
    const uid = unit?.uid as string;
    const claim = (lease: string) =>
      store.transitionUnits(sid, [
        { uid, target: 'Scheduling', patch: { lease, leaseUntil: Date.now() }, expect: { pilot: P } },
      ]);
    const start = async (lease: string) => {
      const starts: StartReport[] = [{ uid, lease, time: new Date().toISOString() }];
      return startedOf(starts, await store.transitionUnits(sid, planStarts(starts, P)), P);
    };
    expect((await claim('a'))[0]?.ok).toBe(true);
    // Act: a return guarded by the wrong holder is refused; by the right one it moves the unit back.
    const wrong = await store.returnLeases(sid, [{ uid, expect: { pilot: P, lease: 'b' } }]);
    const [back] = await store.returnLeases(sid, [{ uid, expect: { pilot: P, lease: 'a' } }]);
    const staleBeforeClaim = await start('a');
    expect((await claim('b'))[0]?.ok).toBe(true);
    const staleAfterClaim = await start('a');
    const holder = await start('b');
    // Assess
    expect(wrong[0]?.ok).toBe(false);
    expect(back?.ok && back.record.state).toBe('PendingExecution');
    expect(back?.ok && back.record.lease).toBeUndefined();
    expect(staleBeforeClaim).toEqual([]);
    expect(staleAfterClaim).toEqual([]);
    expect(holder).toEqual([uid]);
    const [after] = await store.getUnits(sid, [uid]);
    expect(after?.stateHistory.map((h) => h.state).slice(-5)).toEqual([
      'PendingExecution',
      'Scheduling',
      'PendingExecution',
      'Scheduling',
      'Executing',
    ]);
    // A returned unit keeps its deadline until it is back in its queue; then it loses it.
    expect((await store.clearLeaseDeadline(sid, uid, P)).ok).toBe(false);
  });
});

describe('expired leases end to end (embedded backend, real agent)', () => {
  let held: HeldPullsBackend;
  let backend: Backend;
  let proxy: HeldPullsBackend['proxy'];

  beforeAll(async () => {
    // The agent's pulls wait in the proxy until the test has taken the units with the agent's own token.
    held = await backendWithHeldPulls();
    ({ backend, proxy } = held);
  }, 120_000);
  afterAll(async () => {
    await held?.close();
  });

  it('units taken by a pull that never starts them run DONE on the real agent after the lease, once', async () => {
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'leases' });
    try {
      // Prepare: an ACTIVE pilot whose agent's pulls are held; its token, as the agent has it.
      const pmgr = await PilotManager.create(session);
      const held = await heldAgentPilot(pmgr, backend.apiUrl, proxy);
      const { pilot } = held;
      const agentCall = async (route: string, body: unknown) => {
        const answer = await held.agentCall(route, body);
        expect(answer.status, route).toBe(200);
        return answer.body;
      };
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const units = await umgr.submitUnits(
        Array.from({ length: 20 }, (_, i) => ({ executable: '/bin/echo', arguments: [`unit ${i}`] })),
      );

      // Act 1: the 20 units travel in one message; a pull asking for 3 claims 3, the rest stay queued.
      const first = (await agentCall('/agent/pull', { max: 3, waitSeconds: 5, pullId: 'taken-1' })) as {
        units: { uid: string; lease: string }[];
      };
      const rest = (await agentCall('/agent/pull', { max: 100, waitSeconds: 5, pullId: 'taken-2' })) as {
        units: { uid: string; lease: string }[];
      };
      // Assess 1: never more than asked, nothing lost, each claimed once.
      expect(first.units).toHaveLength(3);
      expect(rest.units).toHaveLength(17);
      const taken = [...first.units, ...rest.units];
      expect(new Set(taken.map((u) => u.uid))).toEqual(new Set(units.map((u) => u.uid)));
      expect(new Set(taken.map((u) => u.lease)).size).toBe(2);

      // Act 2: the taker never starts them. The agent pulls again; the reconciler returns the leases.
      proxy.release();
      const returned = new Set<string>();
      await until(
        'the reconciler returns the expired leases',
        async () => {
          const r = (await invoke('reconcile', {})) as ReconcileReport;
          for (const uid of r.returned.flatMap((x) => x.uids)) returned.add(uid);
          return returned.size >= units.length ? true : undefined;
        },
        30_000,
        200,
      );
      // Assess 2: every unit runs DONE on the real agent, once; the taker's starts are refused.
      expect(returned).toEqual(new Set(units.map((u) => u.uid)));
      expect(await umgr.waitUnits({ timeout: 120 })).toEqual(units.map(() => UnitState.DONE));
      const stale = (await agentCall('/agent/started', {
        starts: taken.map((u) => ({ uid: u.uid, lease: u.lease, time: new Date().toISOString() })),
      })) as { started: string[] };
      expect(stale.started).toEqual([]);
      for (const [i, u] of units.entries()) {
        await u.refresh();
        expect(u.stdout, u.uid).toBe(`unit ${i}\n`);
        const states = u.stateHistory.map((e) => e.state);
        expect(
          states.filter((s) => s === UnitState.EXECUTING),
          u.uid,
        ).toHaveLength(1);
        // Claimed by the taker, returned (never claiming it executed), claimed by the agent, run.
        // No output directives, so no output staging states (RP 0.22).
        expect(states, u.uid).toEqual([
          'New',
          'PendingExecution',
          'Scheduling',
          'PendingExecution',
          'Scheduling',
          'Executing',
          'Done',
        ]);
      }
    } finally {
      await session.close({ timeout: 30 });
    }
  }, 180_000);
});
