/**
 * Launch methods (RP's agent LMs) and the unit launch script, pure: given a unit, its slots and the
 * resource's launch configuration, build the bash script the unit runs from and the command that starts it.
 *
 * As in RP a pilot has a task launch method and an MPI launch method, both chosen from the resource
 * config's `launchMethods.order`: a non-MPI unit on the agent's own node is forked (FORK); on another node
 * it is started with the task method (SRUN, or SSH into that node); an MPI unit always goes through the MPI
 * method (MPIRUN, MPIEXEC, SRUN, IBRUN, APRUN, JSRUN), which the script calls on the agent's node.
 */
import type { Slot } from '../core/slots.ts';

/** Methods that start one process on another node of the allocation. */
export const TASK_METHODS = ['SRUN', 'SSH'] as const;
/** Methods that start MPI ranks over the unit's slots. */
export const MPI_METHODS = ['MPIRUN', 'MPIEXEC', 'SRUN', 'IBRUN', 'APRUN', 'JSRUN'] as const;
/** A task launch method for other nodes. */
export type TaskMethod = (typeof TASK_METHODS)[number];
/** An MPI launch method. */
export type MpiMethod = (typeof MPI_METHODS)[number];
/** Any method a unit can end up with. */
export type Method = 'FORK' | TaskMethod | MpiMethod;
/** MPI implementations whose mpirun/mpiexec differ in flags (OpenMPI's `-host`/`-x`, MPICH's `-hosts`). */
export type MpiFlavor = 'openmpi' | 'mpich';

/** The launch part of a resource config, as the launcher hands it to the agent. */
export interface LaunchConfig {
  order: readonly string[];
  /**
   * Per method: MPIRUN/MPIEXEC `{ flavor: 'openmpi' | 'mpich' }`, SSH `{ flags: string[] }`, SRUN
   * `{ mpi: 'pmix' }` (srun's `--mpi` plugin for MPI units, where the site's MpiDefault is not the one).
   */
  options?: Readonly<Record<string, Readonly<Record<string, unknown>> | undefined>>;
}

/** The methods of a pilot, as chosen from its resource config. */
export interface Methods {
  task?: TaskMethod;
  mpi?: MpiMethod;
  mpiFlavor: MpiFlavor;
  sshFlags: string[];
  /** srun's `--mpi` plugin for MPI units (SRUN's `mpi` option); unset: the site's MpiDefault. */
  srunMpi?: string;
  /** The config's order, for reasons. */
  order: readonly string[];
}

/**
 * Picks the task and MPI methods: the first of `order` that can do each (RP's `task_launch_method` and
 * `mpi_launch_method`). An MPIRUN/MPIEXEC `flavor` option other than openmpi or mpich is refused.
 */
export function chooseMethods(cfg: LaunchConfig = { order: ['FORK'] }): Methods {
  const task = cfg.order.find((m): m is TaskMethod => (TASK_METHODS as readonly string[]).includes(m));
  const mpi = cfg.order.find((m): m is MpiMethod => (MPI_METHODS as readonly string[]).includes(m));
  const flavor = (mpi && cfg.options?.[mpi]?.flavor) ?? 'openmpi';
  if (flavor !== 'openmpi' && flavor !== 'mpich')
    throw new Error(
      `launchMethods.options.${mpi}.flavor: must be openmpi or mpich, got ${JSON.stringify(flavor)}`,
    );
  const flags = cfg.options?.SSH?.flags ?? [];
  if (!Array.isArray(flags) || !flags.every((f) => typeof f === 'string'))
    throw new Error(
      `launchMethods.options.SSH.flags: must be a list of strings, got ${JSON.stringify(flags)}`,
    );
  const srunMpi = cfg.options?.SRUN?.mpi;
  if (srunMpi !== undefined && (typeof srunMpi !== 'string' || !/^[\w.-]+$/.test(srunMpi)))
    throw new Error(
      `launchMethods.options.SRUN.mpi: must be an srun --mpi plugin name such as pmix, got ${JSON.stringify(srunMpi)}`,
    );
  return {
    ...(task ? { task } : {}),
    ...(mpi ? { mpi } : {}),
    mpiFlavor: flavor,
    sshFlags: flags as string[],
    ...(srunMpi ? { srunMpi } : {}),
    order: cfg.order,
  };
}

/** Quotes one word for bash in single quotes (nothing expands): for values Sortie itself writes. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Quotes one executable or argument as RP's agent does: inside double quotes, so that `$VAR`, `${VAR}`
 * and `$(cmd)` expand in the unit's environment; only a double quote in the word is escaped.
 */
export function rpQuote(s: string): string {
  return `"${s.replace(/"/g, '\\"')}"`;
}

/** Which method runs a unit: MPI → the MPI method; on the agent's node → FORK; elsewhere → the task method. */
export function methodFor(
  mpi: boolean,
  slots: readonly Slot[],
  localNode: number,
  m: Methods,
): { method: Method } | { error: string } {
  if (mpi) {
    if (!m.mpi)
      return {
        error: `unit is MPI (mpi: true), but the resource has no MPI launch method (launchMethods.order: ${m.order.join(', ')}); it is not run as a single process`,
      };
    return { method: m.mpi };
  }
  if (slots[0]?.node === localNode) return { method: 'FORK' };
  if (!m.task)
    return {
      error: `unit placed on ${slots[0]?.name}, but the resource has no launch method for other nodes (launchMethods.order: ${m.order.join(', ')})`,
    };
  return { method: m.task };
}

const sumCores = (slots: readonly Slot[]) => slots.reduce((n, s) => n + s.cores.length, 0);
const sumGpus = (slots: readonly Slot[]) => slots.reduce((n, s) => n + s.gpus.length, 0);

/**
 * The line of the launch script that runs the unit's command (`cmd`, already quoted) on its slots.
 * `exported` are the names the script exports, for MPI launchers that do not forward the environment.
 * `nodeOffsets[i]` is the number of cores on nodes before node i (IBRUN's offset).
 */
export function commandLine(
  method: Method,
  slots: readonly Slot[],
  cmd: string,
  opts: {
    mpi: boolean;
    flavor: MpiFlavor;
    exported: readonly string[];
    nodeOffsets?: readonly number[];
    srunMpi?: string;
  },
): string {
  const ranks = sumCores(slots);
  const hosts = slots.map((s) => `${s.name}:${s.cores.length}`).join(',');
  const names = slots.map((s) => s.name).join(',');
  switch (method) {
    case 'FORK':
    case 'SSH':
      return cmd;
    case 'SRUN': {
      // A non-MPI unit is one task holding all its cores.
      if (!opts.mpi)
        return `srun --exclusive --cpu-bind=none --nodes=1 --ntasks=1 --cpus-per-task=${ranks} --nodelist=${names} ${cmd}`;
      // An MPI unit is one task (rank) per core, as many on each node as it has cores there: srun alone
      // would spread the ranks its own way (and the agent's node, where forked units run unseen by SLURM,
      // would get more than its share). Equal shares say so per node; unequal ones list every rank's node
      // in a hostfile (arbitrary distribution), handed over without a file in the sandbox.
      const mpi = opts.srunMpi ? ` --mpi=${opts.srunMpi}` : '';
      const counts = new Set(slots.map((s) => s.cores.length));
      const common = `--exclusive --cpu-bind=none --nodes=${slots.length} --ntasks=${ranks} --cpus-per-task=1${mpi}`;
      if (counts.size === 1)
        return `srun ${common} --ntasks-per-node=${slots[0]?.cores.length} --nodelist=${names} ${cmd}`;
      const each = slots.flatMap((s) => s.cores.map(() => shellQuote(s.name))).join(' ');
      return `env SLURM_HOSTFILE=<(printf '%s\\n' ${each}) srun ${common} --distribution=arbitrary ${cmd}`;
    }
    case 'MPIRUN':
    case 'MPIEXEC': {
      const bin = method === 'MPIRUN' ? 'mpirun' : 'mpiexec';
      if (opts.flavor === 'mpich') return `${bin} -n ${ranks} -hosts ${hosts} ${cmd}`;
      const env = opts.exported.map((v) => `-x ${v}`).join(' ');
      return `${bin} -np ${ranks} -host ${hosts}${env ? ` ${env}` : ''} ${cmd}`;
    }
    case 'IBRUN': {
      // TACC's ibrun places ranks at an offset into the job's task list.
      const s = slots[0];
      const offset = s ? (opts.nodeOffsets?.[s.node] ?? 0) + (s.cores[0] ?? 0) : 0;
      return `ibrun -n ${ranks} -o ${offset} ${cmd}`;
    }
    case 'APRUN': {
      const perNode = Math.max(...slots.map((s) => s.cores.length));
      // ALPS takes node ids: Cray hostnames are nid<zero-padded id>.
      const nids = slots.map((s) => /^nid0*(\d+)$/.exec(s.name)?.[1] ?? s.name).join(',');
      return `aprun -n ${ranks} -N ${perNode} -d 1 -L ${nids} ${cmd}`;
    }
    case 'JSRUN': {
      // One resource set per rank; GPUs shared out evenly among them (jsrun cannot pin uneven sets).
      const gpus = Math.ceil(sumGpus(slots) / ranks);
      return `jsrun --nrs ${ranks} --tasks_per_rs 1 --cpu_per_rs 1 --gpu_per_rs ${gpus} --bind none ${cmd}`;
    }
  }
}

/** What a launch script holds. */
export interface ScriptInput {
  uid: string;
  /** Absolute unit sandbox. */
  sandbox: string;
  stdout: string;
  stderr: string;
  /** Sortie's own variables (RP_*, GPU lists): written in single quotes, exactly as given. */
  rpEnv: Readonly<Record<string, string>>;
  /** The unit description's environment: double quotes, as RP writes it (values may use `$OTHER`). */
  env: Readonly<Record<string, string>>;
  preExec: readonly string[];
  executable: string;
  arguments: readonly string[];
  postExec: readonly string[];
  method: Method;
  mpi: boolean;
  slots: readonly Slot[];
  flavor: MpiFlavor;
  nodeOffsets?: readonly number[];
  /** srun's `--mpi` plugin for MPI units under SRUN. */
  srunMpi?: string;
}

/**
 * The unit's launch script (`launch.sh` in its sandbox), as RP's agent writes it: cd into the sandbox,
 * send output to the unit's files, export the environment, pre_exec, the command with every word in
 * double quotes, post_exec, and exit with the command's code (post_exec sees it as `$RP_RETVAL`).
 * Without post_exec the command replaces the shell (`exec`), saving a process per unit.
 */
export function launchScript(u: ScriptInput): string {
  const exported = [...Object.keys(u.rpEnv), ...Object.keys(u.env)];
  const cmd = [u.executable, ...u.arguments].map(rpQuote).join(' ');
  const line = commandLine(u.method, u.slots, cmd, {
    mpi: u.mpi,
    flavor: u.flavor,
    exported,
    ...(u.nodeOffsets ? { nodeOffsets: u.nodeOffsets } : {}),
    ...(u.srunMpi ? { srunMpi: u.srunMpi } : {}),
  });
  const lines = [
    '#!/bin/bash',
    `# Sortie launch script of ${u.uid} (${u.method}); rerun it by hand with: bash launch.sh`,
    `cd ${shellQuote(u.sandbox)} || exit 1`,
    `exec 1>${shellQuote(u.stdout)} 2>${shellQuote(u.stderr)}`,
    '',
    '# environment',
    ...Object.entries(u.rpEnv).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    ...Object.entries(u.env).map(([k, v]) => `export ${k}=${rpQuote(v)}`),
  ];
  if (u.preExec.length) lines.push('', '# pre_exec', ...u.preExec);
  lines.push('', '# the command');
  if (u.postExec.length === 0) lines.push(`exec ${line}`);
  else lines.push(line, 'RP_RETVAL=$?', '', '# post_exec', ...u.postExec, '', 'exit $RP_RETVAL');
  return `${lines.join('\n')}\n`;
}

/**
 * How the agent starts a unit's script: on its own node (FORK, and every launcher that reaches other nodes
 * itself) with bash; on another node over SSH (`ssh -o BatchMode=yes node 'echo $$ && cd sandbox && exec
 * bash launch.sh'`). The remote shell prints its pid first: sshd starts it as a session leader, so that pid
 * names the unit's whole session there, which {@link remoteKillCommand} kills on cancel (killing the local
 * ssh alone leaves the remote process running, outside the batch system's tracking).
 */
export function spawnCommand(
  method: Method,
  slots: readonly Slot[],
  sandbox: string,
  sshFlags: readonly string[] = [],
): { file: string; args: string[] } {
  if (method === 'SSH') {
    const node = slots[0]?.name ?? '';
    return {
      file: 'ssh',
      args: [
        '-o',
        'BatchMode=yes',
        ...sshFlags,
        node,
        `echo $$ && cd ${shellQuote(sandbox)} && exec bash launch.sh`,
      ],
    };
  }
  return { file: '/bin/bash', args: ['launch.sh'] };
}

/**
 * The command that runs the spawner `program` on `node` for the whole pilot (a per-node executor), through
 * the task method: over SSH, or as one job step that shares the node's cores with the units it starts
 * (`--overlap`, SLURM ≥ 20.11), so that their cores stay the agent's to place. `-k`: the spawner kills its
 * units when this connection closes. Undefined for methods that cannot start a process on one node.
 */
export function executorCommand(
  method: Method,
  node: string,
  program: string,
  sshFlags: readonly string[] = [],
): { file: string; args: string[] } | undefined {
  if (method === 'SSH')
    return {
      file: 'ssh',
      args: ['-o', 'BatchMode=yes', ...sshFlags, node, `exec ${shellQuote(program)} -k`],
    };
  if (method === 'SRUN')
    return {
      file: 'srun',
      args: [
        '--overlap',
        '--nodes=1',
        '--ntasks=1',
        '--cpu-bind=none',
        `--nodelist=${node}`,
        '--job-name=sortie-executor',
        program,
        '-k',
      ],
    };
  return undefined;
}

/** Kills the session `sid` (a unit started over SSH, see {@link spawnCommand}) on `node`. */
export function remoteKillCommand(
  node: string,
  sid: number,
  sshFlags: readonly string[] = [],
): { file: string; args: string[] } {
  return { file: 'ssh', args: ['-o', 'BatchMode=yes', ...sshFlags, node, `pkill -KILL -s ${sid}; true`] };
}
