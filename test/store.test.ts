/**
 * The store against real engines: dynalite always, Amazon's DynamoDB Local when
 * SORTIE_TEST_DYNAMODB_LOCAL=1 (CI sets it). Each test works in its own session of one shared table.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { itemBytes } from '../bench/pricing.ts';
import type { ComputeUnitDescription } from '../core/descriptions.ts';
import { DoesNotExist, IncorrectState } from '../core/errors.ts';
import { allItems } from '../core/pages.ts';
import { purgePlan } from '../core/purge.ts';
import { sweepTarget, type UnitState, unitModel } from '../core/states.ts';
import { planRounds, type Report } from '../functions/callbacks/reports.ts';
import {
  type LocalDynamoDb,
  localClientConfig,
  startDynalite,
  startDynamoDbLocal,
} from '../local/dynamodb.ts';
import { createTable, Store, type UnitRecord } from '../store/index.ts';

const engines = [
  { name: 'dynalite', start: startDynalite },
  ...(process.env.SORTIE_TEST_DYNAMODB_LOCAL === '1'
    ? [{ name: 'DynamoDB Local', start: startDynamoDbLocal }]
    : []),
];

const UD: ComputeUnitDescription = { executable: '/bin/true', cores: 1 };
const PD = { resource: 'local.localhost', runtime: 10, cores: 4 };
/**
 * The happy path after NEW of a unit without staging directives (UNSCHEDULED is a detour: only a sweep
 * enters it; the staging states are on a unit's path only when it has directives, as in RP 0.22).
 */
const PATH: UnitState[] = ['PendingExecution', 'Scheduling', 'Executing', 'Done'];
/** A unit with one input and one output directive, and its happy path after NEW. */
const UDS: ComputeUnitDescription = {
  ...UD,
  inputStaging: [{ source: 'in', target: 'in', action: 'Copy', flags: [], priority: 0 }],
  outputStaging: [{ source: 'out', target: 'out', action: 'Copy', flags: [], priority: 0 }],
};
const STAGED_PATH: UnitState[] = [
  'PendingInputStaging',
  'StagingInput',
  'PendingExecution',
  'Scheduling',
  'Executing',
  'PendingOutputStaging',
  'StagingOutput',
  'Done',
];

/** A clock that moves 1 ms per reading: change cursors are then strictly ordered. */
function tickingClock(): () => Date {
  let t = Date.parse('2030-01-01T00:00:00.000Z');
  return () => new Date(t++);
}

/** Deterministic PRNG (mulberry32), so a failing shuffle can be replayed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const historyOf = (u: UnitRecord): UnitState[] => u.stateHistory.map((h) => h.state);

describe.each(engines)('Store on $name', ({ start }) => {
  let engine: LocalDynamoDb;
  let client: DynamoDBClient;
  const tableName = `sortie-test-${randomUUID()}`;

  beforeAll(async () => {
    engine = await start();
    client = new DynamoDBClient(localClientConfig(engine.endpoint));
    await createTable(client, tableName);
  });
  afterAll(async () => {
    client?.destroy();
    await engine?.close();
  });

  const newStore = (): Store => new Store({ tableName, client, now: tickingClock() });

  /** A store with an open session, a pilot manager and a unit manager. */
  async function setup(): Promise<{ store: Store; sid: string; pmgr: string; umgr: string }> {
    const store = newStore();
    const { sessionId: sid } = await store.createSession({ tokenHash: 'h' });
    const pmgr = (await store.createPilotManager(sid)).uid;
    const umgr = (await store.createUnitManager(sid, 'backfilling')).uid;
    return { store, sid, pmgr, umgr };
  }

  describe('schema', () => {
    it('creates the table idempotently', async () => {
      await expect(createTable(client, tableName)).resolves.toBeUndefined();
    });
  });

  describe('sessions and managers', () => {
    it('creates, gets and closes a session; refuses new ids once closed', async () => {
      // Prepare
      const store = newStore();
      const s = await store.createSession({ tokenHash: 'abc', sessionId: `rp.session.${randomUUID()}` });
      // Act
      const ids = await store.reserveIds(s.sessionId, 'unit', 3);
      const more = await store.reserveIds(s.sessionId, 'unit', 2);
      const closed = await store.closeSession(s.sessionId);
      // Assess
      expect(await store.getSession(s.sessionId)).toMatchObject({ state: 'closed', tokenHash: 'abc' });
      expect(ids).toEqual(['unit.000000', 'unit.000001', 'unit.000002']);
      expect(more).toEqual(['unit.000003', 'unit.000004']);
      expect(closed.closed).toBeDefined();
      await expect(store.reserveIds(s.sessionId, 'pilot', 1)).rejects.toBeInstanceOf(IncorrectState);
      await expect(store.createSession({ tokenHash: 'x', sessionId: s.sessionId })).rejects.toBeInstanceOf(
        IncorrectState,
      );
      await expect(store.getSession('rp.session.nope')).rejects.toBeInstanceOf(DoesNotExist);
      await expect(store.reserveIds('rp.session.nope', 'unit', 1)).rejects.toBeInstanceOf(DoesNotExist);
    });

    it('creates, gets and lists managers', async () => {
      const { store, sid, pmgr, umgr } = await setup();
      const pmgr2 = await store.createPilotManager(sid);
      expect([pmgr, pmgr2.uid]).toEqual(['pmgr.0000', 'pmgr.0001']);
      expect(umgr).toBe('umgr.0000');
      expect((await store.listPilotManagers(sid)).items.map((m) => m.uid)).toEqual([
        'pmgr.0000',
        'pmgr.0001',
      ]);
      expect((await store.listUnitManagers(sid)).items.map((m) => m.uid)).toEqual(['umgr.0000']);
      expect(await store.getUnitManager(sid, umgr)).toMatchObject({ scheduler: 'backfilling', pilots: [] });
      await store.updateUnitManagerPilots(sid, umgr, { add: ['pilot.0001', 'pilot.0000'] });
      const after = await store.updateUnitManagerPilots(sid, umgr, {
        add: ['pilot.0000'],
        remove: ['pilot.0001'],
      });
      expect(after.pilots).toEqual(['pilot.0000']);
      await expect(store.getPilotManager(sid, umgr)).rejects.toBeInstanceOf(DoesNotExist);
      await expect(store.createUnits(sid, 'umgr.0042', [{ description: UD }])).rejects.toBeInstanceOf(
        DoesNotExist,
      );
    });
  });

  describe('resource configs', () => {
    it("stores a session's configs one item each, replaces by key, and lists only that session's", async () => {
      // Prepare
      const { store, sid, pmgr } = await setup();
      const other = (await store.createSession({ tokenHash: 'o' })).sessionId;
      const big = { description: 'big', nested: { list: [1, 2], empty: '' } };
      // Act
      await store.putResourceConfigs(sid, [
        ['lab.big', big],
        ['lab.small', { description: 'small' }],
      ]);
      await store.putResourceConfigs(sid, [['lab.small', { description: 'smaller' }]]);
      // Assess: the replaced one comes last (listed in the order last added), as given.
      const listed = await store.listResourceConfigs(sid);
      expect(listed.map((c) => [c.key, c.config])).toEqual([
        ['lab.big', big],
        ['lab.small', { description: 'smaller' }],
      ]);
      expect(await store.listResourceConfigs(other)).toEqual([]);
      // They live beside the managers without showing up among them.
      expect((await store.listPilotManagers(sid)).items.map((m) => m.uid)).toEqual([pmgr]);
    });
  });

  describe('pilots', () => {
    it('creates pilots in PendingLaunch and lists them', async () => {
      const { store, sid, pmgr } = await setup();
      const created = await store.createPilots(sid, pmgr, [
        { description: PD, secretHash: 's' },
        { description: PD },
      ]);
      expect(created.map((p) => [p.uid, p.state, p.resource])).toEqual([
        ['pilot.0000', 'PendingLaunch', 'local.localhost'],
        ['pilot.0001', 'PendingLaunch', 'local.localhost'],
      ]);
      expect(await store.getPilot(sid, 'pilot.0000')).toEqual(created[0]);
      expect((await store.listPilots(sid, pmgr)).items).toEqual(created);
      await expect(store.getPilot(sid, 'pilot.0009')).rejects.toBeInstanceOf(DoesNotExist);
    });

    it('trims the commands the agent took, and only while nothing was appended meanwhile', async () => {
      const { store, sid, pmgr } = await setup();
      const [p] = await store.createPilots(sid, pmgr, [{ description: PD }]);
      const pid = p?.uid ?? '';
      const cmd = (uid: string) => ({ type: 'cancel_units' as const, uids: [uid], time: 't' });
      await store.patchPilot(sid, pid, { appendCommands: [cmd('u1'), cmd('u2')] });
      const read = await store.getPilot(sid, pid);
      await store.patchPilot(sid, pid, { appendCommands: [cmd('u3')] });
      // Read before u3 was appended: the guard refuses, nothing is lost.
      expect(await store.trimCommands(sid, read, 2)).toBe(false);
      const now = await store.getPilot(sid, pid);
      expect(now.commands.map((c) => c.uids)).toEqual([['u1'], ['u2'], ['u3']]);
      expect(await store.trimCommands(sid, now, 2)).toBe(true);
      // The same trim again (a repeated heartbeat) does nothing: the base moved.
      expect(await store.trimCommands(sid, now, 2)).toBe(false);
      const trimmed = await store.getPilot(sid, pid);
      expect(trimmed.commands.map((c) => c.uids)).toEqual([['u3']]);
      expect(trimmed.commandsBase).toBe(2);
      expect(await store.trimCommands(sid, trimmed, 1)).toBe(true);
      expect(await store.getPilot(sid, pid)).toMatchObject({ commands: [], commandsBase: 3 });
    });

    it("keeps the agent's last pull in a small item of its own, overwritten by the next", async () => {
      const { store, sid, pmgr } = await setup();
      const [p] = await store.createPilots(sid, pmgr, [{ description: PD }]);
      const pid = p?.uid ?? '';
      expect(await store.lastPull(sid, pid)).toBeUndefined();
      await store.recordPull(sid, pid, { id: 'a', uids: ['unit.000001'], lease: 'l1' });
      await store.recordPull(sid, pid, { id: 'b', uids: ['unit.000002', 'unit.000003'] });
      expect(await store.lastPull(sid, pid)).toEqual({ id: 'b', uids: ['unit.000002', 'unit.000003'] });
      // The pilot item is not touched by pulls.
      expect((await store.getPilot(sid, pid)).changed).toBe(p?.changed);
    });

    it('moves a pilot forward, recording every passed state, and refuses a stale move', async () => {
      // Prepare
      const { store, sid, pmgr } = await setup();
      const [p] = await store.createPilots(sid, pmgr, [{ description: PD }]);
      const pid = p?.uid ?? '';
      // Act
      const active = await store.transitionPilot(sid, pid, 'Active', { jobId: 'slurm:42' });
      const stale = await store.transitionPilot(sid, pid, 'Launching');
      // Assess
      expect(active.ok && active.passed).toEqual(['Launching', 'PendingActive', 'Active']);
      expect(active.ok && active.record.stateHistory.map((h) => h.state)).toEqual([
        'PendingLaunch',
        'Launching',
        'PendingActive',
        'Active',
      ]);
      expect(active.ok && active.record).toMatchObject({ jobId: 'slurm:42', started: expect.any(String) });
      expect(stale.ok).toBe(false);
      if (stale.ok) return;
      expect(stale.error).toBeInstanceOf(IncorrectState);
      expect(stale.error.message).toContain('Active');
      expect(stale.current?.state).toBe('Active');
      expect((await store.transitionPilot(sid, 'pilot.0099', 'Active')).ok).toBe(false);
    });

    it('applies a retried step (Launching again) as a patch without a history step; a plain move refuses it', async () => {
      const { store, sid, pmgr } = await setup();
      const [p] = await store.createPilots(sid, pmgr, [{ description: PD }]);
      const pid = p?.uid ?? '';
      const first = await store.transitionPilot(
        sid,
        pid,
        'Launching',
        { secretHash: 'one' },
        { retry: true },
      );
      const plain = await store.transitionPilot(sid, pid, 'Launching', { secretHash: 'two' });
      const again = await store.transitionPilot(
        sid,
        pid,
        'Launching',
        { secretHash: 'three' },
        { retry: true },
      );
      expect(first.ok && first.passed).toEqual(['Launching']);
      expect(plain.ok).toBe(false);
      expect(again.ok && again.passed).toEqual([]);
      const now = await store.getPilot(sid, pid);
      expect(now.secretHash).toBe('three');
      expect(now.stateHistory.map((h) => h.state)).toEqual(['PendingLaunch', 'Launching']);
      await store.transitionPilot(sid, pid, 'Failed');
      const final = await store.transitionPilot(sid, pid, 'Failed', {}, { retry: true });
      expect(final.ok).toBe(false);
    });

    it('stores a task token only in the given state, appends log lines, and lets FAILED become DONE', async () => {
      const { store, sid, pmgr } = await setup();
      const [p] = await store.createPilots(sid, pmgr, [{ description: PD }]);
      const pid = p?.uid ?? '';
      await store.transitionPilot(sid, pid, 'Launching');
      const stored = await store.patchPilot(
        sid,
        pid,
        { taskTokens: { activate: 'tok1' } },
        { states: ['Launching'] },
      );
      expect(stored.ok && stored.record.taskTokens).toEqual({ activate: 'tok1' });
      await store.transitionPilot(sid, pid, 'PendingActive');
      const late = await store.patchPilot(
        sid,
        pid,
        { taskTokens: { active: 'tok2' } },
        { states: ['Launching'] },
      );
      expect(late.ok).toBe(false);
      expect(!late.ok && late.current?.taskTokens).toEqual({ activate: 'tok1' });
      await store.appendPilotLog(sid, pid, ['one']);
      await store.appendPilotLog(sid, pid, ['two', 'three']);
      await store.patchPilot(sid, pid, {
        taskTokens: { activate: null },
        appendCommands: [{ type: 'cancel_pilot', time: 't' }],
      });
      const failed = await store.transitionPilot(sid, pid, 'Failed');
      const done = await store.transitionPilot(sid, pid, 'Done');
      const again = await store.transitionPilot(sid, pid, 'Failed');
      expect(failed.ok && failed.passed).toEqual(['Failed']);
      expect(done.ok && done.record).toMatchObject({
        state: 'Done',
        log: ['one', 'two', 'three'],
        taskTokens: {},
        commands: [{ type: 'cancel_pilot', time: 't' }],
      });
      expect(again.ok).toBe(false);
      expect((await store.patchPilot(sid, 'unit.000000', { jobId: 'x' })).ok).toBe(false);
    });
  });

  describe('units', () => {
    it('creates 2,000 units in batches of 25 and reads them back', async () => {
      // Prepare
      const { store, sid, umgr } = await setup();
      store.resetRequests();
      const descriptions = Array.from({ length: 2000 }, (_, i) => ({
        description: { ...UD, name: `u${i}` },
      }));
      // Act
      const created = await store.createUnits(sid, umgr, descriptions);
      const counts = { ...store.requests };
      const read = await store.getUnits(
        sid,
        created.map((u) => u.uid),
      );
      const readCounts = { ...store.requests };
      const listed = await allItems((next) => store.listUnits(sid, umgr, { limit: 700, next }));
      // Assess
      expect(created).toHaveLength(2000);
      expect(created[0]?.uid).toBe('unit.000000');
      expect(created[1999]?.uid).toBe('unit.001999');
      expect(new Set(created.map((u) => u.uid)).size).toBe(2000);
      expect(counts).toEqual({ GetItem: 1, UpdateItem: 1, BatchWriteItem: 80 });
      expect(readCounts.BatchGetItem).toBe(20);
      expect(read).toEqual(created);
      expect(listed).toHaveLength(2000);
      expect(new Set(listed.map((u) => u.uid))).toEqual(new Set(created.map((u) => u.uid)));
      expect(read[1234]).toMatchObject({ name: 'u1234', state: 'New', umgr, log: [] });
      await expect(store.getUnits(sid, ['unit.000000', 'unit.999999'])).rejects.toThrow(/unit\.999999/);
    });

    it('lets exactly one of 50 concurrent conflicting transitions win', async () => {
      // Prepare
      const { store, sid, umgr } = await setup();
      const [u] = await store.createUnits(sid, umgr, [
        { description: UD, state: 'Executing', pilot: 'pilot.0000' },
      ]);
      const uid = u?.uid ?? '';
      const targets: UnitState[] = Array.from({ length: 50 }, (_, i) => (i % 2 ? 'Done' : 'Failed'));
      // Act
      const results = await Promise.all(
        targets.map((target) =>
          store.transitionUnits(sid, [{ uid, target, expect: { pilot: 'pilot.0000' } }]),
        ),
      );
      // Assess
      const winners = results.flat().filter((r) => r.ok);
      expect(winners).toHaveLength(1);
      const [final] = await store.getUnits(sid, [uid]);
      const history = historyOf(final as UnitRecord);
      // DONE completes the happy path (fills in output staging); FAILED is entered directly.
      const upToExecuting = ['New', ...PATH.slice(0, PATH.indexOf('Executing') + 1)];
      expect(history).toEqual(final?.state === 'Done' ? ['New', ...PATH] : [...upToExecuting, 'Failed']);
      expect(final?.finished).toBeDefined();
      for (const r of results.flat()) {
        if (!r.ok) expect(r.current?.state).toBe(final?.state);
      }
    });

    it('records a state once when 50 writers race to the same target', async () => {
      const { store, sid, umgr } = await setup();
      const [u] = await store.createUnits(sid, umgr, [{ description: UD, state: 'PendingExecution' }]);
      const uid = u?.uid ?? '';
      const results = await Promise.all(
        Array.from({ length: 50 }, () => store.transitionUnits(sid, [{ uid, target: 'Scheduling' }])),
      );
      expect(results.flat().filter((r) => r.ok)).toHaveLength(1);
      const [final] = await store.getUnits(sid, [uid]);
      expect(historyOf(final as UnitRecord).filter((s) => s === 'Scheduling')).toHaveLength(1);
    });

    it('stores the history as one step per write and keeps a finished null unit under 1 KB', async () => {
      // Prepare
      const { store, sid, umgr, pmgr } = await setup();
      const [pilot] = await store.createPilots(sid, pmgr, [{ description: PD }]);
      const [unit] = await store.createUnits(sid, umgr, [
        { description: UD, state: 'PendingExecution', pilot: pilot?.uid as string },
      ]);
      const uid = unit?.uid as string;
      // Act: the agent's two writes (claim, then everything up to Done in one report)
      await store.transitionUnits(sid, [{ uid, target: 'Scheduling' }]);
      const [done] = await store.transitionUnits(sid, [
        { uid, target: 'Done', patch: { exitCode: 0, stdout: '', stderr: '', sandbox: `/scratch/${uid}` } },
      ]);
      const raw = await client.send(
        new GetItemCommand({
          TableName: tableName,
          Key: { pk: { S: `${sid}#${uid}` } },
          ConsistentRead: true,
        }),
      );
      // Assess
      expect(raw.Item?.stateHistory).toBeUndefined();
      expect(raw.Item?.history?.L?.map((s) => s.S?.replace(/@\d+$/, '@t'))).toEqual([
        'New,PendingExecution@t',
        'Scheduling@t',
        'Executing,Done@t',
      ]);
      const record = (await store.getUnits(sid, [uid]))[0] as UnitRecord;
      expect(historyOf(record)).toEqual(['New', ...PATH]);
      expect(record.stateHistory.every((h) => h.time === new Date(Date.parse(h.time)).toISOString())).toBe(
        true,
      );
      expect(done?.ok && done.record.stateHistory).toEqual(record.stateHistory);
      expect(record).not.toHaveProperty('history');
      expect(itemBytes((raw.Item ?? {}) as Parameters<typeof itemBytes>[0])).toBeLessThan(1024);
    });
    it('puts the staging states on the path of a unit with directives only (RP 0.22)', async () => {
      // Prepare: one unit with input and output directives, one without, both bound to a pilot
      const { store, sid, umgr, pmgr } = await setup();
      const [pilot] = await store.createPilots(sid, pmgr, [{ description: PD }]);
      const pid = pilot?.uid as string;
      const [staged, plain] = await store.createUnits(sid, umgr, [
        { description: UDS, state: 'PendingInputStaging', pilot: pid },
        { description: UD, state: 'PendingExecution', pilot: pid },
      ]);
      const a = staged?.uid as string;
      const b = plain?.uid as string;
      // Act: claim, write-ahead start, output staging, end; and the staging moves tried on the plain unit
      const steps = await store.transitionUnits(sid, [
        { uid: a, target: 'StagingInput' },
        { uid: a, target: 'Executing' },
        { uid: a, target: 'StagingOutput' },
        { uid: a, target: 'Done' },
        { uid: b, target: 'StagingInput' },
        { uid: b, target: 'Executing' },
        { uid: b, target: 'StagingOutput' },
        { uid: b, target: 'Done' },
      ]);
      // Assess: each staging state once and in order for the first; none, and refused, for the second
      expect(steps.map((o) => o.ok)).toEqual([true, true, true, true, false, true, false, true]);
      const [ra, rb] = await store.getUnits(sid, [a, b]);
      expect(historyOf(ra as UnitRecord)).toEqual(['New', ...STAGED_PATH]);
      expect(historyOf(rb as UnitRecord)).toEqual(['New', ...PATH]);
      const refused = steps[4];
      expect(refused?.ok === false && refused.error.message).toContain(
        "StagingInput is not on this unit's path",
      );
    });

    it('decides a change presumed in a state exactly as one read first, in one write on the common path', async () => {
      // Prepare: pairs of like units (each staging mix, each state on its path, bound to a pilot)
      const { store, sid, umgr, pmgr } = await setup();
      const [pilot] = await store.createPilots(sid, pmgr, [{ description: PD }]);
      const pid = pilot?.uid as string;
      const IN = { ...UD, inputStaging: UDS.inputStaging } as ComputeUnitDescription;
      const OUT = { ...UD, outputStaging: UDS.outputStaging } as ComputeUnitDescription;
      const mixes: [ComputeUnitDescription, UnitState[]][] = [
        [UD, PATH.slice(0, -1)],
        [IN, ['PendingInputStaging', 'StagingInput', 'PendingExecution', 'Scheduling', 'Executing']],
        [OUT, ['PendingExecution', 'Scheduling', 'Executing', 'PendingOutputStaging', 'StagingOutput']],
        [UDS, STAGED_PATH.slice(0, -1)],
      ];
      const targets: UnitState[] = ['Scheduling', 'Executing', 'StagingOutput', 'Done', 'Failed', 'Canceled'];
      const presumes: UnitState[] = ['PendingExecution', 'Scheduling', 'Executing'];
      const cases = mixes.flatMap(([description, states]) =>
        states.flatMap((state) =>
          targets.flatMap((target) =>
            presumes.flatMap((presume) =>
              [pid, 'pilot.0009'].map((expectPilot) => ({
                description,
                state,
                target,
                presume,
                expectPilot,
              })),
            ),
          ),
        ),
      );
      const units = await store.createUnits(
        sid,
        umgr,
        cases.flatMap((c) => {
          const first = c.description.inputStaging ? 'PendingInputStaging' : 'PendingExecution';
          return [0, 1].map(() => ({ description: c.description, state: first as UnitState, pilot: pid }));
        }),
      );
      const moved = await store.transitionUnits(
        sid,
        units
          .map((u, i) => ({ uid: u.uid, target: (cases[i >> 1] as (typeof cases)[number]).state }))
          .filter((m, i) => m.target !== units[i]?.state),
      );
      expect(moved.every((o) => o.ok)).toBe(true);
      // Act: the same change on each pair, read first on one unit, presumed on the other
      const change = (i: number, presume?: UnitState) => {
        const c = cases[i] as (typeof cases)[number];
        return {
          uid: (units[2 * i + (presume ? 1 : 0)] as UnitRecord).uid,
          target: c.target,
          patch: { exitCode: 3, sandbox: '/s' },
          expect: { pilot: c.expectPilot },
          report: true,
          ...(presume ? { presume } : {}),
        };
      };
      const read = await store.transitionUnits(
        sid,
        cases.map((_, i) => change(i)),
      );
      store.resetRequests();
      const presumed = await store.transitionUnits(
        sid,
        cases.map((c, i) => change(i, c.presume)),
      );
      const requests = { ...store.requests };
      // Assess: same outcome, same reason, same record but for times, for every case
      const shape = (o: (typeof read)[number]) => ({
        ok: o.ok,
        why: o.ok ? '' : o.error.message.replace(/unit\.\d+/g, 'unit'),
      });
      expect(presumed.map(shape)).toEqual(read.map(shape));
      const records = await store.getUnits(
        sid,
        units.map((u) => u.uid),
      );
      const facts = (u: UnitRecord | undefined) => ({
        state: u?.state,
        history: u ? historyOf(u) : [],
        exitCode: u?.exitCode,
        sandbox: u?.sandbox,
      });
      for (let i = 0; i < cases.length; i++)
        expect(facts(records[2 * i + 1]), JSON.stringify(cases[i])).toEqual(facts(records[2 * i]));
      // A read only where the presumption did not hold (the common path's counts: next test)
      const common = cases.filter(
        (c, i) => c.description === UD && c.state === c.presume && c.expectPilot === pid && read[i]?.ok,
      ).length;
      expect(common).toBeGreaterThan(0);
      expect(requests.BatchGetItem).toBeUndefined();
      expect(requests.GetItem).toBeLessThanOrEqual(cases.length - common);
    });

    it('refuses a stale update and carries the current record', async () => {
      const { store, sid, umgr } = await setup();
      const [u] = await store.createUnits(sid, umgr, [{ description: UD }]);
      const uid = u?.uid ?? '';
      const [first, stale, missing] = await store.transitionUnits(sid, [
        { uid, target: 'Executing' },
        { uid, target: 'Scheduling' },
        { uid: 'unit.424242', target: 'Done' },
      ]);
      expect(first?.ok).toBe(true);
      expect(stale?.ok).toBe(false);
      if (stale && !stale.ok) {
        expect(stale.error).toBeInstanceOf(IncorrectState);
        expect(stale.error.message).toMatch(/Executing.*Scheduling/);
        expect(stale.current?.state).toBe('Executing');
      }
      expect(missing?.ok === false && missing.error).toBeInstanceOf(DoesNotExist);
    });

    it('ends a shuffled, concurrent replay of 1,000 updates in the same states and histories as the ordered one', async () => {
      // Prepare: 50 units, 20 updates each along the happy path (some stop short of Done), with duplicates.
      const random = rng(20301);
      const perUnit = Array.from({ length: 50 }, () => {
        const stop = random() < 0.2 ? 1 + Math.floor(random() * (PATH.length - 1)) : PATH.length;
        const path = PATH.slice(0, stop).filter((_s, i) => i === stop - 1 || random() < 0.6);
        const picks = Array.from(
          { length: 20 - path.length },
          () => path[Math.floor(random() * path.length)],
        );
        return [...path, ...picks].sort(
          (a, b) => unitModel.order[a as UnitState] - unitModel.order[b as UnitState],
        );
      });
      const ordered = perUnit.flatMap((states, unit) =>
        states.map((target, k) => ({
          uid: `unit.${String(unit).padStart(6, '0')}`,
          target: target as UnitState,
          k,
        })),
      );
      ordered.sort((a, b) => a.k - b.k); // interleave units, each in its own order
      const shuffled = [...ordered];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [shuffled[i], shuffled[j]] = [
          shuffled[j] as (typeof shuffled)[0],
          shuffled[i] as (typeof shuffled)[0],
        ];
      }
      const a = await setup();
      const b = await setup();
      await a.store.createUnits(
        a.sid,
        a.umgr,
        perUnit.map(() => ({ description: UD })),
      );
      await b.store.createUnits(
        b.sid,
        b.umgr,
        perUnit.map(() => ({ description: UD })),
      );
      // Act: ordered in sequence; shuffled as 10 concurrent bulk calls of 100 (real races between them).
      for (let i = 0; i < ordered.length; i += 100) {
        await a.store.transitionUnits(a.sid, ordered.slice(i, i + 100));
      }
      const chunks = Array.from({ length: 10 }, (_, i) => shuffled.slice(i * 100, i * 100 + 100));
      await Promise.all(chunks.map((c) => b.store.transitionUnits(b.sid, c)));
      // Assess
      const uids = perUnit.map((_, i) => `unit.${String(i).padStart(6, '0')}`);
      const [ua, ub] = await Promise.all([a.store.getUnits(a.sid, uids), b.store.getUnits(b.sid, uids)]);
      const summary = (us: UnitRecord[]) =>
        us.map((u) => ({ uid: u.uid, state: u.state, history: historyOf(u) }));
      expect(summary(ub)).toEqual(summary(ua));
      for (const [i, u] of ua.entries()) {
        const last = perUnit[i]?.at(-1) as UnitState;
        expect(u.state).toBe(last);
        expect(historyOf(u)).toEqual(['New', ...PATH.slice(0, PATH.indexOf(last) + 1)]);
      }
      expect(b.store.requests.UpdateItem).toBeGreaterThanOrEqual(
        ua.reduce((n, u) => n + u.stateHistory.length - 1, 0),
      );
    });

    it('keeps every fact of 1,000 shuffled, duplicated agent reports: records equal the in-order run', async () => {
      // Prepare: 250 claimed units; an agent's reports for each (as the executor sends them): DONE, FAILED
      // and CANCELED after EXECUTING, and FAILED without EXECUTING (could not spawn). 450 reports, each
      // sent twice plus 100 more duplicates; the in-order run sends each once, in the agent's order.
      const random = rng(4242);
      const pilot = 'pilot.0000';
      const at = (s: number) => new Date(Date.parse('2029-06-01T00:00:00.000Z') + s).toISOString();
      const reportsOf = (uid: string, i: number): Report[] => {
        const executing: Report = {
          uid,
          state: 'Executing',
          time: at(i * 1000),
          sandbox: `/sb/${uid}`,
          execLocations: [`node${i % 3}`],
        };
        const end = { uid, time: at(i * 1000 + 500), stdout: `out ${i}`, stderr: '' };
        switch (i % 5) {
          case 2:
            return [executing, { ...end, state: 'Failed', exitCode: 3 }];
          case 3:
            return [executing, { ...end, state: 'Canceled', exitCode: 143, reason: 'cancelled' }];
          case 4:
            return [{ ...end, state: 'Failed', exitCode: 127, reason: 'cannot execute /bin/nope: ENOENT' }];
          default:
            return [executing, { ...end, state: 'Done', exitCode: 0 }];
        }
      };
      const a = await setup();
      const b = await setup();
      const create = (x: typeof a) =>
        x.store.createUnits(
          x.sid,
          x.umgr,
          Array.from({ length: 250 }, () => ({ description: UD, state: 'Scheduling' as const, pilot })),
        );
      const uids = (await create(a)).map((u) => u.uid);
      expect((await create(b)).map((u) => u.uid)).toEqual(uids);
      const perUnit = uids.map((uid, i) => reportsOf(uid, i));
      // The agent's order: each unit's reports in order, units interleaved.
      const ordered = [0, 1].flatMap((k) => perUnit.flatMap((rs) => (rs[k] ? [rs[k]] : [])));
      const sent = [...ordered, ...ordered];
      for (let i = 0; i < 100; i++) sent.push(ordered[Math.floor(random() * ordered.length)] as Report);
      for (let i = sent.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [sent[i], sent[j]] = [sent[j] as Report, sent[i] as Report];
      }
      expect(sent).toHaveLength(1000);
      const apply = async (x: typeof a, batch: Report[]) => {
        for (const round of planRounds(batch, pilot)) await x.store.transitionUnits(x.sid, round);
      };
      // Act: in order, 50 per call one after another; shuffled, 20 concurrent calls of 50.
      for (let i = 0; i < ordered.length; i += 50) await apply(a, ordered.slice(i, i + 50));
      await Promise.all(Array.from({ length: 20 }, (_, i) => apply(b, sent.slice(i * 50, i * 50 + 50))));
      // Assess: field for field (times of the history are write times, so the states are compared).
      const facts = (u: UnitRecord) => ({
        uid: u.uid,
        state: u.state,
        history: historyOf(u),
        started: u.started,
        finished: u.finished,
        sandbox: u.sandbox,
        execLocations: u.execLocations,
        exitCode: u.exitCode,
        stdout: u.stdout,
        stderr: u.stderr,
        log: u.log,
        pilot: u.pilot,
      });
      const [ua, ub] = await Promise.all([a.store.getUnits(a.sid, uids), b.store.getUnits(b.sid, uids)]);
      expect(ub.map(facts)).toEqual(ua.map(facts));
      for (const [i, u] of ua.entries()) {
        const ran = i % 5 !== 4;
        expect(historyOf(u).includes('Executing')).toBe(ran);
        expect(u.sandbox).toBe(ran ? `/sb/${u.uid}` : undefined);
        expect(u.started).toBe(ran ? at(i * 1000) : undefined);
        expect(u.finished).toBe(at(i * 1000 + 500));
        expect(u.stdout).toBe(`out ${i}`);
      }
      // The shuffle did deliver reports late: some EXECUTING reports came after their unit's end.
      const late = sent.filter(
        (r, k) =>
          r.state === 'Executing' && sent.slice(0, k).some((e) => e.uid === r.uid && e.state !== 'Executing'),
      );
      expect(late.length).toBeGreaterThan(20);
    });

    it('refuses a unit bound to another pilot, lists by pilot, and sweeps', async () => {
      // Prepare
      const { store, sid, umgr } = await setup();
      const [running, waiting, other] = await store.createUnits(sid, umgr, [
        { description: UD, state: 'Executing', pilot: 'pilot.0000' },
        { description: { ...UD, restartable: true }, state: 'PendingExecution', pilot: 'pilot.0000' },
        { description: UD, state: 'PendingExecution', pilot: 'pilot.0001' },
      ]);
      // Act
      const [wrong] = await store.transitionUnits(sid, [
        { uid: other?.uid ?? '', target: 'Scheduling', expect: { pilot: 'pilot.0000' } },
      ]);
      const bound = await store.listPilotUnits(sid, 'pilot.0000');
      // The sweep after pilot.0000 ended, as core/states.ts sweepTarget decides.
      const plan = bound.items.map((u) => ({
        uid: u.uid,
        to: sweepTarget(u.state, u.description.restartable ?? false),
      }));
      const failed = await store.transitionUnits(
        sid,
        plan
          .filter((p) => p.to === 'Failed')
          .map((p) => ({ uid: p.uid, target: 'Failed' as const, expect: { pilot: 'pilot.0000' } })),
      );
      const back = await store.rescheduleUnits(
        sid,
        plan
          .filter((p) => p.to === 'Unscheduled')
          .map((p) => ({ uid: p.uid, expect: { pilot: 'pilot.0000' } })),
      );
      const again = await store.rescheduleUnits(sid, [
        { uid: other?.uid ?? '', expect: { pilot: 'pilot.0000' } },
      ]);
      // Assess
      expect(wrong?.ok).toBe(false);
      expect(wrong?.ok === false && wrong.error.message).toContain('pilot.0001');
      expect(wrong?.ok === false && wrong.current?.state).toBe('PendingExecution');
      expect(bound.items.map((u) => u.uid)).toEqual([running?.uid, waiting?.uid]);
      expect(failed.map((r) => r.ok && r.record.uid)).toEqual([running?.uid]);
      expect(back.map((r) => r.ok && r.record)).toEqual([
        expect.objectContaining({ uid: waiting?.uid, state: 'Unscheduled' }),
      ]);
      expect(back[0]?.ok && back[0].record.pilot).toBeUndefined();
      expect(again[0]?.ok).toBe(false);
      expect((await store.listPilotUnits(sid, 'pilot.0000')).items.map((u) => u.state)).toEqual(['Failed']);
      expect((await store.listPilotUnits(sid, 'pilot.0001')).items.map((u) => u.uid)).toEqual([other?.uid]);
    });

    it('guards field updates by state and pilot', async () => {
      const { store, sid, umgr } = await setup();
      const [u] = await store.createUnits(sid, umgr, [
        { description: UD, state: 'Executing', pilot: 'pilot.0000' },
      ]);
      const uid = u?.uid ?? '';
      const ok = await store.patchUnit(
        sid,
        uid,
        { appendLog: ['started'], execLocations: ['n1'] },
        { pilot: 'pilot.0000', states: ['Executing'] },
      );
      const wrongPilot = await store.patchUnit(sid, uid, { stdout: 'x' }, { pilot: 'pilot.0009' });
      const wrongState = await store.patchUnit(sid, uid, { stdout: 'x' }, { states: ['Done'] });
      expect(ok.ok && ok.record).toMatchObject({ log: ['started'], execLocations: ['n1'] });
      expect(wrongPilot.ok).toBe(false);
      expect(wrongState.ok === false && wrongState.error.message).toContain('Executing');
      expect((await store.patchUnit(sid, 'unit.777777', { stdout: 'x' })).ok).toBe(false);
    });
  });

  describe('purge', () => {
    const endless = { items: Number.MAX_SAFE_INTEGER, deadlineMs: Number.POSITIVE_INFINITY };

    /** A session with a record of every kind the purge knows, closed with cleanup. */
    async function fullSession(store: Store) {
      const { sessionId: sid } = await store.createSession({ tokenHash: 'h' });
      const pmgr = (await store.createPilotManager(sid)).uid;
      const umgrs = [(await store.createUnitManager(sid, 'round_robin')).uid];
      umgrs.push((await store.createUnitManager(sid, 'backfilling')).uid);
      const [pilot] = await store.createPilots(sid, pmgr, [{ description: PD }]);
      const pid = (pilot as { uid: string }).uid;
      await store.createUnits(
        sid,
        umgrs[0] as string,
        Array.from({ length: 30 }, () => ({ description: UD, pilot: pid })),
      );
      await store.createUnits(
        sid,
        umgrs[1] as string,
        Array.from({ length: 7 }, () => ({ description: UD, queued: true as const })),
      );
      await store.putContext(sid, '*', 'sealed', { type: 'ssh', credential: 'none' });
      await store.putContext(sid, 'local.localhost', 'sealed-generated');
      await store.putResourceConfigs(sid, [['my.site', { a: 1 }]]);
      await store.putEndpoint({ sessionId: sid, uid: 'endpoint.00ff', resource: 'my.site', secretHash: 'x' });
      await store.askEndpoint({ sessionId: sid, pilotId: pid, op: 'launch', resource: 'my.site' });
      await store.takeQuota(sid, 'pilots', 1, 10);
      return { sid, pmgr, umgrs, pid };
    }

    it('marks at close, keeps the first purge time, and lists the session as one to purge', async () => {
      const store = newStore();
      const { sessionId: sid } = await store.createSession({ tokenHash: 'h' });
      const first = await store.closeSession(sid, { purgeAt: '2030-01-02T00:00:00.000Z' });
      const again = await store.closeSession(sid, { purgeAt: '2030-01-09T00:00:00.000Z' });
      expect(first.purgeAt).toBe('2030-01-02T00:00:00.000Z');
      expect(again.purgeAt).toBe('2030-01-02T00:00:00.000Z');
      const marked = await allItems((next) => store.listSessionsToPurge({ next }));
      expect(marked.find((s) => s.sessionId === sid)).toMatchObject({
        state: 'closed',
        purgeAt: first.purgeAt,
      });
      // A close without cleanup does not mark.
      const { sessionId: kept } = await store.createSession({ tokenHash: 'h' });
      await store.closeSession(kept);
      const after = await allItems((next) => store.listSessionsToPurge({ next }));
      expect(after.map((s) => s.sessionId)).not.toContain(kept);
    });

    it("lists contexts the user added, not a generated key's, though both are in the partition", async () => {
      const store = newStore();
      const { sid } = await fullSession(store);
      expect(await store.listContexts(sid)).toEqual([{ type: 'ssh', credential: 'none', resource: '*' }]);
      expect(await store.getContext(sid, 'local.localhost')).toBe('sealed-generated');
    });

    it('gives quota counters a TTL a couple of minutes after their minute', async () => {
      const store = newStore();
      const { sessionId: sid } = await store.createSession({ tokenHash: 'h' });
      await store.takeQuota(sid, 'pilots', 1, 10);
      const minute = store.now().slice(0, 16);
      const out = await client.send(
        new GetItemCommand({ TableName: tableName, Key: { pk: { S: `${sid}#quota#pilots#${minute}` } } }),
      );
      expect(Number(out.Item?.expires?.N)).toBe(Date.parse(`${minute}:00Z`) / 1000 + 180);
    });

    it('sees unfinished pilots, then deletes every record within a budget over several passes, the session last', async () => {
      const store = newStore();
      const other = await fullSession(store);
      const { sid, pmgr, umgrs, pid } = await fullSession(store);
      await store.closeSession(sid, { purgeAt: '2030-01-01T00:00:00.000Z' });

      const live = await store.purgeSubjects(sid);
      expect(live).toEqual({ umgrs, pmgrs: [pmgr], pilots: [{ uid: pid, final: false, live: true }] });
      await store.transitionPilot(sid, pid, 'Canceled');
      expect((await store.purgeSubjects(sid)).pilots).toEqual([{ uid: pid, final: true, live: true }]);
      await store.patchPilot(sid, pid, { retire: true });
      const subjects = await store.purgeSubjects(sid);
      expect(subjects.pilots).toEqual([{ uid: pid, final: true, live: false }]);

      const plan = purgePlan({ ...subjects, pilots: subjects.pilots.map((p) => p.uid) });
      // 37 units, 4 request keys, 1 pilot, 1 endpoint, 2 contexts, 1 config, 3 managers, the session.
      const passes: { deleted: number; done: boolean }[] = [];
      do
        passes.push(await store.purgeRecords(sid, plan, { items: 12, deadlineMs: Number.POSITIVE_INFINITY }));
      while (!passes.at(-1)?.done && passes.length < 20);
      expect(passes.at(-1)?.done).toBe(true);
      expect(passes.length).toBeGreaterThan(3);
      for (const p of passes) expect(p.deleted).toBeLessThanOrEqual(12);
      // Known keys (a pilot's four endpoint requests) are sent again by every pass that starts over.
      expect(passes.reduce((n, p) => n + p.deleted, 0)).toBeGreaterThanOrEqual(50);

      await expect(store.getSession(sid)).rejects.toBeInstanceOf(DoesNotExist);
      for (const u of umgrs) expect((await store.listUnits(sid, u)).items).toEqual([]);
      expect((await store.listPilots(sid, pmgr)).items).toEqual([]);
      expect((await store.listUnitManagers(sid)).items).toEqual([]);
      expect((await store.listPilotManagers(sid)).items).toEqual([]);
      expect(await store.listContexts(sid)).toEqual([]);
      expect(await store.getContext(sid, 'local.localhost')).toBeUndefined();
      expect(await store.listResourceConfigs(sid)).toEqual([]);
      expect(await store.listEndpoints(sid)).toEqual([]);
      expect(await store.getEndpointRequest(sid, pid, 'launch')).toBeUndefined();
      const marked = await allItems((next) => store.listSessionsToPurge({ next }));
      expect(marked.map((s) => s.sessionId)).not.toContain(sid);
      // Purging again finds nothing and is done at once.
      expect(await store.purgeRecords(sid, plan, endless)).toMatchObject({ done: true });

      // The other session is whole.
      expect((await store.getSession(other.sid)).state).toBe('open');
      expect((await store.listUnits(other.sid, other.umgrs[0] as string)).items).toHaveLength(30);
      expect(await store.listContexts(other.sid)).toHaveLength(1);
      expect(await store.getEndpointRequest(other.sid, other.pid, 'launch')).toBeDefined();
    });

    it('stops at once when the deadline has passed', async () => {
      const store = newStore();
      const { sid } = await fullSession(store);
      const plan = purgePlan({ umgrs: [], pmgrs: [], pilots: [] });
      expect(await store.purgeRecords(sid, plan, { items: 100, deadlineMs: 0 })).toEqual({
        deleted: 0,
        done: false,
      });
      expect((await store.getSession(sid)).sessionId).toBe(sid);
    });
  });

  describe('polling and request counts', () => {
    it('returns only what changed since a cursor', async () => {
      // Prepare
      const { store, sid, pmgr, umgr } = await setup();
      const units = await store.createUnits(
        sid,
        umgr,
        Array.from({ length: 10 }, () => ({ description: UD })),
      );
      await store.createPilots(sid, pmgr, [{ description: PD }, { description: PD }]);
      const first = await store.listUnits(sid, umgr);
      const pilotsFirst = await store.listPilots(sid, pmgr);
      // Act
      const changed = [units[2], units[5], units[7]].map((u) => u?.uid ?? '');
      await store.transitionUnits(
        sid,
        changed.map((uid) => ({ uid, target: 'Unscheduled' as const })),
      );
      await store.transitionPilot(sid, 'pilot.0001', 'Launching');
      const since = await store.listUnits(sid, umgr, { since: first.cursor });
      const none = await store.listUnits(sid, umgr, { since: since.cursor });
      const pilotsSince = await store.listPilots(sid, pmgr, { since: pilotsFirst.cursor });
      // Assess
      expect(first.items).toHaveLength(10);
      expect(since.items.map((u) => u.uid).sort()).toEqual(changed);
      expect(since.items.every((u) => u.state === 'Unscheduled')).toBe(true);
      expect(none.items).toEqual([]);
      expect(none.cursor).toBe(since.cursor);
      expect(pilotsSince.items.map((p) => p.uid)).toEqual(['pilot.0001']);
    });

    it('counts every request per operation', async () => {
      const { store, sid, umgr } = await setup();
      const units = await store.createUnits(
        sid,
        umgr,
        Array.from({ length: 100 }, () => ({ description: UD })),
      );
      store.resetRequests();
      await store.transitionUnits(
        sid,
        units.map((u) => ({ uid: u.uid, target: 'PendingExecution' as const })),
      );
      expect(store.requests).toEqual({ BatchGetItem: 1, UpdateItem: 100 });
      // Claim, start and end each presumed where the unit is: one write per unit and change, no read
      for (const [presume, target] of [
        ['PendingExecution', 'Scheduling'],
        ['Scheduling', 'Executing'],
        ['Executing', 'Done'],
      ] as const) {
        store.resetRequests();
        const outs = await store.transitionUnits(
          sid,
          units.map((u) => ({ uid: u.uid, target, presume })),
        );
        expect(outs.every((o) => o.ok)).toBe(true);
        expect(store.requests).toEqual({ UpdateItem: 100 });
      }
      // Presumed wrong: the write fails its condition, the unit is read, and the change decided on it
      const [other] = await store.createUnits(sid, umgr, [{ description: UD, state: 'PendingExecution' }]);
      store.resetRequests();
      const [late] = await store.transitionUnits(sid, [
        { uid: other?.uid as string, target: 'Executing', presume: 'Scheduling' },
      ]);
      expect(late?.ok).toBe(true);
      expect(store.requests).toEqual({ UpdateItem: 2, GetItem: 1 });
    });
  });
});
