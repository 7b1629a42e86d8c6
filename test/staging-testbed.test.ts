/**
 * Data staging on the sshd + SLURM test bed: the agent runs as hpcuser inside a SLURM job (local.slurm)
 * and stages real files there, before and after the launch script. Inputs are a file this test writes
 * (readable by hpcuser), a relative input source under the pilot sandbox and the staging area; outputs go
 * to relative targets (under the pilot sandbox, RP's rule) and to staging:///. Skipped, saying why, when
 * the test bed is down.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  COPY,
  type ComputePilot,
  Context,
  LINK,
  MOVE,
  PilotManager,
  PilotState,
  Session,
  TRANSFER,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { historyProblems } from './e2e.ts';
import { readTestbed } from './support/testbed.ts';

const tb = readTestbed();
const skip = 'skip' in tb ? tb.skip : undefined;
const env = 'env' in tb ? tb.env : {};

describe.skipIf(skip !== undefined)(
  `data staging over SSH + SLURM${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let backend: Backend;
    let session: Session;
    let pilot: ComputePilot;
    let umgr: UnitManager;
    let work: string;

    beforeAll(async () => {
      work = mkdtempSync(path.join(os.tmpdir(), 'sortie-staging-bed-'));
      chmodSync(work, 0o755); // hpcuser reads the inputs from here
      backend = await startBackend({ heartbeatSeconds: 8, jobCheckSeconds: 2, activateTimeoutSeconds: 120 });
      session = await Session.create({ endpoint: backend.apiUrl });
      await session.addContext(
        new Context('ssh', { userId: 'hpcuser', userKey: env.SORTIE_TESTBED_KEY ?? '' }),
      );
      const pmgr = await PilotManager.create(session);
      pilot = await pmgr.submitPilots({ resource: 'local.slurm', runtime: 10, cores: 2 });
      await pilot.wait({ state: [PilotState.ACTIVE, PilotState.FAILED], timeout: 60 });
      umgr = await UnitManager.create(session, 'direct_submission');
      await umgr.addPilots(pilot);
    }, 120_000);

    afterAll(async () => {
      await session?.close({ timeout: 30 }).catch(() => {});
      await backend?.close();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it('stages in and out on the batch node: copy, move, link through staging:///, missing input FAILS', async () => {
      expect(pilot.state, pilot.log.join('\n')).toBe(PilotState.ACTIVE);
      const input = path.join(work, 'numbers.txt');
      writeFileSync(input, '3\n1\n2\n', { mode: 0o644 });
      // Unit 1: sorts a copied input; the result goes to the staging area and to the pilot sandbox.
      const first = await umgr.submitUnits({
        executable: 'sort',
        arguments: ['-o', 'sorted.txt', 'numbers.txt'],
        inputStaging: [{ source: input, target: 'numbers.txt', action: COPY }],
        outputStaging: [
          { source: 'sorted.txt', target: 'staging:///sorted.txt', action: COPY },
          { source: 'sorted.txt', target: 'results/first.txt', action: MOVE },
        ],
      });
      await first.wait({ timeout: 120 });
      expect(first.state, first.log.join('\n')).toBe(UnitState.DONE);
      await pilot.refresh();
      const sandbox = pilot.sandbox as string;
      expect(readFileSync(path.join(sandbox, 'results', 'first.txt'), 'utf8')).toBe('1\n2\n3\n');
      expect(existsSync(path.join(first.workingDirectory as string, 'sorted.txt'))).toBe(false);
      // Unit 2: links the staged file in (a relative source is under the pilot sandbox, RP's rule).
      const [second, missing] = await umgr.submitUnits([
        {
          executable: '/bin/sh',
          arguments: ['-c', 'head -n1 sorted.txt > first-line.txt; tail -n1 first.txt >> first-line.txt'],
          inputStaging: [
            { source: 'staging:///sorted.txt', target: 'sorted.txt', action: LINK },
            { source: 'results/first.txt', target: 'first.txt', action: COPY },
          ],
          outputStaging: [{ source: 'first-line.txt', target: 'staging:///first-line.txt', action: COPY }],
        },
        {
          executable: '/bin/true',
          inputStaging: [{ source: path.join(work, 'absent.txt'), target: 'absent.txt', action: COPY }],
        },
      ]);
      await umgr.waitUnits({ uids: [second?.uid ?? '', missing?.uid ?? ''], timeout: 120 });
      expect(second?.state, second?.log.join('\n')).toBe(UnitState.DONE);
      expect(readFileSync(path.join(sandbox, 'staging_area', 'first-line.txt'), 'utf8')).toBe('1\n3\n');
      expect(missing?.state).toBe(UnitState.FAILED);
      expect(missing?.log.join('\n')).toMatch(/input staging Copy .*absent\.txt → .* failed: ENOENT/);
      expect([first, second, missing].flatMap((u) => (u ? historyProblems(u) : []))).toEqual([]);
    }, 300_000);

    it('TRANSFERs files from this machine into a SLURM job and back through S3, and stages into the pilot', async () => {
      // Prepare: a 12 MiB file (multipart) and a small one, on this machine (the test's user, not hpcuser)
      const big = path.join(work, 'big.bin');
      writeFileSync(big, Buffer.alloc(12 * 1024 * 1024, 7));
      const note = path.join(work, 'note.txt');
      writeFileSync(note, 'from the client\n');
      // Act: the note into the staging area, then a unit that links it and transfers both back
      await pilot.stageIn({ source: note, target: 'note.txt', action: TRANSFER });
      const unit = await umgr.submitUnits({
        executable: '/bin/sh',
        arguments: ['-c', 'cat note.txt > note.out; wc -c < big.bin > size.out; whoami >> note.out'],
        inputStaging: [
          { source: 'staging:///note.txt', target: 'note.txt', action: LINK },
          { source: big, target: 'big.bin', action: TRANSFER },
        ],
        outputStaging: [
          { source: 'note.out', target: path.join(work, 'back', 'note.out'), action: TRANSFER },
          { source: 'size.out', target: path.join(work, 'back', 'size.out'), action: TRANSFER },
        ],
      });
      await unit.wait({ timeout: 120 });
      // Assess: the unit ran as hpcuser in the job; its outputs are on this machine
      expect(unit.state, unit.log.join('\n')).toBe(UnitState.DONE);
      expect(readFileSync(path.join(work, 'back', 'note.out'), 'utf8')).toBe('from the client\nhpcuser\n');
      expect(readFileSync(path.join(work, 'back', 'size.out'), 'utf8').trim()).toBe(String(12 * 1024 * 1024));
      expect(historyProblems(unit)).toEqual([]);
    }, 300_000);
  },
);
