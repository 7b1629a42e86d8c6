/**
 * Arm-ahead (agent/arm-ahead.ts): the next units of a busy agent are armed to start while the units ahead
 * of them run, and spawned without a write-ahead when a core frees. Piece by piece — the sweep and lease
 * rules, the agent's policy, the guarded writes on dynalite — and end to end with a real agent: short
 * units run DONE once through arms; an agent SIGKILLed with armed units lets none run twice (the armed
 * ones end FAILED, saying they may have started); an agent that stops by itself (SIGTERM) disarms them,
 * and they run on the other pilot.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArmReport, PulledUnit } from '../agent/api.ts';
import { ARM_BELOW_MS, ArmAhead } from '../agent/arm-ahead.ts';
import { type ComputeUnit, PilotManager, Session, UnitManager, UnitState } from '../client/index.ts';
import type { ComputeUnitDescription } from '../core/descriptions.ts';
import { leaseAction } from '../core/reconcile.ts';
import { armable, sweepTarget } from '../core/states.ts';
import { firstArmable, parseArmCount } from '../functions/callbacks/reports.ts';
import { awsRequests } from '../functions/lib/aws.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { type LocalDynamoDb, localClientConfig, startDynalite } from '../local/dynamodb.ts';
import { ENV } from '../stacks/manifest.ts';
import { createTable, Store } from '../store/index.ts';
import { agentEnds, historyProblems, killUnitProcesses, until } from './e2e.ts';

describe('sweep and lease rules for armed units (pure)', () => {
  it('an armed claim counts as started: failed by a sweep unless restartable, never returned', () => {
    expect(sweepTarget(UnitState.SCHEDULING, false, true)).toBe(UnitState.FAILED);
    expect(sweepTarget(UnitState.SCHEDULING, false, false)).toBe(UnitState.UNSCHEDULED);
    expect(sweepTarget(UnitState.SCHEDULING, true, true)).toBe(UnitState.UNSCHEDULED);
    const view = { state: UnitState.SCHEDULING, lease: 'l', leaseUntilMs: 0 };
    expect(leaseAction(view, 1).kind).toBe('return');
    expect(leaseAction({ ...view, armed: true }, 1).kind).toBe('none');
  });
});

describe('claims that arm (pure)', () => {
  it('a pull arms the first units of its count that need a write-ahead and are claimed Scheduling', () => {
    const plain: ComputeUnitDescription = { executable: '/bin/true', cores: 1 };
    const restartable: ComputeUnitDescription = { ...plain, restartable: true };
    const staged = { ...plain, inputStaging: [{ source: 'x' }] };
    expect(armable(plain)).toBe(true);
    expect([armable(restartable), armable(staged)]).toEqual([false, false]);
    expect(firstArmable([restartable, plain, staged, plain, plain], 2)).toEqual([
      false,
      true,
      false,
      true,
      false,
    ]);
    expect(firstArmable([plain, plain], 0)).toEqual([false, false]);
  });

  it('the count is an integer from 0, capped by the pull; anything else is refused naming it', () => {
    expect(parseArmCount(undefined, 10)).toBe(0);
    expect(parseArmCount(3, 10)).toBe(3);
    expect(parseArmCount(50, 10)).toBe(10);
    for (const bad of [-1, 1.5, '2', null])
      expect(() => parseArmCount(bad, 10), String(bad)).toThrow(/pull\.arm: a count of units to arm/);
  });
});

describe('ArmAhead (agent policy)', () => {
  const unit = (uid: string, d: Partial<PulledUnit['description']> = {}): PulledUnit => ({
    uid,
    lease: 'lease-a',
    description: { executable: '/bin/true', ...d },
  });
  /** A channel that answers `yes` for every uid, after `release()`; records what was asked. */
  function channel(yes: (uid: string) => boolean = () => true) {
    const arms: string[] = [];
    const disarms: string[] = [];
    let release: () => void = () => {};
    let fail: (e: Error) => void = () => {};
    const gate = new Promise<void>((r, j) => {
      release = r;
      fail = j;
    });
    return {
      arms,
      disarms,
      release: () => release(),
      /** The arm requests out fail (the control plane could not be asked). */
      fail: () => fail(new Error('unreachable')),
      arm: async (u: ArmReport) => {
        arms.push(u.uid);
        await gate;
        return yes(u.uid);
      },
      disarm: async (u: ArmReport) => {
        disarms.push(u.uid);
        return true;
      },
    };
  }
  const settle = () => new Promise((r) => setImmediate(r));

  it('arms nothing before a unit has ended short, nor after a long one', () => {
    const ch = channel();
    const a = new ArmAhead(ch, 4, () => {}, true);
    const queue = ['a', 'b'].map((u) => unit(u));
    a.top(queue);
    a.ran(ARM_BELOW_MS);
    a.top(queue);
    expect(ch.arms).toEqual([]);
    a.ran(5);
    a.top(queue);
    expect(ch.arms).toEqual(['a', 'b']);
  });

  it('arms the head of the queue up to its depth, again once half is spent; skips what needs no arm', async () => {
    const ch = channel();
    ch.release();
    const a = new ArmAhead(ch, 4, () => {}, true);
    a.ran(5);
    const queue = [
      unit('a'),
      unit('r', { restartable: true }),
      unit('s', { inputStaging: [{ source: 'x', action: 'Copy' } as never] }),
      unit('b'),
      unit('c'),
      unit('d'),
    ];
    a.top(queue);
    expect(ch.arms).toEqual(['a', 'b']);
    await settle();
    // Two of the four head units armed: more than half is not, so nothing is asked yet.
    a.top(queue);
    expect(ch.arms).toEqual(['a', 'b']);
    expect(a.take('a')).toBe('armed');
    expect(a.take('r')).toBe(undefined);
    queue.splice(0, 2);
    a.top(queue);
    expect(ch.arms).toEqual(['a', 'b', 'c', 'd']);
  });

  it('a refused arm drops the unit; a unit taken while its arm is asked waits for that answer', async () => {
    const ch = channel((uid) => uid !== 'b' && uid !== 'c');
    const dropped: string[] = [];
    const a = new ArmAhead(ch, 4, (uid) => dropped.push(uid), true);
    a.ran(5);
    a.top([unit('a'), unit('b'), unit('c')]);
    // a and c are taken to start while their arms are asked: each waits for its arm's answer, no
    // write-ahead of its own (it would be one more write, and no sooner).
    const ta = a.take('a');
    const tc = a.take('c');
    ch.release();
    // a's arm took: it starts armed; c's was refused: it never starts; b (still queued) is dropped.
    expect(await ta).toBe(true);
    expect(await tc).toBe(false);
    await settle();
    expect(dropped).toEqual(['b']);
    expect(a.take('a')).toBe(undefined); // taken once: no mark left
    expect([a.armed, a.refused]).toEqual([1, 2]);
  });

  it('a unit taken while its arm is asked, the arm not answered: it starts with a write-ahead', async () => {
    const ch = channel();
    const a = new ArmAhead(ch, 4, () => {}, true);
    a.ran(5);
    a.top([unit('a')]);
    const ta = a.take('a');
    ch.fail();
    expect(await ta).toBe(undefined);
  });

  it('on stop, waits for the arms in flight and disarms every armed unit still queued', async () => {
    const ch = channel();
    const a = new ArmAhead(ch, 4, () => {}, true);
    a.ran(5);
    const queue = [unit('a'), unit('b'), unit('c')];
    a.top(queue);
    const stopping = a.disarm(queue);
    ch.release();
    expect(await stopping).toEqual([]);
    expect(ch.disarms).toEqual(['a', 'b', 'c']);
  });

  it('armAhead false (the resource config) arms nothing', () => {
    const ch = channel();
    const a = new ArmAhead(ch, 4, () => {}, false);
    a.ran(5);
    a.top([unit('a')]);
    expect(ch.arms).toEqual([]);
    expect(a.claimRoom(0)).toBe(0);
  });

  it('a pull may have armed by their claim the units that land within the head; they start armed, and disarm', async () => {
    const ch = channel();
    ch.release();
    const a = new ArmAhead(ch, 4, () => {}, true);
    // Before any unit ended short, nothing is armed, by a claim either.
    expect(a.claimRoom(0)).toBe(0);
    a.ran(5);
    expect([a.claimRoom(0), a.claimRoom(3), a.claimRoom(9)]).toEqual([4, 1, 0]);
    a.claimed('a');
    a.claimed('b');
    // Armed by its claim: spawned without a write-ahead, and not armed again by top().
    a.top([unit('a'), unit('b')]);
    expect(ch.arms).toEqual([]);
    expect(a.take('a')).toBe('armed');
    expect(await a.disarm([unit('b')])).toEqual([]);
    expect(ch.disarms).toEqual(['b']);
    expect(a.armedAtClaim).toBe(2);
  });
});

describe('arms on the store (dynalite)', () => {
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

  /** A fresh unit claimed by pilot P under lease 'a', as the pull route claims it. */
  async function claimed(store: Store): Promise<{ sid: string; uid: string }> {
    const { sessionId: sid } = await store.createSession({ tokenHash: 'h' });
    const umgr = (await store.createUnitManager(sid, 'round_robin')).uid;
    const [u] = await store.createUnits(sid, umgr, [
      { description: UD, state: 'PendingExecution', pilot: P },
    ]);
    const uid = u?.uid as string;
    const [c] = await store.transitionUnits(sid, [
      { uid, target: 'Scheduling', patch: { lease: 'a', leaseUntil: 0 }, expect: { pilot: P } },
    ]);
    expect(c?.ok).toBe(true);
    return { sid, uid };
  }

  it('only the lease holder arms an unstarted claim; quietly (the change feed does not move)', async () => {
    const store = new Store({ tableName, client });
    const { sid, uid } = await claimed(store);
    const [before] = await store.getUnits(sid, [uid]);
    const [other, wrongLease, mine, again] = [
      ...(await store.armUnits(sid, [{ uid, pilot: 'pilot.0001', lease: 'a', armed: true }])),
      ...(await store.armUnits(sid, [{ uid, pilot: P, lease: 'b', armed: true }])),
      ...(await store.armUnits(sid, [{ uid, pilot: P, lease: 'a', armed: true }])),
      ...(await store.armUnits(sid, [{ uid, pilot: P, lease: 'a', armed: true }])),
    ];
    expect([other?.ok, wrongLease?.ok, mine?.ok, again?.ok]).toEqual([false, false, true, true]);
    const [after] = await store.getUnits(sid, [uid]);
    expect(after?.armed).toBe(true);
    expect(after?.state).toBe('Scheduling');
    expect(after?.changed).toBe(before?.changed);
    expect(after?.stateHistory).toEqual(before?.stateHistory);
  });

  it('an armed unit is not cancelled in the table, returned or rescheduled; disarmed, it is', async () => {
    const store = new Store({ tableName, client });
    const { sid, uid } = await claimed(store);
    await store.armUnits(sid, [{ uid, pilot: P, lease: 'a', armed: true }]);
    const [cancel] = await store.transitionUnits(sid, [
      { uid, target: 'Canceled', before: 'Executing', patch: { appendLog: ['cancelled'] } },
    ]);
    const [ret] = await store.returnLeases(sid, [{ uid, expect: { pilot: P, lease: 'a' } }]);
    const [resched] = await store.rescheduleUnits(sid, [{ uid, expect: { pilot: P } }]);
    expect([cancel?.ok, ret?.ok, resched?.ok]).toEqual([false, false, false]);
    expect(!cancel?.ok && cancel?.error.message).toMatch(/armed is true, expected none/);
    // The agent's own reports still move it: its EXECUTING after the spawn.
    const [disarm] = await store.armUnits(sid, [{ uid, pilot: P, lease: 'a', armed: false }]);
    expect(disarm?.ok).toBe(true);
    const [back] = await store.rescheduleUnits(sid, [{ uid, expect: { pilot: P } }]);
    expect(back?.ok && back.record.state).toBe('Unscheduled');
    expect(back?.ok && back.record.armed).toBeUndefined();
  });

  it('a claim may arm in its own write: the state change and the mark together', async () => {
    const store = new Store({ tableName, client });
    const { sessionId: sid } = await store.createSession({ tokenHash: 'h' });
    const umgr = (await store.createUnitManager(sid, 'round_robin')).uid;
    const [u] = await store.createUnits(sid, umgr, [
      { description: UD, state: 'PendingExecution', pilot: P },
    ]);
    const uid = u?.uid as string;
    const [claim] = await store.transitionUnits(sid, [
      { uid, target: 'Scheduling', patch: { lease: 'a', leaseUntil: 0, armed: true }, expect: { pilot: P } },
    ]);
    expect(claim?.ok && [claim.record.state, claim.record.armed]).toEqual(['Scheduling', true]);
    // From then on it is armed like any other: no cancel in the table, no return, no reschedule.
    const [cancel] = await store.transitionUnits(sid, [{ uid, target: 'Canceled', before: 'Executing' }]);
    const [ret] = await store.returnLeases(sid, [{ uid, expect: { pilot: P, lease: 'a' } }]);
    const [resched] = await store.rescheduleUnits(sid, [{ uid, expect: { pilot: P } }]);
    expect([cancel?.ok, ret?.ok, resched?.ok]).toEqual([false, false, false]);
  });

  it('a unit cancelled before its arm is never armed (its agent then drops it)', async () => {
    const store = new Store({ tableName, client });
    const { sid, uid } = await claimed(store);
    const [cancel] = await store.transitionUnits(sid, [{ uid, target: 'Canceled', before: 'Executing' }]);
    const [arm] = await store.armUnits(sid, [{ uid, pilot: P, lease: 'a', armed: true }]);
    expect([cancel?.ok, arm?.ok]).toEqual([true, false]);
  });
});

describe('arm-ahead end to end (embedded backend, real agent)', () => {
  let backend: Backend;
  let session: Session;
  let pmgr: PilotManager;
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'sortie-arm-'));
  const pd = { resource: 'local.localhost', runtime: 10, cores: 2 };

  beforeAll(async () => {
    backend = await startBackend({ heartbeatSeconds: 5 });
    session = await Session.create({ endpoint: backend.apiUrl, name: 'arm-ahead' });
    pmgr = await PilotManager.create(session);
  }, 120_000);
  afterAll(async () => {
    await session?.close({ timeout: 20 }).catch(() => {});
    if (session) killUnitProcesses(session.uid);
    await backend?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  /** The armed units of a session, read from the table as the sweep reads them. */
  async function armedUnits(uids: readonly string[]): Promise<string[]> {
    const store = new Store({ tableName: backend.env[ENV.table] as string, client: new DynamoDBClient({}) });
    const units = await store.getUnits(session.uid, uids);
    return units.filter((u) => u.armed && u.state === 'Scheduling').map((u) => u.uid);
  }

  it('short non-restartable units run DONE once each, most of them armed ahead', async () => {
    const pilot = await pmgr.submitPilots(pd);
    const umgr = await UnitManager.create(session, 'round_robin');
    await umgr.addPilots(pilot);
    const units = await umgr.submitUnits(Array.from({ length: 300 }, () => ({ executable: '/bin/true' })));
    await umgr.waitUnits({ timeout: 180, throwOnTimeout: true });
    expect(units.filter((u) => u.state !== UnitState.DONE).map((u) => `${u.uid}:${u.state}`)).toEqual([]);
    for (const u of units) expect(historyProblems(u), u.uid).toEqual([]);
    await pmgr.cancelPilots(pilot.uid);
    await pilot.wait({ timeout: 60 });
    const out = await agentEnds(pilot.sandbox as string);
    const [, ahead, byClaim] = /\((\d+) armed ahead, (\d+) by their claim\)/.exec(out) ?? [];
    expect(Number(ahead) + Number(byClaim), out.slice(-400)).toBeGreaterThan(100);
    await umgr.close();
  }, 300_000);

  it('units pulled while units are armed come held: each claimed by the write that arms it, DONE once', async () => {
    const pilot = await pmgr.submitPilots(pd);
    const umgr = await UnitManager.create(session, 'round_robin');
    await umgr.addPilots(pilot);
    // Prepare: units end short, so the agent arms (and its pulls hold) from then on.
    for (let i = 0; i < 3; i++) {
      const [u] = await umgr.submitUnits([{ executable: '/bin/true' }]);
      await (u as ComputeUnit).wait({ timeout: 60 });
    }
    // Act: a wave of units, counting this process's DynamoDB updates (the embedded backend's).
    const updates0 = awsRequests['DynamoDB.UpdateItem'] ?? 0;
    const units = await umgr.submitUnits(Array.from({ length: 200 }, () => ({ executable: '/bin/true' })));
    await umgr.waitUnits({ timeout: 180, throwOnTimeout: true });
    const updates = (awsRequests['DynamoDB.UpdateItem'] ?? 0) - updates0;
    await pmgr.cancelPilots(pilot.uid);
    await pilot.wait({ timeout: 60 });
    // Assess: each DONE once, with one claim in its history; most claimed by their arms; about two updates
    // per unit (the claim that arms, the end with EXECUTING), where pulls that claimed everything took a
    // claim, an arm and an end (3.3 per unit here), and units whose arm was out when they came to start
    // a write-ahead besides (2.7 with holds alone).
    expect(units.filter((u) => u.state !== UnitState.DONE).map((u) => `${u.uid}:${u.state}`)).toEqual([]);
    for (const u of units) {
      expect(historyProblems(u), u.uid).toEqual([]);
      expect(u.stateHistory.filter((e) => e.state === UnitState.SCHEDULING).length, u.uid).toBe(1);
    }
    const out = await agentEnds(pilot.sandbox as string);
    const held = Number(/, (\d+) held units claimed by their arm/.exec(out)?.[1]);
    expect(held, out.slice(-400)).toBeGreaterThan(100);
    expect(updates / units.length).toBeLessThan(2.4);
    await umgr.close();
  }, 300_000);

  it('armAhead false in the resource config: every start written ahead, none armed', async () => {
    const local = JSON.parse(
      readFileSync(path.join(import.meta.dirname, '..', 'resources', 'local.json'), 'utf8'),
    ).localhost as Record<string, unknown>;
    await session.addResourceConfig({ 'test.writeahead': { ...local, armAhead: false } });
    const pilot = await pmgr.submitPilots({ ...pd, resource: 'test.writeahead' });
    const umgr = await UnitManager.create(session, 'round_robin');
    await umgr.addPilots(pilot);
    const units = await umgr.submitUnits(Array.from({ length: 60 }, () => ({ executable: '/bin/true' })));
    await umgr.waitUnits({ timeout: 120, throwOnTimeout: true });
    expect(units.every((u) => u.state === UnitState.DONE)).toBe(true);
    await pmgr.cancelPilots(pilot.uid);
    await pilot.wait({ timeout: 60 });
    const out = await agentEnds(pilot.sandbox as string);
    expect(out, out.slice(-400)).toMatch(/60 units started \(0 armed ahead, 0 by their claim\)/);
    await umgr.close();
  }, 300_000);

  it('on an idle pilot a unit is armed by its claim: spawned with no write-ahead, DONE once', async () => {
    const pilot = await pmgr.submitPilots(pd);
    const umgr = await UnitManager.create(session, 'round_robin');
    await umgr.addPilots(pilot);
    // One at a time, each on an idle agent. Arming starts once a unit has ended short: the pull out while
    // the first ran asked for none, so from the third unit on each is armed by the claim that brings it.
    const units: ComputeUnit[] = [];
    for (let i = 0; i < 5; i++) {
      const [u] = await umgr.submitUnits([{ executable: '/bin/true' }]);
      await (u as ComputeUnit).wait({ timeout: 60 });
      units.push(u as ComputeUnit);
    }
    for (const u of units) {
      expect(u.state, u.uid).toBe(UnitState.DONE);
      expect(historyProblems(u), u.uid).toEqual([]);
    }
    const store = new Store({ tableName: backend.env[ENV.table] as string, client: new DynamoDBClient({}) });
    const records = await store.getUnits(
      session.uid,
      units.map((u) => u.uid),
    );
    expect(records.slice(2).map((r) => [r.uid, r.armed])).toEqual(records.slice(2).map((r) => [r.uid, true]));
    await pmgr.cancelPilots(pilot.uid);
    await pilot.wait({ timeout: 60 });
    const out = await agentEnds(pilot.sandbox as string);
    const byClaim = Number(/, (\d+) by their claim\)/.exec(out)?.[1]);
    expect(byClaim, out.slice(-400)).toBeGreaterThanOrEqual(3);
    await umgr.close();
  }, 300_000);

  /**
   * Pilot A runs 12 null units (so units count as short), then long ones: the first two start, those
   * behind them get armed; then A's agent gets `signal`. B, added afterwards, takes what A's sweep gives
   * back. Each long unit's first run makes a marker; a rerun leaves `.twice`.
   */
  async function armedThenSignal(
    signal: 'SIGKILL' | 'SIGTERM',
    /** Runs right after the signal, before the pilot's end is noticed. */
    after: (umgr: UnitManager, armed: string[]) => Promise<void> = async () => {},
  ) {
    const markers = path.join(scratch, signal);
    mkdirSync(markers);
    const a = await pmgr.submitPilots(pd);
    const umgr = await UnitManager.create(session, 'round_robin');
    await umgr.addPilots(a);
    const long = {
      executable: '/bin/sh',
      arguments: [
        '-c',
        `mkdir ${markers}/$RP_UNIT_ID 2>/dev/null || { touch ${markers}/$RP_UNIT_ID.twice; exit 0; }; ` +
          `[ "$RP_PILOT_ID" = "${a.uid}" ] && exec /bin/sleep 60; exit 0`,
      ],
    };
    const units = await umgr.submitUnits([
      ...Array.from({ length: 12 }, () => ({ executable: '/bin/true' })),
      ...Array.from({ length: 8 }, () => long),
    ]);
    const longUids = units.slice(12).map((u) => u.uid);
    const b = await pmgr.submitPilots(pd);
    await umgr.addPilots(b);
    // Armed and waiting: both cores run long units (their markers), and units behind them are armed. (An
    // armed unit that started reads Scheduling until its EXECUTING report lands: it has its marker.)
    const armed = await until(
      'two units armed behind two long ones',
      async () => {
        const started = readdirSync(markers);
        if (started.length < 2) return undefined;
        const found = (await armedUnits(longUids)).filter((uid) => !started.includes(uid));
        // Two at least: one is cancelled in the SIGKILL case, the others must still end FAILED.
        return found.length >= 2 ? found : undefined;
      },
      60_000,
    );
    const pid = Number(readFileSync(path.join(a.sandbox as string, 'agent.pid'), 'utf8'));
    process.kill(pid, signal);
    await after(umgr, armed);
    await umgr.waitUnits({ timeout: 120, throwOnTimeout: true });
    await a.wait({ timeout: 60 });
    const twice = readdirSync(markers).filter((f) => f.endsWith('.twice'));
    expect(twice, 'units run twice').toEqual([]);
    const byUid = new Map(units.map((u) => [u.uid, u] as const));
    await umgr.close();
    return { armed: armed.map((uid) => byUid.get(uid) as ComputeUnit), units, markers };
  }

  it('an agent SIGKILLed with armed units: none runs twice, the armed ones end FAILED saying why', async () => {
    // One armed unit is cancelled after its agent died: the cancel goes to the agent (it may be running),
    // which never answers; the sweep, finding the cancel still on the pilot, ends it CANCELED.
    let cancelledUid = '';
    const {
      armed: all,
      units,
      markers,
    } = await armedThenSignal('SIGKILL', async (umgr, uids) => {
      cancelledUid = uids[0] as string;
      await umgr.cancelUnits(cancelledUid);
    });
    const cancelled = all.find((u) => u.uid === cancelledUid) as ComputeUnit;
    expect(cancelled.state, cancelled.log.join(' | ')).toBe(UnitState.CANCELED);
    expect(cancelled.log.join('\n')).toMatch(/cancelled; its agent was lost/);
    const armed = all.filter((u) => u !== cancelled);
    for (const u of armed) {
      expect(u.state, u.uid).toBe(UnitState.FAILED);
      expect(u.log.join('\n'), u.uid).toMatch(/armed to start there, so it may have started/);
      // It never started: the agent died before a core freed for it.
      expect(existsSync(path.join(markers, u.uid)), u.uid).toBe(false);
    }
    // Units neither started nor armed on A were rescheduled and ran on B.
    expect(units.some((u) => u.state === UnitState.DONE && u.pilotId !== units[0]?.pilotId)).toBe(true);
  }, 300_000);

  it('an agent that stops by itself (SIGTERM) disarms its armed units: they run on the other pilot', async () => {
    const { armed } = await armedThenSignal('SIGTERM');
    for (const u of armed) {
      expect(u.state, `${u.uid}: ${u.log.join(' | ')}`).toBe(UnitState.DONE);
      expect(u.log.join('\n')).not.toMatch(/armed to start/);
    }
    expect(armed.length).toBeGreaterThan(0);
  }, 300_000);
});
