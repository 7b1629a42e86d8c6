/**
 * RP's data staging examples, translated (examples/io-staging-*.ts), end to end on one embedded backend
 * with real agents on local.localhost: the files they stage must hold what the workload computed, and
 * every unit's history must be in order with each state once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkIoStagingDict, ioStagingDict } from '../examples/io-staging-dict.ts';
import { checkIoStagingPipeline, ioStagingPipeline } from '../examples/io-staging-pipeline.ts';
import { checkIoStagingShared, ioStagingShared } from '../examples/io-staging-shared.ts';
import { checkIoStagingSimple, ioStagingSimple } from '../examples/io-staging-simple.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { CallbackLog, historyProblems } from './e2e.ts';

let backend: Backend;
let work: string;
beforeAll(async () => {
  backend = await startBackend();
  work = mkdtempSync(path.join(os.tmpdir(), 'sortie-io-staging-'));
});
afterAll(async () => {
  await backend?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const quiet = { log: () => {}, quiet: true } as const;

describe.concurrent('RP io_staging examples', () => {
  it('io_staging_dict: /etc/passwd transferred in, sorted, result.dat transferred back', async () => {
    const callbacks = new CallbackLog();
    const resultFile = path.join(work, 'dict', 'result.dat');
    const result = await ioStagingDict(backend.apiUrl, resultFile, {
      ...quiet,
      onUnitState: callbacks.record,
    });
    expect(checkIoStagingDict(result, resultFile)).toEqual([]);
    expect(result.units.flatMap(historyProblems)).toEqual([]);
    for (const u of result.units)
      expect(callbacks.statesOf(u.uid)).toEqual(u.stateHistory.map((e) => e.state));
  });

  it('io_staging_pipeline: unit 2 reads unit 1 output through staging:///', async () => {
    const dir = mkdtempSync(path.join(work, 'pipeline-'));
    const result = await ioStagingPipeline(backend.apiUrl, dir, quiet);
    expect(checkIoStagingPipeline(result, dir)).toEqual([]);
    expect(result.units.flatMap(historyProblems)).toEqual([]);
  });

  it('io_staging_simple: plain string directives transfer /etc/passwd in and result.dat back', async () => {
    const dir = mkdtempSync(path.join(work, 'simple-'));
    const result = await ioStagingSimple(backend.apiUrl, dir, quiet);
    expect(checkIoStagingSimple(result, dir)).toEqual([]);
    expect(result.units.flatMap(historyProblems)).toEqual([]);
  });

  it('io_staging_shared: pilot.stageIn puts the shared file in staging:///, four units LINK it', async () => {
    const dir = mkdtempSync(path.join(work, 'shared-'));
    const result = await ioStagingShared(backend.apiUrl, dir, quiet);
    expect(checkIoStagingShared(result, dir)).toEqual([]);
    expect(result.units.flatMap(historyProblems)).toEqual([]);
  });
});
