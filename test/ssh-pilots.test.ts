/**
 * Pilots launched over SSH through the whole control plane: the embedded backend's Step Functions run the
 * launch Lambda, which logs in to the real test bed (sshd on 127.0.0.1:2222 as hpcuser), ships the agent,
 * forks it or submits it to the real SLURM; the agent calls back over HTTP and runs units.
 * Skipped, saying why, when the test bed is not up (scripts/testbed.sh up, as root).
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  type ComputePilot,
  Context,
  PilotManager,
  PilotState,
  Session,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { agentPids, unitProcesses, until } from './e2e.ts';
import { readTestbed } from './support/testbed.ts';

const tb = readTestbed();
const skip = 'skip' in tb ? tb.skip : undefined;
const env = 'env' in tb ? tb.env : {};

/** The job's state in the test bed's SLURM, as root sees it ('' once SLURM has forgotten it). */
function squeue(jobId: string): string {
  return execFileSync('squeue', ['-h', '-j', jobId, '-o', '%T'], {
    env: { ...process.env, SLURM_CONF: env.SORTIE_TESTBED_SLURM_CONF ?? '' },
    encoding: 'utf8',
  }).trim();
}

/** Waits (bounded) until a cancelled job has left the queue: SLURM shows it COMPLETING for a moment. */
async function gone(jobId: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  let state = squeue(jobId);
  while (state !== '' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    state = squeue(jobId);
  }
  return state;
}

describe.skipIf(skip !== undefined)(`pilots over SSH${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let backend: Backend;
  let session: Session;
  let pmgr: PilotManager;

  beforeAll(async () => {
    backend = await startBackend({ heartbeatSeconds: 8, jobCheckSeconds: 2, activateTimeoutSeconds: 120 });
    session = await Session.create({ endpoint: backend.apiUrl });
    await session.addContext(
      new Context('ssh', { userId: 'hpcuser', userKey: env.SORTIE_TESTBED_KEY ?? '' }),
    );
    pmgr = await PilotManager.create(session);
    // Resources that fail on purpose, each a copy of a test-bed resource with one thing broken, added to
    // this session through the API.
    const local = JSON.parse(
      readFileSync(new URL('../resources/local.json', import.meta.url), 'utf8'),
    ) as Record<string, Record<string, unknown>>;
    await session.addResourceConfig({
      'broken.nonode': {
        ...local.slurm,
        description: 'SLURM test bed whose node binary does not exist',
        node: '/nonexistent/node',
      },
      'broken.unreachable': {
        ...local.ssh,
        description: 'a login node nobody listens on',
        schemas: { ssh: { host: '127.0.0.1', port: 1, user: 'hpcuser' } },
      },
    });
  }, 60_000);

  afterAll(async () => {
    await session?.close({ timeout: 30 }).catch(() => {});
    await backend?.close();
  });

  it('runs units on local.slurm through sshd and SLURM, then ends cleanly on cancel', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'local.slurm', runtime: 10, cores: 2 });
    await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 60 });
    expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.ACTIVE);
    expect(pilot.resourceDetail?.lrms).toBe('SLURM');
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const units = await umgr.submitUnits(
      Array.from({ length: 6 }, (_, i) => ({
        executable: '/bin/sh',
        arguments: ['-c', `echo $SLURM_JOB_ID unit ${i}`],
      })),
    );
    await umgr.waitUnits({ timeout: 60 });
    for (const u of units) {
      expect(u.state, u.stderr).toBe(UnitState.DONE);
      expect(u.stdout).toContain(`${pilot.jobId} unit`);
    }
    await pilot.cancel();
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
    expect(await gone(pilot.jobId ?? '')).toBe('');
  }, 120_000);

  it('runs units on local.ssh (fork on the login node)', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'local.ssh', runtime: 10, cores: 1 });
    const umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
    const [u] = await umgr.submitUnits([{ executable: '/usr/bin/id', arguments: ['-un'] }]);
    await umgr.waitUnits({ timeout: 60 });
    expect(u?.state).toBe(UnitState.DONE);
    expect(u?.stdout?.trim()).toBe('hpcuser');
    await pilot.cancel();
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
  }, 120_000);

  it.each(['local.ssh', 'local.slurm'])(
    'an agent killed with SIGKILL on %s: the pilot FAILS and no unit process outlives it',
    async (resource) => {
      const pilot = await pmgr.submitPilots({ resource, runtime: 10, cores: 2 });
      const umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
      const units = await umgr.submitUnits([
        { executable: '/bin/sleep', arguments: ['300'] },
        { executable: '/bin/sh', arguments: ['-c', 'sleep 300 & sleep 300; wait'] },
      ]);
      // A failure before the kill must not leave this pilot holding the node's cores for the tests after it.
      onTestFailed(() => pilot.cancel().catch(() => {}));
      await umgr.waitUnits({ uids: units.map((u) => u.uid), state: UnitState.EXECUTING, timeout: 60 });
      const mine = () =>
        unitProcesses(session.uid).filter((p) =>
          units.some((u) => unitProcesses(session.uid, u.uid).includes(p)),
        );
      // EXECUTING is recorded before the spawn (write-ahead): wait for the processes themselves.
      await until('both units running', () => (mine().length >= 2 ? true : undefined), 30_000);
      const agents = await until(
        'the agent process',
        () => {
          const found = agentPids(session.uid, pilot.uid);
          return found.length ? found : undefined;
        },
        10_000,
      );
      for (const pid of agents) process.kill(pid, 'SIGKILL');

      expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.FAILED);
      // The pilot's end swept its units off the node, though the agent could not.
      await until('no unit process left', () => (mine().length === 0 ? true : undefined), 10_000);
      expect(await umgr.waitUnits({ uids: units.map((u) => u.uid), timeout: 30 })).toEqual([
        UnitState.FAILED,
        UnitState.FAILED,
      ]);
    },
    120_000,
  );

  it('cancels a pilot whose batch job is still queued, and the job is gone', async () => {
    // The node has 8 cores: whichever 8-core pilot SLURM starts first holds them, the other one waits.
    const pilots = await pmgr.submitPilots([
      { resource: 'local.slurm', runtime: 10, cores: 8 },
      { resource: 'local.slurm', runtime: 10, cores: 8 },
    ]);
    try {
      const deadline = Date.now() + 60_000;
      let running: ComputePilot | undefined;
      while (!running && Date.now() < deadline) {
        await pmgr.waitPilots({
          uids: pilots.map((p) => p.uid),
          state: [PilotState.PENDING_ACTIVE, PilotState.ACTIVE],
          timeout: 60,
        });
        running = pilots.find((p) => p.state === PilotState.ACTIVE);
        if (!running) await new Promise((r) => setTimeout(r, 250));
      }
      const waiting = pilots.find((p) => p !== running);
      expect(running?.state).toBe(PilotState.ACTIVE);
      expect(waiting?.state).toBe(PilotState.PENDING_ACTIVE);
      expect(squeue(waiting?.jobId ?? '')).toBe('PENDING');
      await waiting?.cancel();
      expect(await waiting?.wait({ timeout: 60 })).toBe(PilotState.CANCELED);
      expect(await gone(waiting?.jobId ?? '')).toBe('');
    } finally {
      // Never leave the node full for the tests after this one.
      await pmgr.cancelPilots(pilots.map((p) => p.uid));
      await pmgr.waitPilots({ uids: pilots.map((p) => p.uid), timeout: 60 });
    }
  }, 150_000);

  it('uses a key pair the backend generated, once its public half is installed, from a later session', async () => {
    const first = await Session.create({ endpoint: backend.apiUrl });
    const authorized = '/home/hpcuser/.ssh/authorized_keys';
    const before = readFileSync(authorized, 'utf8');
    try {
      const { keyId, publicKey, instructions } = await first.generateKey('local.ssh', { userId: 'hpcuser' });
      expect(publicKey).toMatch(/^ssh-ed25519 /);
      expect(instructions).toContain(publicKey);
      // Before the user installs it, the login is refused with a message that says so.
      const pm1 = await PilotManager.create(first);
      const refused = await pm1.submitPilots({ resource: 'local.ssh', runtime: 5, cores: 1 });
      expect(await refused.wait({ timeout: 60 })).toBe(PilotState.FAILED);
      expect(refused.log.join('\n')).toMatch(/authenticat/i);
      // The user installs the public key; a later session names the key by its id only.
      appendFileSync(authorized, `${publicKey}\n`);
      const later = await Session.create({ endpoint: backend.apiUrl });
      try {
        await later.addContext(new Context('ssh', { userId: 'hpcuser', keyId, resource: 'local.ssh' }));
        const pm2 = await PilotManager.create(later);
        const pilot = await pm2.submitPilots({ resource: 'local.ssh', runtime: 5, cores: 1 });
        await pilot.wait({ state: PilotState.ACTIVE, timeout: 60 });
        expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.ACTIVE);
        // A wrong secret is refused without saying whether the key exists.
        const forged = `${keyId.split('~')[0]}~not-the-secret`;
        await expect(
          later.addContext(new Context('ssh', { userId: 'hpcuser', keyId: forged })),
        ).rejects.toThrow(/invalid key id/);
      } finally {
        await later.close({ timeout: 30 });
      }
    } finally {
      writeFileSync(authorized, before);
      await first.close({ timeout: 30 });
    }
  }, 120_000);

  it('fails with an authentication message when the key is wrong', async () => {
    const other = await Session.create({ endpoint: backend.apiUrl });
    try {
      await other.addContext(
        new Context('ssh', { userId: 'hpcuser', userKey: env.SORTIE_TESTBED_WRONG_KEY ?? '' }),
      );
      const pm = await PilotManager.create(other);
      const pilot = await pm.submitPilots({ resource: 'local.slurm', runtime: 5, cores: 1 });
      expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.FAILED);
      expect(pilot.log.join('\n')).toMatch(/authenticat/i);
    } finally {
      await other.close({ timeout: 30 });
    }
  }, 90_000);

  it('fails fast when the login node is unreachable', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'broken.unreachable', runtime: 5, cores: 1 });
    expect(await pilot.wait({ timeout: 30 })).toBe(PilotState.FAILED);
    expect(pilot.log.join('\n')).toMatch(/127\.0\.0\.1:1/);
    // "Fast" as the record shows it, not by a clock: one launch attempt (a refused port is permanent, so
    // the state machine does not retry it), and the pilot failed from Launching, never queued.
    expect(pilot.log.filter((l) => l.startsWith('launch failed:'))).toHaveLength(1);
    expect(pilot.stateHistory.map((e) => e.state)).not.toContain(PilotState.PENDING_ACTIVE);
    expect(pilot.stateHistory.map((e) => e.state).slice(-2)).toEqual([
      PilotState.LAUNCHING,
      PilotState.FAILED,
    ]);
  }, 60_000);

  it('fails with the log tail when the agent cannot bootstrap', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'broken.nonode', runtime: 5, cores: 1 });
    expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.FAILED);
    const log = pilot.log.join('\n');
    expect(log).toMatch(/ended before its agent became active/);
    expect(log).toMatch(/nonexistent\/node/);
  }, 90_000);

  it('ends DONE at its walltime: the agent stops itself before the batch system would kill it', async () => {
    const pilot = await pmgr.submitPilots({ resource: 'local.slurm', runtime: 1, cores: 1 });
    expect(await pilot.wait({ timeout: 100 })).toBe(PilotState.DONE);
    expect(pilot.log.join('\n')).toMatch(/runtime reached/);
    expect(squeue(pilot.jobId ?? '')).not.toBe('RUNNING');
  }, 120_000);

  it('refuses a pilot on an SSH resource without credentials, saying what to add', async () => {
    const bare = await Session.create({ endpoint: backend.apiUrl });
    try {
      const pm = await PilotManager.create(bare);
      const pilot = await pm.submitPilots({ resource: 'local.slurm', runtime: 5, cores: 1 });
      // local.slurm names its user, so the launch tries and fails to authenticate (no key offered).
      expect(await pilot.wait({ timeout: 60 })).toBe(PilotState.FAILED);
      expect(pilot.log.join('\n')).toMatch(/authenticat|credential|key/i);
    } finally {
      await bare.close({ timeout: 30 });
    }
  }, 90_000);
});
