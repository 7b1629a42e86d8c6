/**
 * Resource configurations from files: the I/O half of `core/resources.ts`, which stays pure.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BadParameter } from '../core/errors.ts';
import { addResourceConfig as addConfigs } from '../core/resources.ts';

/**
 * Adds user resource configurations (RP's `Session.add_resource_config`) from a path to a JSON file
 * (`<site>.json` or RP-style `resource_<site>.json`; names inside become `<site>.<name>`) or from an object
 * whose keys are full `<site>.<name>` keys. All entries are validated before any is added.
 * @returns the keys added, sorted.
 * @throws BadParameter naming the file when it cannot be read or parsed, or the resource and field.
 */
export function addResourceConfig(objOrPath: string | Record<string, unknown>): string[] {
  if (typeof objOrPath !== 'string') return addConfigs(objOrPath);
  let file: unknown;
  try {
    file = JSON.parse(readFileSync(objOrPath, 'utf8'));
  } catch (e) {
    throw new BadParameter(`cannot read resource config '${objOrPath}': ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (typeof file !== 'object' || file === null || Array.isArray(file))
    throw new BadParameter(`resource config '${objOrPath}' must be a JSON object of resource name → config`);
  return addConfigs(
    file as Record<string, unknown>,
    path.basename(objOrPath, '.json').replace(/^resource_/, ''),
  );
}
