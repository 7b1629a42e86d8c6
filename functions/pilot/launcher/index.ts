/**
 * Picks the launcher for a resource: SSH resources go through {@link SshLauncher} (any batch system, or
 * fork on the login node); `local` fork resources (`local.localhost`) through the fork-local launcher.
 */
import { BadParameter } from '../../../core/errors.ts';
import type { ResourceConfig } from '../../../core/resources.ts';
import { ForkLocalLauncher } from './fork-local.ts';
import { SshLauncher, type SshLauncherOptions } from './ssh-launcher.ts';
import type { Launcher } from './types.ts';

export { SshLauncher, type SshLauncherOptions } from './ssh-launcher.ts';
export type { JobStatus, Launcher, LaunchRequest, LaunchResult, SshCredentials } from './types.ts';

/**
 * The launcher for a resource config and access schema (the pilot's `accessSchema`, default the
 * resource's `defaultSchema`).
 * @throws BadParameter if the resource lacks that schema, or asks for a batch system without SSH.
 */
export function launcherFor(
  config: ResourceConfig,
  accessSchema: string = config.defaultSchema,
  options: SshLauncherOptions = {},
): Launcher {
  switch (accessSchema) {
    case 'ssh':
      if (!config.schemas.ssh) throw new BadParameter(`resource has no 'ssh' access schema`);
      return new SshLauncher(config, options);
    case 'local':
      if (!config.schemas.local) throw new BadParameter(`resource has no 'local' access schema`);
      // fork-local.ts: the agent as a detached child of this process (local.localhost).
      if (config.jobManager === 'fork')
        return new ForkLocalLauncher(config.defaultSandbox, config.validRoots);
      throw new BadParameter(
        `local access to a ${config.jobManager} resource is not supported: the launcher runs in the cloud; use 'ssh'`,
      );
    case 'endpoint':
      // The pilot Lambdas hand endpoint work to the user's endpoint (functions/pilot/endpoint-launcher.ts);
      // the endpoint itself runs SshLauncher over a LocalTransport.
      throw new BadParameter(
        `resource's 'endpoint' access is served by its endpoint, not launched from here`,
      );
    default:
      throw new BadParameter(`unknown access schema '${accessSchema}'; use 'ssh', 'local' or 'endpoint'`);
  }
}
