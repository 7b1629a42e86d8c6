/**
 * Resource configurations (RP §3.3, 1.x shape with camelCase keys): where and how a pilot's agent is started.
 * A resource key is `<site>.<name>`, e.g. `local.localhost`, `nersc.perlmutter`; shipped sites live in
 * `resources/<site>.json`, one object per resource name. Users add their own at runtime with
 * {@link addResourceConfig}. Unknown keys are refused (as in the descriptions), so a typo in a config never
 * silently becomes a default.
 */
import { z } from 'zod';
import llnl from '../resources/llnl.json';
import local from '../resources/local.json';
import ncar from '../resources/ncar.json';
import nersc from '../resources/nersc.json';
import purdue from '../resources/purdue.json';
import tacc from '../resources/tacc.json';
import { BadParameter } from './errors.ts';

/** Batch systems the SSH launcher can drive (`fork` = no batch system, the agent is started detached). */
export const JOB_MANAGERS = ['slurm', 'pbspro', 'torque', 'lsf', 'sge', 'fork'] as const;
/** A batch system name. */
export type JobManagerName = (typeof JOB_MANAGERS)[number];

/** Launch methods known to RP (HEAD list, §3.4); the agent picks the first of `order` it supports. */
export const LAUNCH_METHODS = [
  'FORK',
  'SRUN',
  'MPIRUN',
  'MPIEXEC',
  'IBRUN',
  'JSRUN',
  'APRUN',
  'PRTE',
  'FLUX',
  'SSH',
  'RSH',
] as const;

/** Pilot-description fields a resource may insist on (RP's `mandatory_args`). */
export const MANDATORY_ARGS = ['project', 'queue', 'nodes', 'gpus', 'memory'] as const;

const str = z.string({ error: 'must be a string' });
const nonEmpty = str.min(1, { error: 'must be a non-empty string' });
const strings = z.array(str, { error: 'must be a list of strings' });
const positiveInt = z
  .number({ error: 'must be a positive integer' })
  .int({ error: 'must be a positive integer' })
  .positive({ error: 'must be a positive integer' });
const countInt = z
  .number({ error: 'must be a non-negative integer' })
  .int({ error: 'must be a non-negative integer' })
  .nonnegative({ error: 'must be a non-negative integer' });
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `must be one of ${values.join(', ')}` });

/** SSH access to a resource's login node. */
export const sshAccessSchema = z.strictObject({
  host: nonEmpty,
  port: z.number({ error: 'must be a port number' }).int().min(1).max(65535).optional(),
  /** Login name; the pilot's credentials (`userId`) win over it. */
  user: nonEmpty.optional(),
  /**
   * Pinned host key: `ssh-ed25519 AAAA…` (as in known_hosts) or the bare base64 blob. Without it the first
   * key seen is trusted and recorded (see the SSH launcher's host-key store).
   */
  hostKey: nonEmpty.optional(),
});
/** SSH access to a resource. */
export type SshAccess = z.output<typeof sshAccessSchema>;

/** Schema of one resource configuration. */
export const resourceConfigSchema = z
  .strictObject({
    description: nonEmpty,
    notes: str.optional(),
    /** Access schemas by name (RP 1.x `schemas`): `ssh` to a login node, or `local` (the launcher runs there). */
    schemas: z.strictObject({ ssh: sshAccessSchema.optional(), local: z.strictObject({}).optional() }),
    defaultSchema: oneOf(['ssh', 'local']),
    jobManager: oneOf(JOB_MANAGERS),
    defaultQueue: nonEmpty.optional(),
    /** SLURM only: whether the pilot's queue is a partition (`-p`) or a QOS (`-q`, e.g. Perlmutter). */
    queueAs: oneOf(['partition', 'qos']).default('partition'),
    mandatoryArgs: z.array(oneOf(MANDATORY_ARGS), { error: 'must be a list' }).default([]),
    coresPerNode: positiveInt,
    gpusPerNode: countInt.default(0),
    /**
     * Variables that list a unit's GPU ids (RP's GPU "isolation"): CUDA_VISIBLE_DEVICES for NVIDIA,
     * ROCR_VISIBLE_DEVICES (AMD), ZE_AFFINITY_MASK (Intel).
     */
    gpuEnv: z
      .array(
        oneOf(['CUDA_VISIBLE_DEVICES', 'ROCR_VISIBLE_DEVICES', 'HIP_VISIBLE_DEVICES', 'ZE_AFFINITY_MASK']),
        {
          error: 'must be a list',
        },
      )
      .default(['CUDA_VISIBLE_DEVICES']),
    /**
     * Test beds only: a pilot may ask for more cores or GPUs than its allocation has, and units may share
     * GPUs. Otherwise such a pilot ends FAILED with the reason (RP's agent does the same).
     */
    oversubscribe: z.boolean({ error: 'must be true or false' }).default(false),
    /** MB. */
    memoryPerNode: positiveInt.optional(),
    /**
     * The site hands out whole nodes only: LSF CSM systems take `-nnodes`, SLURM gets `--exclusive`, PBS
     * chunks ask for every core of a node. Otherwise the job asks for exactly the pilot's cores.
     */
    wholeNodes: z.boolean({ error: 'must be true or false' }).default(false),
    /** SGE only: the parallel environment for `-pe <name> <cores>` (site-specific, e.g. `smp`, `omp`). */
    parallelEnvironment: nonEmpty.optional(),
    /** Extra native batch options, one per directive line (e.g. `--constraint=cpu`, `-l job_priority=regular`). */
    batchOptions: strings.default([]),
    /** Where sandboxes may live; `defaultSandbox` and a pilot's `sandbox` must start with one of them. */
    validRoots: strings.default([]),
    /** Sandbox root; the pilot sandbox is `<root>/<session>/<pilot>`. Shell variables expand on the resource. */
    defaultSandbox: nonEmpty.default('$HOME/sortie.sandbox'),
    /** Shell lines run in the job before the agent, e.g. `module load nodejs`. */
    preBootstrap: strings.default([]),
    /** How to run Node.js (≥ 20) on the resource: a command on PATH after preBootstrap, or an absolute path. */
    node: nonEmpty.default('node'),
    launchMethods: z
      .strictObject({
        order: z
          .array(oneOf(LAUNCH_METHODS), { error: 'must be a list' })
          .min(1, { error: 'must not be empty' }),
        options: z.partialRecord(oneOf(LAUNCH_METHODS), z.record(z.string(), z.unknown())).optional(),
      })
      .default({ order: ['FORK'] }),
  })
  .superRefine((c, ctx) => {
    if (!c.schemas[c.defaultSchema])
      ctx.addIssue({
        code: 'custom',
        path: ['defaultSchema'],
        message: `names '${c.defaultSchema}', which is not in schemas`,
      });
    // The agent reads these options; a wrong one would only show when the pilot starts.
    for (const m of ['MPIRUN', 'MPIEXEC'] as const) {
      const flavor = c.launchMethods.options?.[m]?.flavor;
      if (flavor !== undefined && flavor !== 'openmpi' && flavor !== 'mpich')
        ctx.addIssue({
          code: 'custom',
          path: ['launchMethods', 'options', m, 'flavor'],
          message: `must be openmpi or mpich, got ${JSON.stringify(flavor)}`,
        });
    }
    const flags = c.launchMethods.options?.SSH?.flags;
    if (flags !== undefined && !(Array.isArray(flags) && flags.every((f) => typeof f === 'string')))
      ctx.addIssue({
        code: 'custom',
        path: ['launchMethods', 'options', 'SSH', 'flags'],
        message: 'must be a list of strings',
      });
    if (c.validRoots.length > 0 && !underRoots(c.defaultSandbox, c.validRoots))
      ctx.addIssue({
        code: 'custom',
        path: ['defaultSandbox'],
        message: `must lie under one of validRoots (${c.validRoots.join(', ')})`,
      });
  });

/** A validated resource configuration (defaults filled in). */
export type ResourceConfig = z.output<typeof resourceConfigSchema>;
/** A resource configuration as written in a JSON file. */
export type ResourceConfigInput = z.input<typeof resourceConfigSchema>;

/** True if `dir` is one of `roots` or below one (plain string prefix on path segments; variables unexpanded). */
export function underRoots(dir: string, roots: readonly string[]): boolean {
  return roots.some((r) => dir === r || dir.startsWith(r.endsWith('/') ? r : `${r}/`));
}

/** Shipped site files, by site name; a test checks this matches `resources/*.json`. */
export const SHIPPED_SITES: Readonly<Record<string, Record<string, unknown>>> = {
  llnl,
  local,
  ncar,
  nersc,
  purdue,
  tacc,
};

const registry = new Map<string, ResourceConfig>();
let shippedLoaded = false;

function ensureShipped(): void {
  if (shippedLoaded) return;
  // Validate everything first so that a broken shipped file fails loudly and leaves no half-filled registry.
  const parsed = Object.entries(SHIPPED_SITES).flatMap(([site, file]) => entriesOf(file, site));
  for (const [key, config] of parsed) registry.set(key, config);
  shippedLoaded = true;
}

/**
 * Validates one resource configuration. Errors are BadParameter naming the resource and the field,
 * e.g. `resource 'x.y': jobManager: must be one of slurm, pbspro, …`.
 */
export function parseResourceConfig(key: string, raw: unknown): ResourceConfig {
  const r = resourceConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(config)'}: ${i.message}`);
  throw new BadParameter(`resource '${key}': ${issues.join('; ')}`);
}

function entriesOf(file: unknown, site: string | undefined): Array<[string, ResourceConfig]> {
  if (typeof file !== 'object' || file === null || Array.isArray(file))
    throw new BadParameter('a resource config file must be a JSON object of resource name → config');
  return Object.entries(file).map(([name, raw]) => {
    const key = name.includes('.') ? name : site ? `${site}.${name}` : undefined;
    if (!key)
      throw new BadParameter(
        `resource '${name}': give the full key '<site>.${name}' (or load it from a file named <site>.json)`,
      );
    return [key, parseResourceConfig(key, raw)] as [string, ResourceConfig];
  });
}

/**
 * The configuration of a resource key such as `local.slurm`.
 * @throws BadParameter naming the unknown key and listing the known ones.
 */
export function getResourceConfig(key: string): ResourceConfig {
  ensureShipped();
  const c = registry.get(key);
  if (!c) throw new BadParameter(`unknown resource '${key}'; known resources: ${listResources().join(', ')}`);
  return c;
}

/**
 * Adds user resource configurations at runtime (RP's `Session.add_resource_config`), replacing keys that
 * exist. `file` is an object of resource name → config: names with a dot are full `<site>.<name>` keys,
 * bare names become `<site>.<name>` when `site` is given. All entries are validated before any is added.
 * Reading a config from a file is the adapter's job (`resources/files.ts`): core/ does no I/O.
 * @returns the keys added, sorted.
 */
export function addResourceConfig(file: Record<string, unknown>, site?: string): string[] {
  ensureShipped();
  const entries = entriesOf(file, site);
  for (const [key, config] of entries) registry.set(key, config);
  return entries.map(([k]) => k).sort();
}

/** All known resource keys, sorted. */
export function listResources(): string[] {
  ensureShipped();
  return [...registry.keys()].sort();
}
