/**
 * Against the real test bed (scripts/testbed.sh up): sshd on 127.0.0.1:2222 and single-node SLURM.
 * Skipped, saying why, when `$SORTIE_TESTBED_DIR/env` is absent or its key is unreadable.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ResourceRegistry } from '../core/resource-registry.ts';
import { launcherFor } from '../functions/pilot/launcher/index.ts';
import {
  closeAllSshConnections,
  MemoryHostKeyStore,
  SshConnection,
  type SshConnectOptions,
} from '../functions/pilot/launcher/ssh.ts';
import {
  isPermanentSshError,
  SshAuthenticationFailed,
  SshHostKeyRejected,
  SshUnreachable,
} from '../functions/pilot/launcher/ssh-errors.ts';
import type { JobStatus, LaunchRequest, LaunchResult } from '../functions/pilot/launcher/types.ts';
import { until } from './e2e.ts';
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

/** A stand-in agent: prints a line naming its pilot and config mode, then exits after `sleepMs`. */
function standInBundle(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'sortie-agent-'));
  const f = path.join(d, 'agent.cjs');
  writeFileSync(
    f,
    [
      "const fs = require('node:fs');",
      'const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));',
      'const mode = (fs.statSync(process.argv[2]).mode & 0o777).toString(8);',
      'console.log("stand-in agent " + cfg.pilotId + " in " + cfg.sandbox + " (agent.json mode " + mode + ")");',
      'console.error("stand-in stderr line");',
      'setTimeout(() => process.exit(0), cfg.sleepMs ?? 0);',
    ].join('\n'),
  );
  return f;
}

let seq = 0;
function request(resource: string, sleepMs: number): LaunchRequest {
  const pilotId = `pilot.${process.pid}.${Date.now()}.${seq++}`;
  return {
    sessionId: 'session.test',
    pilotId,
    resource,
    description: { runtime: 5, cores: 1 },
    agentBundle: standInBundle(),
    agentConfig: { pilotId, sleepMs, token: 'not-a-real-secret' },
    credentials: { userKey: key },
  };
}

async function waitFor(
  get: () => Promise<JobStatus>,
  done: (s: JobStatus) => boolean,
  timeoutMs = 30_000,
): Promise<JobStatus[]> {
  const seen: JobStatus[] = [];
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await get();
    seen.push(s);
    if (done(s) || Date.now() > end) return seen;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** This suite's resources: the shipped ones plus the test-bed copies below. */
const registry = ResourceRegistry.shipped();

/** Test-bed resources with the pinned host key (and port) from the env file. */
function testbedResource(name: string, from: string, extra: Record<string, unknown> = {}): string {
  const c = registry.get(from);
  const key = `testbed.${name}`;
  registry.add({
    [key]: {
      ...c,
      schemas: { ssh: { host: base.host, port, user: base.username, hostKey: base.hostKey } },
      ...extra,
    },
  });
  return key;
}

afterAll(async () => {
  await closeAllSshConnections();
});

describe.skipIf(skip !== undefined)(`ssh2 against the test bed${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('runs commands as hpcuser with SLURM_CONF and node on PATH', async () => {
    const c = await SshConnection.open(base);
    try {
      const r = await c.exec('id -un; echo "$SLURM_CONF"; command -v node; echo err >&2; exit 3');
      expect(r.code).toBe(3);
      const [user, conf, node] = r.stdout.trim().split('\n');
      expect(user).toBe('hpcuser');
      expect(conf).toBe(env.SORTIE_TESTBED_SLURM_CONF);
      expect(node).toMatch(/\/node$/);
      expect(r.stderr).toBe('err\n');
    } finally {
      c.close();
    }
  });

  it('writes files over SFTP with mode 0600, even over a wider existing file, and mkdir -p', async () => {
    const c = await SshConnection.open(base);
    try {
      const d = `/home/hpcuser/sftp-test-${process.pid}/a/b`;
      await c.mkdirp(d);
      await c.exec(`umask 022; echo old > ${d}/secret; chmod 644 ${d}/secret`);
      await c.writeFile(`${d}/secret`, 'the pilot secret', 0o600);
      expect(await c.statMode(`${d}/secret`)).toBe(0o600);
      expect((await c.exec(`cat ${d}/secret; stat -c %a ${d}/secret`)).stdout).toBe('the pilot secret600\n');
      expect(await c.statMode(d)).toBe(0o700);
      await c.exec(`rm -rf /home/hpcuser/sftp-test-${process.pid}`);
    } finally {
      c.close();
    }
  });

  it('a command past its deadline fails with a timeout', async () => {
    const c = await SshConnection.open(base);
    try {
      await expect(c.exec('sleep 5', { timeoutMs: 300 })).rejects.toMatchObject({
        name: 'SshTimeout',
        permanent: false,
      });
    } finally {
      c.close();
    }
  });

  it('the wrong key is a permanent authentication failure', async () => {
    const wrong = readFileSync(env.SORTIE_TESTBED_WRONG_KEY ?? '', 'utf8');
    const e = await SshConnection.open({ ...base, privateKey: wrong }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SshAuthenticationFailed);
    expect(isPermanentSshError(e)).toBe(true);
    expect(String((e as Error).message)).not.toContain('PRIVATE KEY');
  });

  it('a closed port fails fast and permanently', async () => {
    // "Fast" is the refusal itself, not a clock: the error is the kernel's ECONNREFUSED (not a connect
    // timeout) and it is permanent, so no caller retries it.
    const e = await SshConnection.open({ ...base, port: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SshUnreachable);
    expect((e as Error).message).toMatch(/ECONNREFUSED/);
    expect((e as Error).message).not.toMatch(/timed? ?out/i);
    expect(isPermanentSshError(e)).toBe(true);
  });

  it('a host key that does not match the pinned one is refused', async () => {
    const other = readFileSync(`${env.SORTIE_TESTBED_WRONG_KEY}.pub`, 'utf8');
    const e = await SshConnection.open({ ...base, hostKey: other }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SshHostKeyRejected);
    expect(e).toMatchObject({ failure: 'host-key-changed', permanent: true });
  });

  it('trust on first use records the key; strict mode refuses an unknown host', async () => {
    const store = new MemoryHostKeyStore();
    const { hostKey: _pinned, ...unpinned } = base;
    const c = await SshConnection.open({ ...unpinned, hostKeyStore: store });
    c.close();
    expect(store.get(`[${base.host}]:${port}`)).toBe(env.SORTIE_TESTBED_HOST_KEY);
    const e = await SshConnection.open({
      ...unpinned,
      hostKeyStore: new MemoryHostKeyStore(),
      trustOnFirstUse: false,
    }).catch((x: unknown) => x);
    expect(e).toMatchObject({ failure: 'host-key-unknown' });
  });
});

describe.skipIf(skip !== undefined)(
  `SSH launcher on the test bed${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const squeue = async (id: string) => {
      const c = await SshConnection.open(base);
      try {
        return (await c.exec(`squeue -h -j ${id}`)).stdout.trim();
      } finally {
        c.close();
      }
    };

    it('sbatch runs the stand-in agent: running, then finished; tail shows its output', async () => {
      const resource = testbedResource('slurm', 'local.slurm');
      const launcher = launcherFor(registry.get(resource));
      const req = request(resource, 3000);
      const job: LaunchResult = await launcher.launch(req);
      expect(job.jobId).toMatch(/^\d+$/);
      expect(job.sandbox).toBe(`/home/hpcuser/sortie.sandbox/session.test/${req.pilotId}`);
      const seen = await waitFor(
        () => launcher.status(req, job),
        (s) => s.state === 'finished',
      );
      expect(seen.map((s) => s.state)).toContain('running');
      expect(seen.at(-1)).toEqual({ state: 'finished', detail: 'COMPLETED' });
      const tail = await launcher.tail(req, job, 10);
      expect(tail).toContain(
        `agent.out:\nstand-in agent ${req.pilotId} in ${job.sandbox} (agent.json mode 600)`,
      );
      expect(tail).toContain('agent.err:\nstand-in stderr line');
    });

    it('cancel while queued (begin in an hour): gone from squeue afterwards', async () => {
      const resource = testbedResource('slurm_later', 'local.slurm', { batchOptions: ['--begin=now+1hour'] });
      const launcher = launcherFor(registry.get(resource));
      const req = request(resource, 0);
      const job = await launcher.launch(req);
      expect(await launcher.status(req, job)).toEqual({ state: 'queued', detail: 'PENDING (BeginTime)' });
      await launcher.cancel(req, job);
      expect(await launcher.status(req, job)).toEqual({ state: 'finished', detail: 'CANCELLED' });
      expect(await squeue(job.jobId)).toBe('');
      // Cancelling again is not an error.
      await launcher.cancel(req, job);
    });

    it('checks of several jobs of one login that come together share one squeue', async () => {
      const resource = testbedResource('slurm_held', 'local.slurm', { batchOptions: ['--hold'] });
      const launcher = launcherFor(registry.get(resource));
      const reqs = [request(resource, 0), request(resource, 0)];
      const jobs = await Promise.all(reqs.map((r) => launcher.launch(r)));
      // Observes the real commands (nothing is faked): which ones the two checks ran over SSH.
      const exec = vi.spyOn(SshConnection.prototype, 'exec');
      try {
        const states = await Promise.all(jobs.map((j, i) => launcher.status(reqs[i] as LaunchRequest, j)));
        expect(states).toEqual([0, 1].map(() => ({ state: 'queued', detail: 'PENDING (JobHeldUser)' })));
        const queries = exec.mock.calls.map(([cmd]) => cmd).filter((cmd) => cmd.startsWith('squeue'));
        expect(queries).toEqual([
          `squeue -h -t all -j '${jobs[0]?.jobId},${jobs[1]?.jobId}' -o '%i|%T|%r' 2>/dev/null || true`,
        ]);
      } finally {
        exec.mockRestore();
        await Promise.all(jobs.map((j, i) => launcher.cancel(reqs[i] as LaunchRequest, j)));
      }
    });

    it('an unknown job id counts as finished, in SLURM’s words', async () => {
      const launcher = launcherFor(registry.get(testbedResource('slurm', 'local.slurm')));
      const req = request('testbed.slurm', 0);
      expect(await launcher.status(req, { jobId: '999999', sandbox: '/nonexistent' })).toEqual({
        state: 'finished',
        detail: 'slurm_load_jobs error: Invalid job id specified',
      });
    });

    it('fork over SSH runs the agent detached, reports it running, cancels it by process group', async () => {
      const resource = testbedResource('fork', 'local.ssh');
      const launcher = launcherFor(registry.get(resource));
      const req = request(resource, 60_000);
      const job = await launcher.launch(req);
      expect(job.jobId).toMatch(/^\d+$/);
      const running = await waitFor(
        () => launcher.status(req, job),
        (s) => s.state === 'running',
        5_000,
      );
      expect(running.at(-1)?.state).toBe('running');
      // Running means the process exists, not that it has written yet: under load a cancel right away
      // could kill it before its first line (a CI run saw an empty tail). Wait for the line first.
      const line = `stand-in agent ${req.pilotId}`;
      await until(
        'the stand-in agent wrote its first line',
        async () => (await launcher.tail(req, job, 5)).includes(line) || undefined,
        10_000,
        100,
      );
      await launcher.cancel(req, job);
      const after = await waitFor(
        () => launcher.status(req, job),
        (s) => s.state === 'finished',
        5_000,
      );
      expect(after.at(-1)?.state).toBe('finished');
      expect(await launcher.tail(req, job, 5)).toContain(line);
    });

    it('a fork agent that exits on its own is finished with its exit code', async () => {
      const launcher = launcherFor(registry.get(testbedResource('fork', 'local.ssh')));
      const req = request('testbed.fork', 0);
      const job = await launcher.launch(req);
      const seen = await waitFor(
        () => launcher.status(req, job),
        (s) => s.state === 'finished',
        10_000,
      );
      expect(seen.at(-1)).toEqual({ state: 'finished', detail: `pid ${job.jobId} exited 0` });
    });

    it('refuses a pilot without a mandatory project, naming it', async () => {
      const resource = testbedResource('slurm_project', 'local.slurm', { mandatoryArgs: ['project'] });
      const launcher = launcherFor(registry.get(resource));
      await expect(launcher.launch(request(resource, 0))).rejects.toThrow(/requires 'project'/);
    });
  },
);
