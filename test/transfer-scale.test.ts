/**
 * TRANSFER at size and at scale on the embedded backend and local.localhost: a 100 MB file client → unit
 * → client with an identical checksum while the SDK (in a child process) and the agent stay under 200 MB
 * peak RSS (files stream; neither side holds one whole), and 1,000 units each staging one small input in
 * and one output back.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ComputePilot,
  PilotManager,
  PilotState,
  Session,
  TRANSFER,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { historyProblems } from './e2e.ts';

const run = promisify(execFile);

let backend: Backend;
let session: Session;
let umgr: UnitManager;
let pilot: ComputePilot;
let work: string;

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Peak RSS (VmHWM, kB) of a live process, from /proc. */
function peakRssKb(pid: string): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for ${pid}`);
  return Number(m[1]);
}

beforeAll(async () => {
  backend = await startBackend();
  work = mkdtempSync(path.join(os.tmpdir(), 'sortie-transfer-scale-'));
  session = await Session.create({ endpoint: backend.apiUrl, name: 'transfer-scale' });
  // 8 slots on this 2-core host: staging runs on a unit's cores and mostly waits on round trips, so more
  // slots overlap more of them.
  await session.addResourceConfig({
    'local.transfer-test': {
      description: 'test: this host, oversubscribed',
      schemas: { local: {} },
      defaultSchema: 'local',
      jobManager: 'fork',
      coresPerNode: 2,
      oversubscribe: true,
      validRoots: ['$HOME', '/tmp', '/var/tmp'],
      launchMethods: { order: ['FORK'] },
    },
  });
  const pmgr = await PilotManager.create(session);
  pilot = await pmgr.submitPilots({ resource: 'local.transfer-test', runtime: 20, cores: 8 });
  umgr = await UnitManager.create(session, 'direct_submission');
  await umgr.addPilots(pilot);
  await pilot.wait({ state: PilotState.ACTIVE, timeout: 120 });
}, 180_000);
afterAll(async () => {
  await session?.close({ timeout: 60 });
  await backend?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.sequential('TRANSFER at size and scale', () => {
  it('moves 100 MB client → unit → client, checksum identical, SDK and agent peak RSS under 200 MB', async () => {
    // Prepare: 100 MB of varied bytes, written in 1 MiB chunks
    const input = path.join(work, 'data.bin');
    const chunk = Buffer.alloc(1024 * 1024);
    writeFileSync(input, '');
    for (let i = 0; i < 100; i++) {
      chunk.fill(i * 7 + 3);
      chunk.writeUInt32LE(i, 0);
      writeFileSync(input, chunk, { flag: 'a' });
    }
    const target = path.join(work, 'back', 'data.out');
    // Act: the SDK's side in a child process of its own
    const child = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(import.meta.dirname, 'support', 'transfer-child.ts'),
        backend.apiUrl,
        session.uid,
        session.transport.token ?? '',
        umgr.uid,
        input,
        target,
      ],
      { env: { ...process.env, ...backend.env }, timeout: 300_000, maxBuffer: 1 << 20 },
    );
    const out = JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}');
    const agentPeak = peakRssKb(pilot.jobId ?? '');
    // Assess
    expect(out.state, JSON.stringify(out.log)).toBe(UnitState.DONE);
    expect(await sha256(target)).toBe(await sha256(input));
    console.info(
      `100 MB TRANSFER: SDK peak RSS ${Math.round(out.peakRssKb / 1024)} MB (${Math.round(out.rssBeforeKb / 1024)} MB before), agent peak RSS ${Math.round(agentPeak / 1024)} MB`,
    );
    expect(out.peakRssKb).toBeLessThan(200 * 1024);
    expect(agentPeak).toBeLessThan(200 * 1024);
  }, 360_000);

  it('1,000 units each stage one small input in and one output back through S3, all DONE, each output correct', async () => {
    // Prepare: one small input per unit
    const dir = path.join(work, 'many');
    mkdirSync(path.join(dir, 'in'), { recursive: true });
    const n = 1000;
    for (let i = 0; i < n; i++) writeFileSync(path.join(dir, 'in', `${i}.txt`), `${i}\n`);
    // Act: each unit doubles its number into out.txt, sent back under its index
    const units = await umgr.submitUnits(
      Array.from({ length: n }, (_, i) => ({
        executable: '/bin/sh',
        arguments: ['-c', 'echo $(( $(cat in.txt) * 2 )) > out.txt'],
        inputStaging: [{ source: path.join(dir, 'in', `${i}.txt`), target: 'in.txt', action: TRANSFER }],
        outputStaging: [{ source: 'out.txt', target: path.join(dir, 'out', `${i}.txt`), action: TRANSFER }],
      })),
    );
    await umgr.waitUnits({ uids: units.map((u) => u.uid), timeout: 600 });
    // Assess
    expect(
      units.filter((u) => u.state !== UnitState.DONE).map((u) => `${u.uid} ${u.state} ${u.log}`),
    ).toEqual([]);
    const wrong = units.flatMap((_, i) => {
      const got = readFileSync(path.join(dir, 'out', `${i}.txt`), 'utf8');
      return got === `${2 * i}\n` ? [] : [`${i}: ${got}`];
    });
    expect(wrong).toEqual([]);
    expect(units.flatMap(historyProblems)).toEqual([]);
  }, 600_000);
});
