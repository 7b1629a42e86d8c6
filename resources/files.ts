/**
 * Resource configurations from files: the I/O half of the resource registry (core/ stays pure). The SDK
 * reads a path given to `session.addResourceConfig` here, on the client's machine, and sends the contents.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BadParameter } from '../core/errors.ts';
import type { ResourceRegistry } from '../core/resource-registry.ts';

/** A config file's contents and the site its bare names belong to. */
export interface ResourceConfigFile {
  /** Resource name → config, as written in the file. */
  configs: Record<string, unknown>;
  /** From the file name: `<site>.json` or RP-style `resource_<site>.json`. */
  site: string;
}

/**
 * Reads a resource config file (`<site>.json` or RP-style `resource_<site>.json`; names inside become
 * `<site>.<name>`). Validation is the registry's job.
 * @throws BadParameter naming the file when it cannot be read, parsed, or is not an object.
 */
export function readResourceConfigFile(file: string): ResourceConfigFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BadParameter(`cannot read resource config '${file}': ${(e as Error).message}`, { cause: e });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new BadParameter(`resource config '${file}' must be a JSON object of resource name → config`);
  return {
    configs: parsed as Record<string, unknown>,
    site: path.basename(file, '.json').replace(/^resource_/, ''),
  };
}

/**
 * Adds resource configurations to `registry` from a path to a JSON file (see
 * {@link readResourceConfigFile}) or from an object whose keys are full `<site>.<name>` keys. All entries
 * are validated before any is added.
 * @returns the keys added, sorted.
 * @throws BadParameter naming the file, or the resource and field.
 */
export function addResourceConfig(
  registry: ResourceRegistry,
  objOrPath: string | Readonly<Record<string, unknown>>,
): string[] {
  if (typeof objOrPath !== 'string') return registry.add(objOrPath);
  const { configs, site } = readResourceConfigFile(objOrPath);
  return registry.add(configs, site);
}
