import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BadParameter } from '../core/errors.ts';
import { ResourceRegistry, SHIPPED_ALIASES, SHIPPED_SITES } from '../core/resource-registry.ts';
import { checkSandbox, parseResourceConfig } from '../core/resources.ts';
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
  it('every resources/<site>.json is imported by core/resource-registry.ts', () => {
    const files = readdirSync(resourcesDir)
      .filter((f) => f.endsWith('.json') && f !== 'aliases.json')
      .map((f) => f.replace(/\.json$/, ''))
      .sort();
    expect(Object.keys(SHIPPED_SITES).sort()).toEqual(files);
  });

  it('every shipped file validates, entry by entry', () => {
    for (const f of readdirSync(resourcesDir).filter((n) => n.endsWith('.json') && n !== 'aliases.json')) {
      const site = f.replace(/\.json$/, '');
      const file = JSON.parse(readFileSync(path.join(resourcesDir, f), 'utf8')) as Record<string, unknown>;
      for (const [name, raw] of Object.entries(file)) {
        expect(() => parseResourceConfig(`${site}.${name}`, raw)).not.toThrow();
      }
    }
  });

  it('lists the local resources and at least one site per batch system', () => {
    const registry = ResourceRegistry.shipped();
    const keys = registry.list();
    expect(keys).toEqual(expect.arrayContaining(['local.localhost', 'local.ssh', 'local.slurm']));
    const managers = new Set(keys.map((k) => registry.get(k).jobManager));
    for (const m of ['fork', 'slurm', 'pbspro', 'lsf']) expect(managers).toContain(m);
  });

  it('local.localhost is fork without SSH; local.slurm is the test bed over SSH', () => {
    const shipped = ResourceRegistry.shipped();
    const l = shipped.get('local.localhost');
    expect(l.jobManager).toBe('fork');
    expect(l.defaultSchema).toBe('local');
    expect(l.schemas.ssh).toBeUndefined();
    const s = shipped.get('local.slurm');
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
      agentSpawner: 'PERSISTENT',
      armAhead: true,
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
      'bad srun MPI plugin',
      { ...minimal, launchMethods: { order: ['SRUN'], options: { SRUN: { mpi: 'pmix; rm -rf ~' } } } },
      /launchMethods\.options\.SRUN\.mpi: must be an srun --mpi plugin name such as pmix, got "pmix; rm -rf ~"/,
    ],
    [
      'unknown agent spawner',
      { ...minimal, agentSpawner: 'SHELL' },
      /agentSpawner: must be one of PERSISTENT, POPEN/,
    ],
    ['arm-ahead not a boolean', { ...minimal, armAhead: 'yes' }, /armAhead: must be true or false/],
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
    const shipped = ResourceRegistry.shipped();
    expect(() => shipped.get('nowhere.cluster')).toThrow(BadParameter);
    expect(() => shipped.get('nowhere.cluster')).toThrow(
      /unknown resource 'nowhere\.cluster'; known resources: .*local\.localhost/,
    );
  });
});

describe('addResourceConfig', () => {
  it('adds from an object with full keys, to that registry only', () => {
    const registry = ResourceRegistry.shipped();
    expect(addResourceConfig(registry, { 'mysite.big': minimal })).toEqual(['mysite.big']);
    expect(registry.get('mysite.big').coresPerNode).toBe(16);
    expect(registry.list()).toContain('mysite.big');
    // No module global: another registry, and a copy taken before, do not see it.
    expect(ResourceRegistry.shipped().has('mysite.big')).toBe(false);
    const before = ResourceRegistry.shipped();
    const after = before.copy();
    after.add({ 'mysite.small': minimal });
    expect(before.has('mysite.small')).toBe(false);
    expect(after.has('mysite.small')).toBe(true);
  });

  it('adds from a <site>.json file, naming entries <site>.<name>', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sortie-res-'));
    const file = path.join(dir, 'resource_campus.json');
    writeFileSync(file, JSON.stringify({ hpc: minimal, gpu: { ...minimal, gpusPerNode: 4 } }));
    const registry = ResourceRegistry.shipped();
    expect(addResourceConfig(registry, file)).toEqual(['campus.gpu', 'campus.hpc']);
    expect(registry.get('campus.gpu').gpusPerNode).toBe(4);
  });

  it('replaces a key that exists, shipped ones included', () => {
    const registry = ResourceRegistry.shipped();
    registry.add({ 'local.localhost': { ...minimal, coresPerNode: 64 } });
    expect(registry.get('local.localhost').coresPerNode).toBe(64);
    expect(ResourceRegistry.shipped().get('local.localhost').coresPerNode).toBe(2);
  });

  it('is all-or-nothing and names the bad entry', () => {
    const registry = ResourceRegistry.shipped();
    expect(() =>
      addResourceConfig(registry, { 'ok.one': minimal, 'bad.two': { ...minimal, coresPerNode: -1 } }),
    ).toThrow(/resource 'bad\.two': coresPerNode/);
    expect(registry.list()).not.toContain('ok.one');
  });

  it('refuses bare names in an object, bad keys and sites, and unreadable files', () => {
    const registry = ResourceRegistry.shipped();
    expect(() => addResourceConfig(registry, { bare: minimal })).toThrow(/full key '<site>\.bare'/);
    expect(() => registry.add({ 'a#b.c': minimal })).toThrow(/resource key "a#b\.c": must be <site>\.<name>/);
    expect(() => registry.add({ [`x.${'y'.repeat(200)}`]: minimal })).toThrow(/at most 128 characters/);
    expect(() => registry.add({ hpc: minimal }, 'no/site')).toThrow(/resource site "no\/site"/);
    expect(() => addResourceConfig(registry, '/nonexistent/site.json')).toThrow(
      /cannot read resource config/,
    );
  });
});

describe('aliases (RP configs/aliases.json)', () => {
  it('localhost stands for local.localhost wherever a name is looked up', () => {
    const registry = ResourceRegistry.shipped();
    expect(SHIPPED_ALIASES.localhost).toBe('local.localhost');
    expect(registry.resolve('localhost')).toBe('local.localhost');
    expect(registry.get('localhost')).toBe(registry.get('local.localhost'));
    expect(registry.has('localhost')).toBe(true);
    // Aliases are not resource keys: list() shows keys only, as RP's list_resources does.
    expect(registry.list()).not.toContain('localhost');
  });

  it('every shipped alias names a shipped key', () => {
    const keys = ResourceRegistry.shipped().list();
    for (const [alias, key] of Object.entries(SHIPPED_ALIASES)) expect(keys, alias).toContain(key);
  });

  it('a registered key wins over an alias of the same name, and a dangling alias is unknown', () => {
    const registry = new ResourceRegistry([], { 'old.name': 'new.name', 'gone.away': 'nowhere.x' });
    registry.add({ 'new.name': minimal, 'old.name': { ...minimal, coresPerNode: 8 } });
    expect(registry.get('old.name').coresPerNode).toBe(8);
    expect(registry.resolve('old.name')).toBe('old.name');
    expect(registry.has('gone.away')).toBe(false);
    expect(() => registry.get('gone.away')).toThrow(/unknown resource 'gone\.away'/);
  });
});

describe('pilot sandboxes', () => {
  const local = ResourceRegistry.shipped().get('local.localhost');
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
