/**
 * The job check of an Active pilot (functions/pilot/check-job.ts) against a cancel that lands while it asks
 * the batch system: the job ended because of the cancel, so the pilot ends CANCELED, not FAILED "batch job
 * ended while the pilot was active" (seen in CI on the multi-node cluster). The pilot is a record on
 * local.localhost whose job (a pid) is not running; the cancel is a real write into the embedded backend's
 * table, made right after the check's first read of the pilot (a spy only orders the two).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Session } from '../client/index.ts';
import { JOB_ENDED_ERROR } from '../core/job-checks.ts';
import { PilotState } from '../core/states.ts';
import { CANCELED_ERROR } from '../functions/lib/pilots.ts';
import { store } from '../functions/lib/store.ts';
import { handler as checkJob } from '../functions/pilot/check-job.ts';
import { type Backend, startBackend } from '../local/backend.ts';

let backend: Backend;
let session: Session;
let scratch: string;

beforeAll(async () => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'sortie-check-job-'));
  backend = await startBackend();
  session = await Session.create({ endpoint: backend.apiUrl, name: 'check-job' });
});
// The session is not closed: its pilots are records without executions, which a close would wait for.
afterAll(async () => {
  await backend?.close();
  rmSync(scratch, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** An Active pilot record whose job (a pid that is not running) has ended. */
async function activePilotWithEndedJob(): Promise<string> {
  const sid = session.uid;
  const pmgr = (await store().createPilotManager(sid)).uid;
  const [p] = await store().createPilots(sid, pmgr, [
    { description: { resource: 'local.localhost', runtime: 10, cores: 1 }, sandbox: scratch },
  ]);
  const pid = p?.uid as string;
  await store().transitionPilot(sid, pid, PilotState.ACTIVE, { jobId: '2147483646', sandbox: scratch });
  return pid;
}

const event = (pid: string) => ({
  sid: session.uid,
  pid,
  phase: 'active' as const,
  activateTimeoutSeconds: 600,
  heartbeatSeconds: 300,
});

describe('job check of an Active pilot', () => {
  it('a cancel recorded while the batch system was asked ends the pilot CANCELED, not FAILED', async () => {
    const pid = await activePilotWithEndedJob();
    const read = store().getPilot.bind(store());
    let first = true;
    vi.spyOn(store(), 'getPilot').mockImplementation(async (...args) => {
      const pilot = await read(...args);
      if (first) {
        first = false;
        await store().patchPilot(session.uid, pid, {
          appendCommands: [{ type: 'cancel_pilot', time: new Date().toISOString() }],
        });
      }
      return pilot;
    });
    await expect(checkJob(event(pid))).rejects.toMatchObject({ name: CANCELED_ERROR });
  });

  it('without a cancel, an ended job still fails the pilot saying so', async () => {
    const pid = await activePilotWithEndedJob();
    await expect(checkJob(event(pid))).rejects.toMatchObject({
      name: JOB_ENDED_ERROR,
      message: expect.stringContaining('ended while the pilot was active'),
    });
  });
});
