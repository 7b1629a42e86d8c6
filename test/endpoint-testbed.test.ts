/**
 * Endpoint mode on the real test bed: `sortie endpoint start` runs as the bed's `hpcuser` (runuser, in
 * that user's own environment with SLURM_CONF, as a login on an MFA site would have it) and launches,
 * checks and cancels pilots of a `local.slurm` copy whose config has only the endpoint access schema. The
 * session holds no SSH credentials at all. Killing the endpoint mid-pilot loses no unit; a pilot submitted
 * while it is down launches when it comes back. Skipped, saying why, when the test bed is not up.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { buildAgentBundle } from '../agent/bundle.ts';
import {
  type ComputePilot,
  PilotManager,
  PilotState,
  Session,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { historyProblems, until } from './e2e.ts';
import { readTestbed } from './support/testbed.ts';

const run = promisify(execFile);
const tb = readTestbed();
const skip = 'skip' in tb ? tb.skip : undefined;
const env = 'env' in tb ? tb.env : {};
const root = path.resolve(import.meta.dirname, '..');
const USER = 'hpcuser';
const HOME = `/home/${USER}`;

/** The job's state in the test bed's SLURM ('' once SLURM has forgotten it). */
function squeue(jobId: string): string {
  return execFileSync('squeue', ['-h', '-j', jobId, '-o', '%T'], {
    env: { ...process.env, SLURM_CONF: env.SORTIE_TESTBED_SLURM_CONF ?? '' },
    encoding: 'utf8',
  }).trim();
}

describe.skipIf(skip !== undefined)(
  `endpoint mode on the test bed${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let backend: Backend;
    let session: Session;
    let pmgr: PilotManager;
    let umgr: UnitManager;
    let token: string;
    let bundle: string;
    let sortieDir: string;
    let proc: ChildProcess | undefined;
    const output: string[] = [];

    /** The environment hpcuser's endpoint runs in: its own HOME and SLURM, the endpoint token, the API. */
    function endpointEnv(): NodeJS.ProcessEnv {
      return {
        PATH: process.env.PATH,
        HOME,
        USER,
        LOGNAME: USER,
        SLURM_CONF: env.SORTIE_TESTBED_SLURM_CONF,
        SORTIE_API_URL: backend.apiUrl,
        SORTIE_ENDPOINT_TOKEN: token,
        SORTIE_DIR: sortieDir,
        SORTIE_AGENT_BUNDLE: bundle,
      };
    }

    /** `sortie <args>` as hpcuser. */
    function sortieArgs(args: string[]): string[] {
      return [
        '-u',
        USER,
        '--',
        process.execPath,
        '--import',
        'tsx',
        path.join(root, 'client/cli.ts'),
        ...args,
      ];
    }

    function startEndpoint(): void {
      // Its own process group, so that a kill takes runuser and the endpoint below it at once.
      proc = spawn(
        'runuser',
        sortieArgs(['endpoint', 'start', '--resource', 'mfa.slurm', '--poll-seconds', '3']),
        {
          cwd: root,
          env: endpointEnv(),
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      proc.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
      proc.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
    }

    /** SIGKILL: the endpoint gets no chance to finish anything. */
    async function killEndpoint(): Promise<void> {
      const p = proc;
      if (!p?.pid || p.exitCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      process.kill(-p.pid, 'SIGKILL');
      await exited;
      proc = undefined;
    }

    /** What `GET /endpoint` says is waiting. */
    async function pending(): Promise<{ pilotId: string; op: string }[]> {
      const res = await fetch(`${backend.apiUrl}/endpoint`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(200);
      return ((await res.json()) as { pending: { pilotId: string; op: string }[] }).pending;
    }

    async function endOf(pilot: ComputePilot): Promise<void> {
      await pilot.cancel();
      expect(await pilot.wait({ timeout: 90 })).toBe(PilotState.CANCELED);
      // The endpoint cancelled the job (the cloud cannot reach this SLURM).
      await until(
        'job gone',
        () =>
          ['', 'COMPLETING', 'CANCELLED', 'COMPLETED'].includes(squeue(pilot.jobId ?? '')) ? true : undefined,
        60_000,
        250,
      );
    }

    beforeAll(async () => {
      backend = await startBackend({ heartbeatSeconds: 10, jobCheckSeconds: 2, activateTimeoutSeconds: 120 });
      bundle = await buildAgentBundle();
      session = await Session.create({ endpoint: backend.apiUrl });
      const local = JSON.parse(readFileSync(path.join(root, 'resources/local.json'), 'utf8')) as Record<
        string,
        Record<string, unknown>
      >;
      await session.addResourceConfig({
        'mfa.slurm': {
          ...local.slurm,
          description: 'local.slurm as an MFA site sees it: reached only through a user-run endpoint',
          schemas: { endpoint: {} },
          defaultSchema: 'endpoint',
        },
      });
      const e = await session.createEndpoint('mfa.slurm');
      token = e.token;
      sortieDir = `${HOME}/.sortie-endpoint-test-${session.uid}`;
      pmgr = await PilotManager.create(session);
      umgr = await UnitManager.create(session, 'direct_submission');
    }, 60_000);

    afterAll(async () => {
      await session?.close({ timeout: 60 }).catch(() => {});
      await killEndpoint().catch(() => {});
      await backend?.close();
      if (sortieDir) rmSync(sortieDir, { recursive: true, force: true });
    });

    let pilot: ComputePilot;

    it('runs a pilot on local.slurm end to end through an endpoint run as hpcuser, with no SSH credentials', async () => {
      onTestFailed(() => console.error(output.join('')));
      expect(await session.listContexts()).toEqual([]);
      startEndpoint();
      [pilot] = (await pmgr.submitPilots([{ resource: 'mfa.slurm', runtime: 10, cores: 2 }])) as [
        ComputePilot,
      ];
      expect(await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 90 })).toBe(
        PilotState.ACTIVE,
      );
      expect(pilot.log.join('\n'), pilot.log.join('\n')).toContain(
        `agent submitted by the endpoint (${USER}@`,
      );
      expect(pilot.resourceDetail?.lrms).toBe('SLURM');
      expect(squeue(pilot.jobId ?? '')).toBe('RUNNING');
      await umgr.addPilots(pilot);
      const units = await umgr.submitUnits(
        Array.from({ length: 4 }, (_, i) => ({
          executable: '/bin/sh',
          arguments: ['-c', `echo $SLURM_JOB_ID $(id -un) unit ${i}`],
        })),
      );
      await umgr.waitUnits({ uids: units.map((u) => u.uid), timeout: 60 });
      for (const [i, u] of units.entries()) {
        expect(u.state, u.stderr).toBe(UnitState.DONE);
        expect(u.stdout).toContain(`${pilot.jobId} ${USER} unit ${i}`);
      }
    }, 180_000);

    it('loses no unit when the endpoint is killed and restarted mid-pilot', async () => {
      onTestFailed(() => console.error(output.join('')));
      const units = await umgr.submitUnits(
        Array.from({ length: 8 }, (_, i) => ({
          executable: '/bin/sh',
          arguments: ['-c', `sleep 1; echo slow ${i}`],
        })),
      );
      await until(
        'a unit executing',
        () => (units.some((u) => u.state === UnitState.EXECUTING) ? true : undefined),
        60_000,
      );
      await killEndpoint();
      // With the endpoint gone, the next job check waits in the table for it.
      await until(
        'a check waiting for the endpoint',
        async () =>
          (await pending()).some((r) => r.pilotId === pilot.uid && r.op === 'check') ? true : undefined,
        60_000,
        250,
      );
      startEndpoint();
      await umgr.waitUnits({ uids: units.map((u) => u.uid), timeout: 120 });
      for (const [i, u] of units.entries()) {
        expect(u.state, u.stderr).toBe(UnitState.DONE);
        expect(u.stdout).toContain(`slow ${i}`);
        expect(historyProblems(u)).toEqual([]);
      }
      // The check left for the endpoint is answered once it is back.
      await until(
        'checks answered',
        async () => ((await pending()).some((r) => r.pilotId === pilot.uid) ? undefined : true),
        60_000,
        250,
      );
      expect(pilot.state).toBe(PilotState.ACTIVE);
      await endOf(pilot);
    }, 300_000);

    it('launches a pilot submitted while the endpoint is down when it comes back; status shows the wait', async () => {
      onTestFailed(() => console.error(output.join('')));
      await killEndpoint();
      const [late] = (await pmgr.submitPilots([{ resource: 'mfa.slurm', runtime: 10, cores: 1 }])) as [
        ComputePilot,
      ];
      await until(
        'launch waiting',
        async () =>
          (await pending()).some((r) => r.pilotId === late.uid && r.op === 'launch') ? true : undefined,
        60_000,
        250,
      );
      // Async: the backend serving its request runs in this very process. The SIGKILLed
      // endpoint may take a moment to leave the process table after runuser has exited.
      let status = '';
      await until(
        'status says the endpoint is not running',
        async () => {
          ({ stdout: status } = await run(
            'runuser',
            sortieArgs(['endpoint', 'status', '--resource', 'mfa.slurm']),
            { cwd: root, env: endpointEnv(), encoding: 'utf8' },
          ));
          return status.includes('not running') ? true : undefined;
        },
        30_000,
        250,
      );
      expect(status).toMatch(new RegExp(`${late.uid.replace('.', '\\.')} launch`));
      // What the killed process handled last: the first pilot's cancel.
      expect(status).toContain(`${pilot.uid} cancel: cancelled job ${pilot.jobId}`);
      await late.refresh();
      expect(late.state).toBe(PilotState.LAUNCHING);
      startEndpoint();
      expect(await late.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 90 })).toBe(
        PilotState.ACTIVE,
      );
      await umgr.addPilots(late);
      const [u] = await umgr.submitUnits([{ executable: '/bin/echo', arguments: ['late'] }]);
      await umgr.waitUnits({ uids: [u?.uid ?? ''], timeout: 60 });
      expect(u?.state).toBe(UnitState.DONE);
      expect(u?.pilotId).toBe(late.uid);
      await endOf(late);
    }, 240_000);
  },
);
