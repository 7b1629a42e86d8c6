/**
 * The Launch step run again after a transient error (a dropped SSH connection) launches the pilot: the
 * first attempt left the pilot LAUNCHING, and the retry must take that as the same step, not fail the
 * pilot with "cannot go from Launching to Launching". Real launch function, real store, real fork
 * launcher on the embedded backend; the first attempt's write is made for real, as Launch makes it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PilotState } from '../core/states.ts';
import { hashSecret, pilotSecret } from '../functions/lib/secrets.ts';
import { store } from '../functions/lib/store.ts';
import { handler as launch } from '../functions/pilot/launch.ts';
import { type Backend, startBackend } from '../local/backend.ts';

let backend: Backend;
const started: number[] = [];

beforeAll(async () => {
  backend = await startBackend();
});
afterAll(async () => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  await backend?.close();
});

describe('launch retry', () => {
  it('a Launch retried on a pilot its first attempt left LAUNCHING launches it, with the pilot’s one secret', async () => {
    // Prepare: a pilot (no state machine: the test plays the machine), and the first attempt's write.
    const s = store();
    const { sessionId: sid } = await s.createSession({ tokenHash: 'h' });
    const pmgr = await s.createPilotManager(sid);
    const [pilot] = await s.createPilots(sid, pmgr.uid, [
      { description: { resource: 'local.localhost', runtime: 5, cores: 1 } },
    ]);
    const pid = pilot?.uid as string;
    const first = await s.transitionPilot(sid, pid, PilotState.LAUNCHING, { secretHash: 'first-attempt' });
    expect(first.ok).toBe(true);
    // Act: the retry.
    const job = await launch({ sid, pid });
    started.push(Number(job.jobId));
    // Assess
    const after = await s.getPilot(sid, pid);
    expect(after.jobId).toBe(job.jobId);
    // Every attempt writes the same secret (a job the first attempt submitted must keep a valid token).
    expect(after.secretHash).toBe(hashSecret(pilotSecret(sid, pid)));
    expect(after.stateHistory.map((h) => h.state).slice(0, 3)).toEqual([
      PilotState.PENDING_LAUNCH,
      PilotState.LAUNCHING,
      PilotState.PENDING_ACTIVE,
    ]);
    expect(after.log.filter((l) => l.startsWith('launching on'))).toHaveLength(1);
  });
});
