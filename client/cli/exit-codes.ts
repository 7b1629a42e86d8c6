/**
 * The CLI's exit codes, so that scripts can tell "units did not all finish DONE" from "bad input" from
 * "the API could not be reached", and the one place that turns an error into a message and a code.
 */
import { BadParameter, DoesNotExist, Timeout } from '../../core/errors.ts';

/** Exit codes of every `sortie` command (README, CLI section). */
export const EXIT = {
  /** Done: for `run` and `watch`, every unit ended DONE. */
  OK: 0,
  /** `run`/`watch`: every unit ended, and at least one ended FAILED or CANCELED. */
  UNITS_NOT_DONE: 1,
  /** Bad input: a workload, an option, an unknown id (the message names it). */
  USAGE: 2,
  /** The API refused or failed (no endpoint, wrong token, network, server error). */
  API: 3,
  /** `run --timeout` or `watch --timeout` was up before every unit ended. */
  TIMEOUT: 4,
  /** Interrupted (Ctrl-C): what ran on the backend keeps running. */
  INTERRUPTED: 130,
} as const;

/** The exit code for an error a command threw. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof BadParameter || err instanceof DoesNotExist) return EXIT.USAGE;
  if (err instanceof Timeout) return EXIT.TIMEOUT;
  // Any other PilotException (PermissionDenied, NoSuccess, …) and anything unexpected: the API side.
  return EXIT.API;
}

/** Runs a command's body: prints an error as `sortie <cmd>: <message>` and exits with its code. */
export async function runCommand(name: string, body: () => Promise<number>): Promise<never> {
  let code: number;
  try {
    code = await body();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`sortie ${name}: ${message}\n`);
    code = exitCodeOf(err);
  }
  // The SDK's pollers and the progress timer would keep the process alive: a command ends here.
  process.exit(code);
}
