/**
 * The endpoint's transport (this host's shell in place of an SSH login) and the batch launcher over it:
 * commands with deadlines and stdin, files with exact modes, and a launch sent twice that submits once
 * (submit-once.ts finds the first job in the sandbox), as happens when an endpoint is killed between its
 * submit and its answer and the request is handed over again.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseResourceConfig } from '../core/resources.ts';
import { LocalTransport } from '../functions/pilot/launcher/local-transport.ts';
import { SshTimeout } from '../functions/pilot/launcher/ssh-errors.ts';
import { SshLauncher } from '../functions/pilot/launcher/ssh-launcher.ts';
import type { LaunchRequest } from '../functions/pilot/launcher/types.ts';
import { until } from './e2e.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'sortie-local-transport-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('LocalTransport', () => {
  const t = new LocalTransport();
  it('runs commands in bash with stdin, exit codes and both outputs', async () => {
    const r = await t.exec('read x; echo "got $x"; echo err >&2; exit 3', { stdin: 'hello\n' });
    expect(r).toMatchObject({ code: 3, stdout: 'got hello\n', stderr: 'err\n' });
    expect(t.where).toContain('(local)');
  });
  it('kills a command past its deadline', async () => {
    await expect(t.exec('sleep 30', { timeoutMs: 200 })).rejects.toThrow(SshTimeout);
  });
  it('writes files with exactly the mode asked for, whatever the umask', async () => {
    await t.mkdirp(path.join(dir, 'a/b'), 0o700);
    const f = path.join(dir, 'a/b/f');
    await t.writeFile(f, 'x', 0o640);
    expect(statSync(f).mode & 0o777).toBe(0o640);
    await t.writeFile(f, 'y', 0o600);
    expect(statSync(f).mode & 0o777).toBe(0o600);
  });
});

describe('the batch launcher over LocalTransport', () => {
  it('submits a launch sent twice only once, reports and cancels the job', async () => {
    const bundle = path.join(dir, 'fake-agent.cjs');
    // Stands in for the agent: stays up until killed.
    writeFileSync(bundle, 'setInterval(() => {}, 1000);\n');
    const sandbox = path.join(dir, 'sandbox');
    const rc = parseResourceConfig('mfa.fork', {
      description: 'fork through an endpoint',
      schemas: { endpoint: {} },
      defaultSchema: 'endpoint',
      jobManager: 'fork',
      coresPerNode: 1,
      validRoots: [sandbox],
      defaultSandbox: sandbox,
      node: process.execPath,
    });
    const launcher = new SshLauncher(rc, { transport: new LocalTransport() });
    const req: LaunchRequest = {
      sessionId: 'rp.session.lt',
      pilotId: 'pilot.0000',
      resource: 'mfa.fork',
      description: { runtime: 1, cores: 1 },
      agentBundle: bundle,
      agentConfig: {},
    };
    const first = await launcher.launch(req);
    const again = await launcher.launch(req);
    expect(again).toEqual(first);
    expect(first.sandbox).toBe(path.join(sandbox, 'rp.session.lt', 'pilot.0000'));
    expect((await launcher.status(req, first)).state).toBe('running');
    await launcher.cancel(req, first);
    await until(
      'job finished',
      async () => ((await launcher.status(req, first)).state === 'finished' ? true : undefined),
      30_000,
      100,
    );
  }, 90_000);
});
