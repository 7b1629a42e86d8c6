/**
 * A Launch retried after a transient SSH error submits no second job (issue 11). The fault this guards
 * against is a connection that drops after the remote submit ran and before its answer came back; what
 * that leaves on the login node is exactly what these cases set up with real sshd, SLURM and fork on the
 * test bed (scripts/testbed.sh up; skipped, saying why, when it is down):
 * - the submit ended and recorded its job (only the answer was lost): a retry answers that job;
 * - the submit was cut off before it recorded its end (its shell killed right after sbatch): a retry
 *   finds the job by name and sandbox (SLURM) or by agent.pid (fork) and keeps it.
 * In both, the batch system holds exactly one job for the pilot's sandbox afterwards.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ResourceRegistry } from '../core/resource-registry.ts';
import { launcherFor } from '../functions/pilot/launcher/index.ts';
import { slurm } from '../functions/pilot/launcher/jobmanagers/slurm.ts';
import {
  closeAllSshConnections,
  SshConnection,
  type SshConnectOptions,
} from '../functions/pilot/launcher/ssh.ts';
import { SUBMIT_FILES, submitOnceCommand } from '../functions/pilot/launcher/submit-once.ts';
import type { LaunchRequest } from '../functions/pilot/launcher/types.ts';
import { readTestbed } from './support/testbed.ts';

const tb = readTestbed();
const skip = 'skip' in tb ? tb.skip : undefined;
const env = 'env' in tb ? tb.env : {};
const key = skip ? '' : readFileSync(env.SORTIE_TESTBED_KEY ?? '', 'utf8');
const port = Number(env.SORTIE_TESTBED_PORT ?? 2222);
const base: SshConnectOptions = {
  host: env.SORTIE_TESTBED_HOST ?? '127.0.0.1',
  port,
  username: env.SORTIE_TESTBED_USER ?? 'hpcuser',
  privateKey: key,
  hostKey: env.SORTIE_TESTBED_HOST_KEY ?? '',
};

describe('submitOnceCommand', () => {
  it('answers a recorded submit, looks a cut-off one up, and only then submits', () => {
    const cmd = submitOnceCommand(slurm, '/s/b', 'sortie-pilot.0000');
    // One POSIX sh script: recorded answer first, then the lookup, then the submit with its files.
    const order = [
      `if [ -f ${SUBMIT_FILES.code} ] && [ "$(cat ${SUBMIT_FILES.code})" = 0 ]; then cat ${SUBMIT_FILES.out}`,
      `squeue -h -t all -u "$(id -un)" -n`,
      `sbatch --parsable`,
      `echo $c > ${SUBMIT_FILES.code}`,
    ].map((s) => cmd.indexOf(s.replace(/'/g, `'\\''`)));
    expect(cmd.startsWith('/bin/sh -c ')).toBe(true);
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });
});

/** A stand-in agent that runs a minute (long enough to be found running), then exits. */
function standInBundle(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'sortie-agent-'));
  const f = path.join(d, 'agent.cjs');
  writeFileSync(f, 'setTimeout(() => process.exit(0), 60000);\n');
  return f;
}

const registry = ResourceRegistry.shipped();
function testbedResource(name: string, from: string): string {
  const c = registry.get(from);
  const k = `testbed.${name}`;
  registry.add({
    [k]: { ...c, schemas: { ssh: { host: base.host, port, user: base.username, hostKey: base.hostKey } } },
  });
  return k;
}

let seq = 0;
function request(resource: string): LaunchRequest {
  const pilotId = `pilot.${process.pid}.${Date.now()}.${seq++}`;
  return {
    sessionId: 'session.submit-once',
    pilotId,
    resource,
    description: { runtime: 5, cores: 1 },
    agentBundle: standInBundle(),
    agentConfig: { pilotId, token: 'not-a-real-secret' },
    credentials: { userKey: key },
  };
}

async function remote(cmd: string): Promise<string> {
  const c = await SshConnection.open(base);
  try {
    return (await c.exec(cmd)).stdout.trim();
  } finally {
    c.close();
  }
}

afterAll(async () => {
  await closeAllSshConnections();
});

describe.skipIf(skip !== undefined)(
  `retried submits on the test bed${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    /** Job ids SLURM holds whose working directory is `sandbox`. */
    const slurmJobs = async (sandbox: string) =>
      (await remote(`squeue -h -t all -u "$(id -un)" -o '%i %Z'`))
        .split('\n')
        .filter((l) => l.endsWith(` ${sandbox}`))
        .map((l) => l.split(' ')[0]);

    it('SLURM: a retry after a lost answer, and after a submit cut off midway, keeps the one job', async () => {
      const resource = testbedResource('slurm', 'local.slurm');
      const launcher = launcherFor(registry.get(resource));
      const req = request(resource);
      const first = await launcher.launch(req);
      try {
        // The answer was lost: the retry runs the whole launch again.
        const afterLostAnswer = await launcher.launch(req);
        // The submit's shell was killed right after sbatch: no recorded end, only its output file.
        await remote(`rm -f ${first.sandbox}/${SUBMIT_FILES.code}; : > ${first.sandbox}/${SUBMIT_FILES.out}`);
        const afterCutOff = await launcher.launch(req);
        expect(afterLostAnswer).toEqual(first);
        expect(afterCutOff).toEqual(first);
        expect(await slurmJobs(first.sandbox)).toEqual([first.jobId]);
      } finally {
        await launcher.cancel(req, first);
      }
    });

    it('SLURM: a submit that never started (no files) or failed is submitted', async () => {
      const resource = testbedResource('slurm', 'local.slurm');
      const launcher = launcherFor(registry.get(resource));
      const req = request(resource);
      const first = await launcher.launch(req);
      try {
        // A recorded failure made no job: the retry submits.
        await remote(`echo 1 > ${first.sandbox}/${SUBMIT_FILES.code}`);
        const again = await launcher.launch(req);
        expect(again.jobId).not.toBe(first.jobId);
        await launcher.cancel(req, again);
      } finally {
        await launcher.cancel(req, first);
      }
    });

    it('fork over SSH: a retry after a start cut off midway keeps the running agent', async () => {
      const resource = testbedResource('fork', 'local.ssh');
      const launcher = launcherFor(registry.get(resource));
      const req = request(resource);
      const first = await launcher.launch(req);
      try {
        await remote(`rm -f ${first.sandbox}/${SUBMIT_FILES.code}; : > ${first.sandbox}/${SUBMIT_FILES.out}`);
        const again = await launcher.launch(req);
        expect(again).toEqual(first);
        // One agent for this sandbox ([/]: the pattern must not match the shell that runs pgrep).
        const agents = await remote(`pgrep -f -c '[/]bin/bash ${first.sandbox}/agent.sh' || true`);
        expect(agents).toBe('1');
      } finally {
        await launcher.cancel(req, first);
      }
    });
  },
);
