/** The batch-system adapters by name. */
import type { JobManagerName } from '../../../../core/resources.ts';
import { fork } from './fork.ts';
import { lsf } from './lsf.ts';
import { pbspro, torque } from './pbs.ts';
import { sge } from './sge.ts';
import { slurm } from './slurm.ts';
import type { JobManager } from './types.ts';

export type { BatchJobSpec, JobManager } from './types.ts';

const ALL: Readonly<Record<JobManagerName, JobManager>> = { slurm, pbspro, torque, lsf, sge, fork };

/** The adapter for a resource config's `jobManager`. */
export function jobManagerFor(name: JobManagerName): JobManager {
  return ALL[name];
}
