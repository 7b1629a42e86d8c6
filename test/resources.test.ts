import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BadParameter } from '../core/errors.ts';
import { getResourceConfig, listResources, parseResourceConfig, SHIPPED_SITES } from '../core/resources.ts';
import { addResourceConfig } from '../resources/files.ts';

const resourcesDir = path.join(import.meta.dirname, '..', 'resources');

const minimal = {
  description: 'a test cluster',
  schemas: { ssh: { host: 'login.example.org' } },
  defaultSchema: 'ssh',
  jobManager: 'slurm',
  coresPerNode: 16,
};

describe('shipped resource configs', () => {
  it('every resources/*.json is imported by core/resources.ts', () => {
    const files = readdirSync(resourcesDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.replace(/\.json$/, ''))
      .sort();
    expect(Object.keys(SHIPPED_SITES).sort()).toEqual(files);
  });

  it('every shipped file validates, entry by entry', () => {
    for (const f of readdirSync(resourcesDir).filter((n) => n.endsWith('.json'))) {
      const site = f.replace(/\.json$/, '');
      const file = JSON.parse(readFileSync(path.join(resourcesDir, f), 'utf8')) as Record<string, unknown>;
      for (const [name, raw] of Object.entries(file)) {
        expect(() => parseResourceConfig(`${site}.${name}`, raw)).not.toThrow();
      }
    }
  });

  it('lists the local resources and at least one site per batch system', () => {
    const keys = listResources();
    expect(keys).toEqual(expect.arrayContaining(['local.localhost', 'local.ssh', 'local.slurm']));
    const managers = new Set(keys.map((k) => getResourceConfig(k).jobManager));
    for (const m of ['fork', 'slurm', 'pbspro', 'lsf']) expect(managers).toContain(m);
  });

  it('local.localhost is fork without SSH; local.slurm is the test bed over SSH', () => {
    const l = getResourceConfig('local.localhost');
    expect(l.jobManager).toBe('fork');
    expect(l.defaultSchema).toBe('local');
    expect(l.schemas.ssh).toBeUndefined();
    const s = getResourceConfig('local.slurm');
    expect(s).toMatchObject({ jobManager: 'slurm', defaultQueue: 'debug', defaultSchema: 'ssh' });
    expect(s.schemas.ssh).toEqual({ host: '127.0.0.1', port: 2222, user: 'hpcuser' });
  });

  it('fills defaults', () => {
    const c = parseResourceConfig('x.y', minimal);
    expect(c).toMatchObject({
      gpusPerNode: 0,
      mandatoryArgs: [],
      preBootstrap: [],
      node: 'node',
      defaultSandbox: '$HOME/sortie.sandbox',
      queueAs: 'partition',
      launchMethods: { order: ['FORK'] },
      gpuEnv: ['CUDA_VISIBLE_DEVICES'],
      oversubscribe: false,
    });
  });
});

describe('bad configs are rejected naming the field', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['unknown job manager', { ...minimal, jobManager: 'condor' }, /'x\.y': jobManager: must be one of slurm/],
    ['missing cores', { ...minimal, coresPerNode: undefined }, /coresPerNode: must be a positive integer/],
    ['bad port', { ...minimal, schemas: { ssh: { host: 'h', port: 0 } } }, /schemas\.ssh\.port/],
    ['typo key', { ...minimal, coresPerNod: 4 }, /coresPerNod/],
    ['default schema absent', { ...minimal, defaultSchema: 'local' }, /defaultSchema: names 'local'/],
    [
      'sandbox outside roots',
      { ...minimal, validRoots: ['$SCRATCH'], defaultSandbox: '$HOME/x' },
      /defaultSandbox: must lie under/,
    ],
    ['bad mandatory arg', { ...minimal, mandatoryArgs: ['colour'] }, /mandatoryArgs\.0: must be one of/],
    ['bad launch method', { ...minimal, launchMethods: { order: ['QSUB'] } }, /launchMethods\.order\.0/],
    [
      'bad MPI flavor',
      { ...minimal, launchMethods: { order: ['MPIRUN'], options: { MPIRUN: { flavor: 'lam' } } } },
      /launchMethods\.options\.MPIRUN\.flavor: must be openmpi or mpich, got "lam"/,
    ],
    [
      'bad SSH flags',
      { ...minimal, launchMethods: { order: ['SSH'], options: { SSH: { flags: '-p 22' } } } },
      /launchMethods\.options\.SSH\.flags: must be a list of strings/,
    ],
    [
      'bad GPU variable',
      { ...minimal, gpuEnv: ['GPU_IDS'] },
      /gpuEnv\.0: must be one of CUDA_VISIBLE_DEVICES/,
    ],
  ];
  it.each(cases)('%s', (_name, raw, message) => {
    expect(() => parseResourceConfig('x.y', raw)).toThrow(BadParameter);
    expect(() => parseResourceConfig('x.y', raw)).toThrow(message);
  });

  it('unknown keys name the key and the known ones', () => {
    expect(() => getResourceConfig('nowhere.cluster')).toThrow(BadParameter);
    expect(() => getResourceConfig('nowhere.cluster')).toThrow(
      /unknown resource 'nowhere\.cluster'; known resources: .*local\.localhost/,
    );
  });
});

describe('addResourceConfig', () => {
  it('adds from an object with full keys', () => {
    expect(addResourceConfig({ 'mysite.big': minimal })).toEqual(['mysite.big']);
    expect(getResourceConfig('mysite.big').coresPerNode).toBe(16);
    expect(listResources()).toContain('mysite.big');
  });

  it('adds from a <site>.json file, naming entries <site>.<name>', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sortie-res-'));
    const file = path.join(dir, 'resource_campus.json');
    writeFileSync(file, JSON.stringify({ hpc: minimal, gpu: { ...minimal, gpusPerNode: 4 } }));
    expect(addResourceConfig(file)).toEqual(['campus.gpu', 'campus.hpc']);
    expect(getResourceConfig('campus.gpu').gpusPerNode).toBe(4);
  });

  it('is all-or-nothing and names the bad entry', () => {
    expect(() =>
      addResourceConfig({ 'ok.one': minimal, 'bad.two': { ...minimal, coresPerNode: -1 } }),
    ).toThrow(/resource 'bad\.two': coresPerNode/);
    expect(listResources()).not.toContain('ok.one');
  });

  it('refuses bare names in an object and unreadable files', () => {
    expect(() => addResourceConfig({ bare: minimal })).toThrow(/full key '<site>\.bare'/);
    expect(() => addResourceConfig('/nonexistent/site.json')).toThrow(/cannot read resource config/);
  });
});
