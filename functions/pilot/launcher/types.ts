/**
 * The contract between the pilot Lambdas (launch, finalize) and the ways a pilot's agent is started:
 * fork on this host (`local.localhost`), or over SSH into a batch system (SLURM, PBS, LSF, SGE, fork).
 */

/** SSH credentials for one resource, decrypted only in the launcher's memory. Never logged. */
export interface SshCredentials {
  userId?: string;
  userKey?: string;
  userPass?: string;
}

/** Everything a launcher needs to start one pilot agent. */
export interface LaunchRequest {
  sessionId: string;
  pilotId: string;
  /** Resource key, e.g. `local.localhost`, `local.slurm`. */
  resource: string;
  /** The validated ComputePilotDescription (runtime in minutes, cores, queue, project, sandbox, ...). */
  description: {
    runtime: number;
    cores: number;
    gpus?: number;
    nodes?: number;
    memory?: number;
    queue?: string;
    project?: string;
    sandbox?: string;
    accessSchema?: string;
  };
  /** Path of the self-contained agent bundle (one JS file) on the machine running the launcher. */
  agentBundle: string;
  /** Agent configuration, written into the sandbox as `agent.json` with mode 0600 (holds the pilot secret). */
  agentConfig: Record<string, unknown>;
  credentials?: SshCredentials;
}

/** What a launch leaves behind, stored on the pilot so that cancel and state queries can find the job. */
export interface LaunchResult {
  /** Native job id (SLURM job id, PBS job id, or the agent's PID for fork). */
  jobId: string;
  /** Absolute path of the pilot sandbox on the resource. */
  sandbox: string;
  /**
   * The allocation's nodes as the agent reported them (pilot.resourceDetail), once it activated: the
   * orphan sweep at cancel reaches each of them.
   */
  nodes?: readonly string[];
}

/** A batch job's state as far as the pilot cares. An unknown job id counts as `finished`. */
export interface JobStatus {
  state: 'queued' | 'running' | 'finished';
  /** The batch system's own words (e.g. `PENDING (Resources)`, `TIMEOUT`, exit code), for the pilot log. */
  detail?: string;
}

/** One way of starting agents; one instance per job manager and access schema. */
export interface Launcher {
  launch(req: LaunchRequest): Promise<LaunchResult>;
  cancel(req: LaunchRequest, job: LaunchResult): Promise<void>;
  status(req: LaunchRequest, job: LaunchResult): Promise<JobStatus>;
  /** Last lines of the agent's stdout/stderr in the sandbox, for a FAILED pilot's log. */
  tail(req: LaunchRequest, job: LaunchResult, lines: number): Promise<string>;
}
