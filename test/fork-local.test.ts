/**
 * The `local.localhost` launcher's job checks and cancels name a PID, and PIDs are reused (32,768 by
 * default: CI wraps them within its run). A check or a cancel acts only on a process that runs this
 * pilot's agent (its command line names the sandbox's agent.json): a reused PID is "finished" and is
 * never signalled. Real processes on this host.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ForkLocalLauncher } from '../functions/pilot/launcher/fork-local.ts';
import type { LaunchRequest } from '../functions/pilot/launcher/types.ts';
import { alive, until } from './e2e.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sortie-fork-local-'));
/** Process groups this file started, each with a word of its command line (checked before a kill: see above). */
const started: { pid: number; marker: string }[] = [];

afterAll(() => {
  for (const { pid, marker } of started) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/** A stand-in agent: any script that stays up; the launcher runs it as `node agent.cjs agent.json`. */
const bundle = path.join(dir, 'stand-in.cjs');
writeFileSync(bundle, 'setInterval(() => {}, 1000);\n');

const request = (pilotId: string): LaunchRequest => ({
  sessionId: 'rp.session.fork-local',
  pilotId,
  resource: 'local.localhost',
  description: { runtime: 1, cores: 1, sandbox: dir },
  agentBundle: bundle,
  agentConfig: {},
});

describe('ForkLocalLauncher checks and cancels only its own agent', () => {
  it('a PID that now runs something else is finished, and a cancel does not signal its group', async () => {
    const launcher = new ForkLocalLauncher(dir);
    // Prepare: a pilot launched and its agent gone; its PID now names another process group
    const job = await launcher.launch(request('pilot.0000'));
    process.kill(-Number(job.jobId), 'SIGKILL');
    await until('the agent is gone', () => (alive(Number(job.jobId)) ? undefined : true), 10_000);
    const other = spawn('/bin/sleep', ['300'], { detached: true, stdio: 'ignore' });
    other.unref();
    const otherPid = other.pid as number;
    started.push({ pid: otherPid, marker: 'sleep' });
    const reused = { ...job, jobId: String(otherPid) };
    // Act
    const status = await launcher.status(request('pilot.0000'), reused);
    await launcher.cancel(request('pilot.0000'), reused);
    // Assess: reported finished, and the unrelated process was not signalled (cancel signals synchronously)
    expect(status.state).toBe('finished');
    expect(alive(otherPid)).toBe(true);
  });

  it('its own running agent is running, and a cancel ends it', async () => {
    const launcher = new ForkLocalLauncher(dir);
    const job = await launcher.launch(request('pilot.0001'));
    const pid = Number(job.jobId);
    started.push({ pid, marker: job.sandbox });
    expect((await launcher.status(request('pilot.0001'), job)).state).toBe('running');
    await launcher.cancel(request('pilot.0001'), job);
    await until('the agent is gone', () => (alive(pid) ? undefined : true), 10_000);
    expect((await launcher.status(request('pilot.0001'), job)).state).toBe('finished');
  });
});
