/**
 * Resource configurations (RP §3.3, 1.x shape with camelCase keys): where and how a pilot's agent is started.
 * A resource key is `<site>.<name>`, e.g. `local.localhost`, `nersc.perlmutter`; shipped sites live in
 * `resources/<site>.json`, one object per resource name, and are held, with the ones a session adds, by a
 * {@link ResourceRegistry} (core/resource-registry.ts). Unknown keys are refused (as in the descriptions), so
 * a typo in a config never silently becomes a default.
 */
import { z } from 'zod';
import { BadParameter } from './errors.ts';
import { DEFAULT_MAX_QUEUE_SECONDS } from './job-checks.ts';
import { AGENT_SPAWNERS } from './spawners.ts';

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
    /**
     * Access schemas by name (RP 1.x `schemas`): `ssh` to a login node, `local` (the launcher runs there),
     * or `endpoint` (a user-run `sortie endpoint start` on the login node does the launches: MFA sites).
     */
    schemas: z.strictObject({
      ssh: sshAccessSchema.optional(),
      local: z.strictObject({}).optional(),
      endpoint: z.strictObject({}).optional(),
    }),
    defaultSchema: oneOf(['ssh', 'local', 'endpoint']),
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
    /**
     * Seconds the agent has to call in once the batch system reports its job running (a pilot's own
     * `activateTimeout` wins); default: the deployment's (SORTIE_ACTIVATE_TIMEOUT_SECONDS, 600).
     */
    activateTimeout: positiveInt.optional(),
    /**
     * Longest a pilot's job may wait queued, seconds (a pilot's `queueTimeout` may only be shorter);
     * default 7 days. A job the batch system drops earlier fails its pilot at the next check.
     */
    maxQueueTimeout: positiveInt.optional(),
    /** First job-check interval, seconds (default: the deployment's SORTIE_JOB_CHECK_SECONDS, 30). */
    jobCheckSeconds: positiveInt.optional(),
    /** Cap of the job checks' back-off, seconds (default 600). */
    maxJobCheckSeconds: positiveInt.optional(),
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
    /**
     * Who starts the units on a node (RP's `agent_spawner`): PERSISTENT, a small long-lived spawner the
     * agent compiles on the node with its C compiler (agent/spawner.ts; without a compiler the agent falls
     * back to POPEN and logs why), or POPEN, the agent's own Node spawn per unit.
     */
    agentSpawner: oneOf(AGENT_SPAWNERS).default('PERSISTENT'),
    /**
     * Arm short units ahead (agent/arm-ahead.ts): while units run, the next ones (up to 2 × cores) are
     * marked as possibly started, so each spawns the moment a core frees instead of after a round trip
     * to the control plane. If the agent dies, those it never started end FAILED ("may have started")
     * rather than rescheduled. Default true; false writes every start ahead of its spawn.
     */
    armAhead: z.boolean({ error: 'must be true or false' }).default(true),
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
    // Written into every MPI unit's srun line: a plugin name, nothing the shell would act on.
    const srunMpi = c.launchMethods.options?.SRUN?.mpi;
    if (srunMpi !== undefined && !(typeof srunMpi === 'string' && /^[\w.-]+$/.test(srunMpi)))
      ctx.addIssue({
        code: 'custom',
        path: ['launchMethods', 'options', 'SRUN', 'mpi'],
        message: `must be an srun --mpi plugin name such as pmix, got ${JSON.stringify(srunMpi)}`,
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

/** Kernel and device file systems: no sandbox may be there, whatever a resource's validRoots say. */
const FORBIDDEN_ROOTS = ['/proc', '/sys', '/dev'];
/** Path characters and `$VARIABLES` only: the root is expanded by a shell on the resource. */
const SANDBOX_CHARS = /^[\w.~/${}+-]+$/;

/** True for an absolute, normalized path under /proc, /sys or /dev. */
export function isSystemPath(absolute: string): boolean {
  return underRoots(absolute, FORBIDDEN_ROOTS);
}

/**
 * Checks a pilot description's `sandbox` against its resource, before anything is launched: path
 * characters only, absolute (or `$VAR`/`~` rooted), no `.`/`..` segments (a prefix check is worthless
 * after `/tmp/../proc`), never under /proc, /sys or /dev, and under one of the resource's `validRoots`
 * when it has any. Every resource, local ones included: a fork launcher creates the directory right here.
 * @throws BadParameter naming the field and the value.
 */
export function checkSandbox(resource: string, config: ResourceConfig, sandbox: string): void {
  const bad = (why: string) =>
    new BadParameter(`pilot description.sandbox: '${sandbox}' ${why} (resource '${resource}')`);
  if (!SANDBOX_CHARS.test(sandbox)) throw bad('may only hold path characters and $VARIABLES');
  if (!/^(\/|~|\$)/.test(sandbox)) throw bad('must be an absolute path, or start with ~ or a $VARIABLE');
  const segments = sandbox.split('/');
  if (segments.some((seg) => seg === '.' || seg === '..')) throw bad("must not hold '.' or '..' segments");
  const plain = `/${segments.filter(Boolean).join('/')}`;
  if (sandbox.startsWith('/') && isSystemPath(plain))
    throw bad(`must not be under ${FORBIDDEN_ROOTS.join(', ')}`);
  // `~` is `$HOME` to every shell the launchers use.
  const rooted = sandbox.startsWith('/') ? plain : sandbox.replace(/^~(?=\/|$)/, '$HOME');
  if (config.validRoots.length > 0 && !underRoots(rooted, config.validRoots))
    throw bad(`is not under one of the resource's valid roots (${config.validRoots.join(', ')})`);
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

/** A resource key: `<site>.<name>` (letters, digits, `_`, `-`; the name may hold more dots). */
export const RESOURCE_KEY = /^[A-Za-z0-9][\w-]*\.[\w-][\w.-]*$/;
/** A site name, the `<site>` of a key (also a config file's name without `.json`). */
export const SITE_NAME = /^[A-Za-z0-9][\w-]*$/;
/** Longest resource key accepted: keys end up in table keys. */
export const MAX_RESOURCE_KEY = 128;

/**
 * Validates a resource config file (an object of resource name → config) and returns its entries under
 * their full keys, sorted: names with a dot are full `<site>.<name>` keys, bare names become
 * `<site>.<name>` when `site` is given. Nothing is returned unless every entry is valid.
 * @throws BadParameter naming the bad key or the resource and field.
 */
export function parseResourceFile(file: unknown, site?: string): Array<[string, ResourceConfig]> {
  if (typeof file !== 'object' || file === null || Array.isArray(file))
    throw new BadParameter('a resource config file must be a JSON object of resource name → config');
  if (site !== undefined && !SITE_NAME.test(site))
    throw new BadParameter(
      `resource site ${JSON.stringify(site)}: must be letters, digits, '_' or '-' (the <site> of <site>.<name>)`,
    );
  const entries = Object.entries(file).map(([name, raw]): [string, ResourceConfig] => {
    const key = name.includes('.') ? name : site ? `${site}.${name}` : undefined;
    if (!key)
      throw new BadParameter(
        `resource '${name}': give the full key '<site>.${name}' (or load it from a file named <site>.json)`,
      );
    if (!RESOURCE_KEY.test(key) || key.length > MAX_RESOURCE_KEY)
      throw new BadParameter(
        `resource key ${JSON.stringify(key.slice(0, 200))}: must be <site>.<name> of letters, digits, '_', '-' and '.', at most ${MAX_RESOURCE_KEY} characters`,
      );
    return [key, parseResourceConfig(key, raw)];
  });
  return entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A resource's longest queue wait, seconds: its `maxQueueTimeout`, default 7 days. */
export function maxQueueSeconds(config: ResourceConfig): number {
  return config.maxQueueTimeout ?? DEFAULT_MAX_QUEUE_SECONDS;
}

/**
 * A pilot's `queueTimeout` may not exceed its resource's longest queue wait.
 * @throws BadParameter naming the field, the value and the limit.
 */
export function checkQueueTimeout(resource: string, config: ResourceConfig, queueTimeout?: number): void {
  const max = maxQueueSeconds(config);
  if (queueTimeout !== undefined && queueTimeout > max)
    throw new BadParameter(
      `pilot description.queueTimeout: ${queueTimeout} s exceeds resource '${resource}' maxQueueTimeout of ${max} s`,
    );
}
