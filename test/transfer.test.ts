/**
 * TRANSFER through S3 end to end on the embedded backend (its S3 on 127.0.0.1) and local.localhost: the
 * SDK uploads inputs with presigned URLs, the agent downloads them into the unit sandbox and uploads
 * outputs, the SDK downloads those when the unit is DONE. Faults are real where they can be (a missing
 * file, an object that was never uploaded) and injected by the embedded S3 where they cannot on demand
 * (a URL past its expiry without waiting an hour, a connection cut halfway).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadParameter,
  COPY,
  type ComputePilot,
  type ComputeUnit,
  IncorrectState,
  LINK,
  NoSuccess,
  PilotManager,
  Session,
  TRANSFER,
  UnitManager,
  UnitState,
} from '../client/index.ts';
import { uploadInputs } from '../client/transfer.ts';
import type { StagingDirective } from '../core/staging.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import type { S3Faults } from '../local/s3.ts';
import { historyProblems } from './e2e.ts';

let backend: Backend;
let session: Session;
let umgr: UnitManager;
let pilot: ComputePilot;
let work: string;
const faults: S3Faults = {};

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

beforeAll(async () => {
  backend = await startBackend({ s3Faults: faults });
  work = mkdtempSync(path.join(os.tmpdir(), 'sortie-transfer-'));
  session = await Session.create({ endpoint: backend.apiUrl, name: 'transfer' });
  const pmgr = await PilotManager.create(session);
  pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
  umgr = await UnitManager.create(session, 'direct_submission');
  await umgr.addPilots(pilot);
});
afterAll(async () => {
  await session?.close({ timeout: 60 });
  await backend?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.sequential('TRANSFER through S3 on local.localhost', () => {
  it('moves a file client → unit → client (one PUT and multipart), checksums equal, staging states once each', async () => {
    // Prepare: a small file (one PUT) and one of 20 MiB (three parts)
    const small = path.join(work, 'small.txt');
    writeFileSync(small, 'hello transfer\n');
    const big = path.join(work, 'big.bin');
    writeFileSync(big, randomBytes(20 * 1024 * 1024));
    // Act: plain 'f' is RP's TRANSFER; the unit copies each input to an output sent back
    const unit = await umgr.submitUnits({
      executable: '/bin/sh',
      arguments: ['-c', 'tr a-z A-Z < small.txt > upper.txt && cp big.bin big.out'],
      inputStaging: [small, { source: big, target: 'big.bin', action: TRANSFER }],
      outputStaging: [
        { source: 'upper.txt', target: path.join(work, 'back', 'upper.txt'), action: TRANSFER },
        { source: 'big.out', target: path.join(work, 'back', 'big.out'), action: TRANSFER },
      ],
    });
    const state = await unit.wait({ timeout: 120 });
    // Assess: the outputs are here when the wait returns, whole
    expect(state, unit.log.join('\n')).toBe(UnitState.DONE);
    expect(readFileSync(path.join(work, 'back', 'upper.txt'), 'utf8')).toBe('HELLO TRANSFER\n');
    expect(sha(path.join(work, 'back', 'big.out'))).toBe(sha(big));
    expect(readdirSync(path.join(work, 'back')).sort()).toEqual(['big.out', 'upper.txt']);
    expect(historyProblems(unit)).toEqual([]);
    const states = unit.stateHistory.map((e) => e.state);
    for (const s of [UnitState.STAGING_INPUT, UnitState.STAGING_OUTPUT])
      expect(states.filter((x) => x === s)).toHaveLength(1);
    // The description names the object each input went to, in this session
    expect(unit.description.inputStaging?.[1]?.object).toMatchObject({
      key: expect.stringMatching(new RegExp(`^${session.uid}/in/`)),
      size: 20 * 1024 * 1024,
      sha256: sha(big),
    });
    // stageOut fetches again, e.g. after the user removed the file
    rmSync(path.join(work, 'back', 'upper.txt'));
    await expect(unit.stageOut()).resolves.toContain(path.join(work, 'back', 'upper.txt'));
    expect(readFileSync(path.join(work, 'back', 'upper.txt'), 'utf8')).toBe('HELLO TRANSFER\n');
  });

  it('refuses a local input that does not exist before anything is submitted, naming the directive and file', async () => {
    const before = (await umgr.listUnits()).length;
    const missing = path.join(work, 'nope.dat');
    const err = await umgr.submitUnits({ executable: '/bin/true', inputStaging: [missing] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BadParameter);
    expect(String(err)).toContain(`descriptions[0].inputStaging[0].source: cannot read ${missing}`);
    expect((await umgr.listUnits()).length).toBe(before);
  });

  it("refuses at submit a Transfer input that names no object or another session's (raw API)", async () => {
    const d = (object?: unknown) => ({
      executable: '/bin/true',
      inputStaging: [{ source: 'x', action: 'Transfer', ...(object ? { object } : {}) }],
    });
    const post = (body: unknown) =>
      fetch(`${backend.apiUrl}/sessions/${session.uid}/umgrs/${umgr.uid}/units`, {
        method: 'POST',
        headers: { authorization: `Bearer ${session.transport.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const none = await post({ descriptions: [d()] });
    expect(none.status).toBe(400);
    expect(await none.text()).toContain(
      'descriptions[0].inputStaging[0].object: a Transfer input must name the object',
    );
    const other = await post({
      descriptions: [d({ key: `session.other/in/${randomUUID()}`, size: 1, sha256: 'a'.repeat(64) })],
    });
    expect(other.status).toBe(400);
    expect(await other.text()).toContain('inputStaging[0].object.key: must be an upload key of this session');
  });

  it('fails a unit whose input object was never uploaded, naming the file and the cause', async () => {
    const object = { key: `${session.uid}/in/${randomUUID()}`, size: 5, sha256: 'b'.repeat(64) };
    const unit = await umgr.submitUnits({
      executable: '/bin/true',
      inputStaging: [{ source: '/home/me/never.dat', target: 'never.dat', action: TRANSFER, object }],
    });
    expect(await unit.wait({ timeout: 120 })).toBe(UnitState.FAILED);
    const log = unit.log.join('\n');
    expect(log).toContain('input staging Transfer /home/me/never.dat →');
    expect(log).toContain('no such object');
    expect(unit.stateHistory.map((e) => e.state)).not.toContain(UnitState.EXECUTING);
  });

  it('fails a unit whose download URL has expired (S3: Request has expired), nothing under the target', async () => {
    // Prepare: the input is uploaded while URLs are good; then the S3 clock runs two hours ahead
    const file = path.join(work, 'late.txt');
    writeFileSync(file, 'late\n');
    const inputStaging: StagingDirective[] = [
      {
        source: file,
        target: 'late.txt',
        action: 'Transfer',
        flags: ['CreateParents', 'SkipFailed'],
        priority: 0,
      },
    ];
    await uploadInputs(
      (b) => session.transport.request('POST', session.path('/transfers'), b),
      [{ inputStaging }],
    );
    faults.clockAheadSeconds = 7200;
    try {
      const unit = await umgr.submitUnits({ executable: '/bin/true', inputStaging });
      expect(await unit.wait({ timeout: 120 })).toBe(UnitState.FAILED);
      expect(unit.log.join('\n')).toMatch(
        /input staging Transfer .*late\.txt → .*late\.txt failed: download refused: HTTP 403 Request has expired/,
      );
      expect(existsSync(path.join(unit.workingDirectory ?? '/nonexistent', 'late.txt'))).toBe(false);
    } finally {
      delete faults.clockAheadSeconds;
    }
  });

  it('fails a unit whose input object was altered in S3 (checksum mismatch), nothing under the target', async () => {
    // Prepare: upload, then overwrite the object with other bytes of the same length, metadata kept
    const file = path.join(work, 'altered.txt');
    writeFileSync(file, 'original\n');
    const inputStaging: StagingDirective[] = [
      {
        source: file,
        target: 'altered.txt',
        action: 'Transfer',
        flags: ['CreateParents', 'SkipFailed'],
        priority: 0,
      },
    ];
    await uploadInputs(
      (b) => session.transport.request('POST', session.path('/transfers'), b),
      [{ inputStaging }],
    );
    const object = inputStaging[0]?.object;
    await new S3Client({ forcePathStyle: true }).send(
      new PutObjectCommand({
        Bucket: backend.env.SORTIE_BUCKET,
        Key: object?.key,
        Body: 'altered!\n',
        Metadata: { sha256: object?.sha256 ?? '' },
      }),
    );
    // Act
    const unit = await umgr.submitUnits({ executable: '/bin/true', inputStaging });
    // Assess
    expect(await unit.wait({ timeout: 120 })).toBe(UnitState.FAILED);
    expect(unit.log.join('\n')).toMatch(
      /input staging Transfer .*altered\.txt failed: checksum mismatch: SHA-256 /,
    );
    const sandbox = unit.workingDirectory ?? '/nonexistent';
    expect(existsSync(sandbox) ? readdirSync(sandbox).filter((n) => n.includes('altered')) : []).toEqual([]);
  });

  it('fails a unit whose input download is cut halfway; no file, whole or partial, is left in its sandbox', async () => {
    const file = path.join(work, 'cut.bin');
    writeFileSync(file, randomBytes(256 * 1024));
    const inputStaging: StagingDirective[] = [
      {
        source: file,
        target: 'cut.bin',
        action: 'Transfer',
        flags: ['CreateParents', 'SkipFailed'],
        priority: 0,
      },
    ];
    await uploadInputs(
      (b) => session.transport.request('POST', session.path('/transfers'), b),
      [{ inputStaging }],
    );
    faults.cutDownloadsAfterBytes = 1000;
    try {
      const unit = await umgr.submitUnits({ executable: '/bin/true', inputStaging });
      expect(await unit.wait({ timeout: 120 })).toBe(UnitState.FAILED);
      expect(unit.log.join('\n')).toMatch(/input staging Transfer .*cut\.bin → .*cut\.bin failed: /);
      const sandbox = unit.workingDirectory ?? '/nonexistent';
      expect(existsSync(sandbox) ? readdirSync(sandbox).filter((n) => n.includes('cut.bin')) : []).toEqual(
        [],
      );
    } finally {
      delete faults.cutDownloadsAfterBytes;
    }
  });

  it('an output download cut at the SDK fails the wait naming the file, leaves nothing, and stageOut retries', async () => {
    const target = path.join(work, 'later', 'out.txt');
    faults.cutDownloadsAfterBytes = 3;
    let unit: ComputeUnit | undefined;
    try {
      unit = await umgr.submitUnits({
        executable: '/bin/sh',
        arguments: ['-c', 'echo output-of-the-unit > out.txt'],
        outputStaging: [{ source: 'out.txt', target, action: TRANSFER }],
      });
      const err = await unit.wait({ timeout: 120 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(NoSuccess);
      expect(String(err)).toContain(`output staging Transfer out.txt → ${target} failed`);
      expect(unit.state).toBe(UnitState.DONE);
      expect(existsSync(path.dirname(target)) ? readdirSync(path.dirname(target)) : []).toEqual([]);
    } finally {
      delete faults.cutDownloadsAfterBytes;
    }
    await (unit as ComputeUnit).stageOut();
    expect(readFileSync(target, 'utf8')).toBe('output-of-the-unit\n');
  });

  it('pilot.stageIn puts a local file into the staging area, units LINK it, pilot.stageOut brings one back', async () => {
    // Prepare
    const file = path.join(work, 'shared.txt');
    writeFileSync(file, 'shared by every unit\n');
    // Act: into the staging area (relative target: in it), then two units read it through a link
    await pilot.stageIn({ source: file, target: 'shared.txt' });
    const units = await umgr.submitUnits(
      [1, 2].map((i) => ({
        executable: '/bin/sh',
        arguments: ['-c', `cat shared.txt > staged-${i}.txt`],
        inputStaging: [{ source: 'staging:///shared.txt', target: 'shared.txt', action: LINK }],
        outputStaging: [{ source: `staged-${i}.txt`, target: `staging:///staged-${i}.txt`, action: COPY }],
      })),
    );
    await umgr.waitUnits({ uids: units.map((u) => u.uid), timeout: 120 });
    await pilot.stageOut([`staged-2.txt > ${path.join(work, 'from-area', 'staged-2.txt')}`]);
    // Assess
    expect(units.map((u) => u.state)).toEqual([UnitState.DONE, UnitState.DONE]);
    expect(readFileSync(path.join(work, 'from-area', 'staged-2.txt'), 'utf8')).toBe('shared by every unit\n');
  });

  it('pilot.stageIn fails naming the file when it is missing, and refuses a final pilot', async () => {
    const err = await pilot.stageIn({ source: '/nonexistent/x.dat', action: COPY }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NoSuccess);
    expect(String(err)).toMatch(
      /input staging Copy \/nonexistent\/x\.dat → .*staging_area\/x\.dat failed: ENOENT/,
    );
    const pmgr = await PilotManager.create(session);
    const gone = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 5, cores: 1 });
    await gone.cancel();
    await gone.wait({ timeout: 60 });
    await expect(gone.stageIn('x.dat')).rejects.toBeInstanceOf(IncorrectState);
  });

  it("Session.close() (cleanup, RP's default) deletes the session's TRANSFER objects; cleanup: false keeps them", async () => {
    // Prepare: two sessions, each with one uploaded input
    const s3 = new S3Client({ forcePathStyle: true });
    const objectsOf = async (sid: string) =>
      (await s3.send(new ListObjectsV2Command({ Bucket: backend.env.SORTIE_BUCKET, Prefix: `${sid}/` })))
        .KeyCount ?? 0;
    const file = path.join(work, 'kept.txt');
    writeFileSync(file, 'kept\n');
    const upload = async (s: Session) =>
      uploadInputs(
        (b) => s.transport.request('POST', s.path('/transfers'), b),
        [{ inputStaging: [{ source: file, target: 'k', action: 'Transfer', flags: [], priority: 0 }] }],
      );
    const keep = await Session.create({ endpoint: backend.apiUrl, name: 'keep' });
    const clean = await Session.create({ endpoint: backend.apiUrl, name: 'clean' });
    await upload(keep);
    await upload(clean);
    expect([await objectsOf(keep.uid), await objectsOf(clean.uid)]).toEqual([1, 1]);
    // Act
    await keep.close({ cleanup: false, terminate: true });
    await clean.close();
    // Assess
    expect([await objectsOf(keep.uid), await objectsOf(clean.uid)]).toEqual([1, 0]);
  });
});
