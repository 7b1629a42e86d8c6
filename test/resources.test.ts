import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BadParameter } from '../core/errors.ts';
import {
  checkSandbox,
  getResourceConfig,
  listResources,
  parseResourceConfig,
  SHIPPED_SITES,
} from '../core/resources.ts';
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

describe('pilot sandboxes', () => {
  const local = getResourceConfig('local.localhost');
  it.each(['$HOME/sb', '~/sb', '/tmp/sortie', '/var/tmp/x/y', '//tmp//sb/'])('accepts %s', (sandbox) => {
    expect(() => checkSandbox('local.localhost', local, sandbox)).not.toThrow();
  });
  it.each([
    ['/proc/self', 'must not be under /proc, /sys, /dev'],
    ['//proc/1', 'must not be under'],
    ['/dev/shm/sb', 'must not be under'],
    ['/tmp/./sb', "'.' or '..'"],
    ['$HOME/../../sys', "'.' or '..'"],
    ['/home2/sb', 'valid roots ($HOME, /tmp, /var/tmp)'],
    ['$SCRATCH/sb', 'valid roots'],
    ['tmp/sb', 'absolute'],
    ['/tmp/$(reboot)', 'path characters'],
  ])('refuses %s naming the field and the value', (sandbox, why) => {
    expect(() => checkSandbox('local.localhost', local, sandbox)).toThrow(BadParameter);
    expect(() => checkSandbox('local.localhost', local, sandbox)).toThrow(
      `pilot description.sandbox: '${sandbox}'`,
    );
    expect(() => checkSandbox('local.localhost', local, sandbox)).toThrow(why);
  });
  it('refuses /proc even on a resource without valid roots', () => {
    const open = parseResourceConfig('x.open', {
      description: 'no roots',
      schemas: { local: {} },
      defaultSchema: 'local',
      jobManager: 'fork',
      coresPerNode: 1,
    });
    expect(() => checkSandbox('x.open', open, '/proc/sb')).toThrow('must not be under');
    expect(() => checkSandbox('x.open', open, '/anywhere/sb')).not.toThrow();
  });
});
