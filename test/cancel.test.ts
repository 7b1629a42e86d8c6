/**
 * A unit cancel takes effect at once, end to end on an embedded backend whose heartbeat is far away
 * (every 15 minutes): every cancel here can only reach the agent on the pull/report channel — a pull
 * the cancel wakes, or, while the agent's buffer of claimed units is full enough that it does not pull, its
 * `/agent/commands` poll. A unit the agent claimed but has not started is never started after its cancel,
 * and a running one ends CANCELED with its process gone.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CommandInbox } from '../agent/commands.ts';
import { logEntries } from '../client/history.ts';
import {
  BadParameter,
  type ComputePilot,
  type ComputeUnit,
  DoesNotExist,
  PilotManager,
  PilotState,
  Session,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { commandsFor, commandsSeen, trimmable } from '../functions/callbacks/commands.ts';
import { store } from '../functions/lib/store.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { alive, killUnitProcesses, unitProcesses, until } from './e2e.ts';

/** The Active state's heartbeat budget: the agent heartbeats every quarter of it, i.e. every 900 s. */
const HEARTBEAT_SECONDS = 3600;
/** Every wait here ends long before the agent's first heartbeat could carry a command. */
const WAIT = { timeout: 30, throwOnTimeout: true } as const;

let backend: Backend;
const sessions: Session[] = [];

beforeAll(async () => {
  backend = await startBackend({ heartbeatSeconds: HEARTBEAT_SECONDS });
});
afterEach(async () => {
  for (const s of sessions.splice(0)) {
    await s.close({ timeout: 20 }).catch(() => {});
    killUnitProcesses(s.uid);
  }
});
afterAll(async () => {
  await backend?.close();
});

async function pilotWith(name: string, cores: number) {
  const session = await Session.create({ endpoint: backend.apiUrl, name });
  sessions.push(session);
  const pmgr = await PilotManager.create(session);
  const pilot: ComputePilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores });
  const umgr = await UnitManager.create(session, 'direct_submission');
  await umgr.addPilots(pilot);
  await pilot.wait({ state: PilotState.ACTIVE, ...WAIT });
  return { session, umgr, pilot };
}

const sleep600 = { executable: '/bin/sleep', arguments: ['600'] };
const states = (u: ComputeUnit) => u.stateHistory.map((e) => e.state);

/** Waits until the unit's process runs on this host; returns its pid. */
const processOf = (session: Session, u: ComputeUnit) =>
  until(`process of ${u.uid}`, () => unitProcesses(session.uid, u.uid)[0], 30_000);

describe('unit cancel reaches the agent on the pull/report channel', () => {
  it('a running `sleep 600` is cancelled: CANCELED, and its process is gone', async () => {
    const { session, umgr } = await pilotWith('cancel-running', 1);
    const unit = await umgr.submitUnits(sleep600);
    await unit.wait({ state: UnitState.EXECUTING, ...WAIT });
    const pid = await processOf(session, unit);

    await unit.cancel();
    expect(await unit.wait(WAIT)).toBe(UnitState.CANCELED);
    expect(alive(pid)).toBe(false);
    expect(states(unit).slice(-2)).toEqual([UnitState.EXECUTING, UnitState.CANCELED]);
    // The agent killed it and said so (a cancel in the table alone would not carry the agent's reason),
    // and the log line carries when it was written, as RP's log entries do (with `timestamp`).
    expect(unit.log).toContain('cancelled');
    const entry = unit.logEntries.find((e) => e.message === 'cancelled');
    expect(entry?.time).toBe(unit.stateHistory.at(-1)?.time);
    expect(entry?.timestamp).toEqual(new Date(entry?.time ?? ''));
    expect(unit.logEntries.join('\n')).toBe(unit.log.join('\n'));
  });

  it('units claimed but not started are never started after their cancel (restartable or not)', async () => {
    const { session, umgr } = await pilotWith('cancel-claimed', 1);
    const [running, plain, restartable] = await umgr.submitUnits([
      sleep600,
      sleep600,
      { ...sleep600, restartable: true },
    ]);
    if (!running || !plain || !restartable) throw new Error('submitUnits returned fewer units');
    await running.wait({ state: UnitState.EXECUTING, ...WAIT });
    const pid = await processOf(session, running);
    // Both wait in the agent's own queue behind the running unit: claimed (SCHEDULING), not started.
    await umgr.waitUnits({ uids: [plain.uid, restartable.uid], state: UnitState.SCHEDULING, ...WAIT });
    expect([plain.state, restartable.state]).toEqual([UnitState.SCHEDULING, UnitState.SCHEDULING]);

    await umgr.cancelUnits([plain.uid, restartable.uid]);
    expect(await umgr.waitUnits({ uids: [plain.uid, restartable.uid], ...WAIT })).toEqual([
      UnitState.CANCELED,
      UnitState.CANCELED,
    ]);
    // Free the core, then run one more unit: the agent's queue is in order, so once it is DONE the agent
    // has passed the cancelled ones — dropped, not started.
    await running.cancel();
    expect(await running.wait(WAIT)).toBe(UnitState.CANCELED);
    expect(alive(pid)).toBe(false);
    const after = await umgr.submitUnits({ executable: '/bin/true' });
    expect(await after.wait(WAIT)).toBe(UnitState.DONE);
    for (const u of [plain, restartable]) {
      expect(states(u), u.uid).not.toContain(UnitState.EXECUTING);
      expect(u.state, u.uid).toBe(UnitState.CANCELED);
      expect(u.startTime, u.uid).toBeUndefined();
    }
    expect(unitProcesses(session.uid)).toEqual([]);
  });

  it('an agent whose buffer of claimed units is full (not pulling) still gets the cancel', async () => {
    const { session, umgr, pilot } = await pilotWith('cancel-full', 1);
    // One core and 300 units: the agent claims into its buffer (256 beyond its cores) and, holding more
    // than half of it, stops pulling.
    const [first, ...rest] = await umgr.submitUnits(Array.from({ length: 300 }, () => sleep600));
    if (!first) throw new Error('submitUnits returned no unit');
    await first.wait({ state: UnitState.EXECUTING, ...WAIT });
    const pid = await processOf(session, first);
    await until(
      'the agent holds more than half its buffer',
      async () => {
        await umgr.refresh();
        return rest.filter((u) => u.state === UnitState.SCHEDULING).length > 128 ? true : undefined;
      },
      30_000,
    );

    // The units beyond the buffer wait unclaimed: cancelled in the table alone, never sent to the agent
    // (the pilot record, rewritten by every pilot write, does not grow by a cancel of queued work).
    await umgr.refresh();
    const unclaimed = rest.filter((u) => u.state === UnitState.PENDING_EXECUTION).map((u) => u.uid);
    expect(unclaimed.length).toBeGreaterThan(0);
    await umgr.cancelUnits(unclaimed);
    const commands = (await store().getPilot(session.uid, pilot.uid)).commands;
    expect(commands.flatMap((c) => c.uids ?? []).filter((u) => unclaimed.includes(u))).toEqual([]);

    await first.cancel();
    expect(await first.wait(WAIT)).toBe(UnitState.CANCELED);
    expect(alive(pid)).toBe(false);
    expect(states(first).slice(-2)).toEqual([UnitState.EXECUTING, UnitState.CANCELED]);

    // The rest: the one started meanwhile is killed by the agent, the others end CANCELED in the table.
    await umgr.cancelUnits();
    const ends = await umgr.waitUnits(WAIT);
    expect(new Set(ends)).toEqual(new Set([UnitState.CANCELED]));
    await until('no unit process left', () => (unitProcesses(session.uid).length ? undefined : true), 30_000);
  }, 120_000);
});

describe("umgr.removePilots (RP's remove_pilots)", () => {
  it('the pilot takes no new units; with drain its units run on, without they are cancelled', async () => {
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'remove-pilots' });
    sessions.push(session);
    const pmgr = await PilotManager.create(session);
    const [kept, dropped] = await pmgr.submitPilots([
      { resource: 'local.localhost', runtime: 10, cores: 1 },
      { resource: 'local.localhost', runtime: 10, cores: 1 },
    ]);
    if (!kept || !dropped) throw new Error('submitPilots returned fewer pilots');
    const umgr = await UnitManager.create(session, 'round_robin');
    await umgr.addPilots([kept, dropped]);
    await pmgr.waitPilots({ state: PilotState.ACTIVE, ...WAIT });
    const [onKept, onDropped] = await umgr.submitUnits([sleep600, sleep600]);
    if (!onKept || !onDropped) throw new Error('submitUnits returned fewer units');
    expect([onKept.pilotId, onDropped.pilotId]).toEqual([kept.uid, dropped.uid]);
    await umgr.waitUnits({ state: UnitState.EXECUTING, ...WAIT });

    // Drained: the unit it runs goes on; the next units all go to the other pilot.
    await umgr.removePilots(kept);
    expect(await umgr.listPilots()).toEqual([dropped.uid]);
    const later = await umgr.submitUnits([sleep600, sleep600]);
    expect(later.map((u) => u.pilotId)).toEqual([dropped.uid, dropped.uid]);
    await umgr.refresh();
    expect(onKept.state).toBe(UnitState.EXECUTING);
    await expect(umgr.removePilots(kept)).rejects.toThrow(BadParameter);
    await expect(umgr.removePilots(kept)).rejects.toThrow(new RegExp(`${kept.uid} not added to ${umgr.uid}`));
    await expect(umgr.removePilots('pilot.9999')).rejects.toThrow(DoesNotExist);

    // Not drained: every unit of this manager on that pilot is cancelled, the running one killed.
    const pid = await processOf(session, onDropped);
    await umgr.removePilots(dropped, { drain: false });
    expect(await umgr.listPilots()).toEqual([]);
    expect(await umgr.waitUnits({ uids: [onDropped.uid, ...later.map((u) => u.uid)], ...WAIT })).toEqual([
      UnitState.CANCELED,
      UnitState.CANCELED,
      UnitState.CANCELED,
    ]);
    expect(alive(pid)).toBe(false);
    for (const u of later) expect(states(u), u.uid).not.toContain(UnitState.EXECUTING);
    // The pilots themselves run on (RP: removing does not stop a pilot), and so does the drained unit.
    await pmgr.refresh();
    expect([kept.state, dropped.state]).toEqual([PilotState.ACTIVE, PilotState.ACTIVE]);
    // Every pilot log line (launch, activation) carries its time, as RP's log entries do.
    expect(kept.logEntries.length).toBeGreaterThan(0);
    for (const e of kept.logEntries) expect(e.timestamp, e.message).toBeInstanceOf(Date);
    await umgr.refresh();
    expect(onKept.state).toBe(UnitState.EXECUTING);
  });
});

describe('log entries carry their time (RP: Logentry(message, timestamp))', () => {
  it('times belong to the last lines; older lines without one still print', () => {
    const entries = logEntries(['old', 'a', 'b'], ['2030-01-01T00:00:00.000Z', '2030-01-01T00:00:01.000Z']);
    expect(entries.map((e) => [e.message, e.time])).toEqual([
      ['old', undefined],
      ['a', '2030-01-01T00:00:00.000Z'],
      ['b', '2030-01-01T00:00:01.000Z'],
    ]);
    expect(entries[2]?.timestamp?.getTime()).toBe(Date.parse('2030-01-01T00:00:01.000Z'));
    expect(entries.join(',')).toBe('old,a,b');
    expect(logEntries(['x'])).toEqual([expect.objectContaining({ message: 'x' })]);
  });
});

describe('commands on every agent answer, each taken once', () => {
  const cmd = (uids: string[]) => ({ type: 'cancel_units' as const, uids, time: 't' });
  const pilot = { commands: [cmd(['u1']), { type: 'cancel_pilot' as const, time: 't' }, cmd(['u2', 'u3'])] };

  it('an answer carries the commands after the count the agent sent, and the new count', () => {
    expect(commandsFor(pilot, 0)).toEqual({ cancelUnits: ['u1', 'u2', 'u3'], cancelPilot: true, seen: 3 });
    expect(commandsFor(pilot, 2)).toEqual({ cancelUnits: ['u2', 'u3'], cancelPilot: false, seen: 3 });
    expect(commandsFor(pilot, 3)).toEqual({ cancelUnits: [], cancelPilot: false, seen: 3 });
    // A count beyond the list (never in practice) gives all; the agent dedupes.
    expect(commandsFor(pilot, 9).cancelUnits).toEqual(['u1', 'u2', 'u3']);
    expect([commandsSeen({ commandsSeen: 2 }), commandsSeen({}), commandsSeen({ commandsSeen: -1 })]).toEqual(
      [2, 0, 0],
    );
    expect(commandsSeen({ commandsSeen: '2' })).toBe(0);
  });

  it('counts stay the same once taken commands are trimmed off the record; a pilot cancel is never trimmed', () => {
    // The record after the first command was trimmed: the agent's counts still start from the very first.
    const trimmed = { commands: pilot.commands.slice(1), commandsBase: 1 };
    expect(commandsFor(trimmed, 1)).toEqual(commandsFor(pilot, 1));
    expect(commandsFor(trimmed, 3)).toEqual(commandsFor(pilot, 3));
    // A count from before the trim (a slow answer) gets all that is left; the agent ignores repeats.
    expect(commandsFor(trimmed, 0)).toEqual({ cancelUnits: ['u2', 'u3'], cancelPilot: true, seen: 3 });
    // Taken commands go up to the pilot cancel, which stays (the backend checks for it).
    expect([trimmable(pilot, 0), trimmable(pilot, 1), trimmable(pilot, 3)]).toEqual([0, 1, 1]);
    const noPilotCancel = { commands: [cmd(['u1']), cmd(['u2'])], commandsBase: 4 };
    expect([trimmable(noPilotCancel, 5), trimmable(noPilotCancel, 6), trimmable(noPilotCancel, 9)]).toEqual([
      1, 2, 2,
    ]);
    expect(trimmable(noPilotCancel, 2)).toBe(0);
  });

  it('the inbox takes each cancel once, keeps the highest count, and holds cancels of units not here yet', () => {
    const held = new Set(['u1']);
    const cancelled: string[] = [];
    let pilotCancels = 0;
    const inbox = new CommandInbox();
    inbox.bind({
      cancelUnit: (uid) => {
        cancelled.push(uid);
        return held.delete(uid);
      },
      cancelPilot: () => pilotCancels++,
    });
    inbox.take({ cancelUnits: ['u1', 'u2'], cancelPilot: false, seen: 2 });
    // A slower answer read before the first one repeats u1 with a lower count: nothing twice, count kept.
    inbox.take({ cancelUnits: ['u1'], cancelPilot: false, seen: 1 });
    inbox.take(undefined);
    inbox.take({ cancelUnits: [], cancelPilot: true, seen: 3 });
    expect(cancelled).toEqual(['u1', 'u2']);
    expect(inbox.seen).toBe(3);
    expect(pilotCancels).toBe(1);
    // u2 was not held when its cancel came: it must not start when a pull brings it, and only once.
    expect(inbox.cancelledEarly('u2')).toBe(true);
    expect(inbox.cancelledEarly('u2')).toBe(false);
    expect(inbox.cancelledEarly('u1')).toBe(false);
  });
});
