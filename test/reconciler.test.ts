/**
 * The reconciler: its pure rule, and end to end on an embedded backend whose schedules are off (the tests
 * run it themselves): a pilot whose Finalize kept failing until its execution ended is ended and swept by
 * the reconciler, and so is a pilot recorded final whose units were never swept.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PilotManager, Session, UnitManager } from '../client/index.ts';
import { reconcileAction, START_GRACE_SECONDS } from '../core/reconcile.ts';
import { PilotState, UnitState } from '../core/states.ts';
import { executionArn } from '../functions/lib/pilots.ts';
import { store } from '../functions/lib/store.ts';
import type { ReconcileReport } from '../functions/pilot/reconcile.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { injectLambdaFault, invoke } from '../local/lambdas.ts';
import { alive, killUnitProcesses, until } from './e2e.ts';

describe('reconcileAction (pure)', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  const young = now - 1000;
  const old = now - (START_GRACE_SECONDS + 1) * 1000;

  it.each([
    // final, submitted, execution → action
    [false, old, 'RUNNING', 'none'],
    [true, old, 'RUNNING', 'none'],
    [false, young, 'MISSING', 'none'],
    [false, old, 'MISSING', 'finalize'],
    [true, young, 'MISSING', 'finalize'],
    [false, young, 'FAILED', 'finalize'],
    [false, old, 'TIMED_OUT', 'finalize'],
    [false, old, 'ABORTED', 'finalize'],
    [true, old, 'SUCCEEDED', 'finalize'],
    [true, old, 'FAILED', 'finalize'],
  ] as const)('final=%s submitted=%s execution=%s → %s', (final, submittedMs, execution, kind) => {
    expect(reconcileAction({ final, submittedMs, execution }, now).kind).toBe(kind);
  });

  it('says why', () => {
    const a = reconcileAction({ final: false, submittedMs: young, execution: 'FAILED' }, now);
    expect(a).toEqual({
      kind: 'finalize',
      reason: 'pilot execution ended FAILED without finalizing the pilot',
    });
    const b = reconcileAction({ final: false, submittedMs: old, execution: 'MISSING' }, now);
    expect(b).toEqual({ kind: 'finalize', reason: 'pilot execution never started' });
  });
});

describe('reconciler (embedded backend)', () => {
  let backend: Backend;
  const sessions: Session[] = [];

  beforeAll(async () => {
    backend = await startBackend({ heartbeatSeconds: 3, scheduleSeconds: 0 });
  });
  afterAll(async () => {
    injectLambdaFault('finalize');
    for (const s of sessions) {
      await s.close({ timeout: 20 }).catch(() => {});
      killUnitProcesses(s.uid);
    }
    await backend?.close();
  });

  const reconcile = async () => (await invoke('reconcile', {})) as ReconcileReport;

  it('finalize failing until the execution ends: the reconciler ends the pilot and sweeps its units', async () => {
    const session = await Session.create({ endpoint: backend.apiUrl, name: 'reconcile-finalize' });
    sessions.push(session);
    const pmgr = await PilotManager.create(session);
    const pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const sleep = { executable: '/bin/sleep', arguments: ['60'] };
    const units = await umgr.submitUnits([sleep, sleep]);
    await umgr.waitUnits({ state: UnitState.EXECUTING, timeout: 30 });
    await pilot.wait({ state: PilotState.ACTIVE, timeout: 30 });

    // Lambda keeps failing Finalize; the agent dies, so the machine goes Active → Failed → retries → FAILED.
    injectLambdaFault('finalize', 'Lambda.ServiceException');
    const agent = Number(readFileSync(path.join(pilot.sandbox ?? '', 'agent.pid'), 'utf8'));
    expect(alive(agent)).toBe(true);
    process.kill(agent, 'SIGKILL');
    const sfn = new SFNClient({});
    const arn = executionArn(session.uid, pilot.uid);
    await until(
      'execution FAILED after Finalize kept failing',
      async () => {
        const out = await sfn.send(new DescribeExecutionCommand({ executionArn: arn }));
        return out.status === 'RUNNING' ? undefined : out.status;
      },
      60_000,
      200,
    ).then((status) => expect(status).toBe('FAILED'));
    // What the fault left: a pilot that claims to be Active and units that claim to run.
    expect((await store().getPilot(session.uid, pilot.uid)).state).toBe(PilotState.ACTIVE);
    const stuck = await store().getUnits(
      session.uid,
      units.map((u) => u.uid),
    );
    expect(stuck.map((u) => u.state)).toEqual([UnitState.EXECUTING, UnitState.EXECUTING]);

    // The reconciler runs Finalize's code in its own invocation, not through the failing one.
    injectLambdaFault('finalize');

    const report = await reconcile();
    expect(report.finalized).toContainEqual({
      sid: session.uid,
      pid: pilot.uid,
      reason: 'pilot execution ended FAILED without finalizing the pilot',
    });
    const ended = await store().getPilot(session.uid, pilot.uid);
    expect(ended.state).toBe(PilotState.FAILED);
    expect(ended.log.join('\n')).toContain('pilot execution ended FAILED without finalizing the pilot');
    const swept = await store().getUnits(
      session.uid,
      units.map((u) => u.uid),
    );
    for (const u of swept) {
      expect(u.state, u.uid).toBe(UnitState.FAILED);
      expect(u.log.join('\n'), u.uid).toContain(`pilot ${pilot.uid} ended Failed`);
    }
    // Retired: the next run does not look at it again.
    const after = await reconcile();
    expect([...after.finalized, ...after.failed].map((f) => `${f.sid}/${f.pid}`)).not.toContain(
      `${session.uid}/${pilot.uid}`,
    );
    killUnitProcesses(session.uid);
  });

  it('a pilot recorded final whose units were never swept (no execution): swept and retired', async () => {
    const s = store();
    const sid = `rp.session.reconcile-${randomUUID()}`;
    await s.createSession({ sessionId: sid, tokenHash: 'x'.repeat(64) });
    const pmgr = await s.createPilotManager(sid);
    const [pilot] = await s.createPilots(sid, pmgr.uid, [
      { description: { resource: 'local.localhost', runtime: 10, cores: 1 } as never },
    ]);
    const pid = pilot?.uid as string;
    const umgr = await s.createUnitManager(sid, 'direct_submission');
    const units = await s.createUnits(sid, umgr.uid, [
      { description: { executable: '/bin/true' } as never, state: UnitState.PENDING_EXECUTION, pilot: pid },
      { description: { executable: '/bin/true' } as never, state: UnitState.PENDING_EXECUTION, pilot: pid },
    ]);
    const out = await s.transitionPilot(sid, pid, PilotState.CANCELED);
    expect(out.ok).toBe(true);

    const report = await reconcile();
    expect(report.finalized).toContainEqual({
      sid,
      pid,
      reason: 'pilot ended but its units were not swept (no execution found)',
    });
    expect((await s.getPilot(sid, pid)).state).toBe(PilotState.CANCELED);
    const swept = await s.getUnits(
      sid,
      units.map((u) => u.uid),
    );
    expect(swept.map((u) => u.state)).toEqual([UnitState.CANCELED, UnitState.CANCELED]);
    const after = await reconcile();
    expect(after.finalized.map((f) => `${f.sid}/${f.pid}`)).not.toContain(`${sid}/${pid}`);
  });
});
