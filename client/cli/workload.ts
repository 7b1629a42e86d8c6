/**
 * A workload file for `sortie run`: pilot descriptions and unit descriptions with RP's keys (snake_case
 * or camelCase), in YAML or JSON, validated by the SDK's own schemas (core/descriptions.ts) so that an
 * error names the file, the entry and the field before anything is submitted.
 *
 * ```yaml
 * name: sweep                # session name (optional)
 * scheduler: round_robin     # RP's unit manager scheduler (default direct_submission)
 * pilots:
 *   - { resource: local.localhost, runtime: 10, cores: 2 }
 * units:
 *   - executable: /bin/echo
 *     arguments: [hello]
 *     copies: 100            # Sortie's key: this description 100 times (default 1)
 * ```
 */
import { parse as parseYaml } from 'yaml';
import {
  type ComputePilotDescription,
  type ComputeUnitDescription,
  parsePilotDescription,
  parseUnitDescription,
} from '../../core/descriptions.ts';
import { BadParameter } from '../../core/errors.ts';
import { parseScheduler, type SchedulerName } from '../../core/schedulers.ts';

/** A parsed, validated workload. */
export interface Workload {
  name?: string;
  scheduler: SchedulerName;
  pilots: ComputePilotDescription[];
  units: ComputeUnitDescription[];
}

const TOP_KEYS = ['name', 'scheduler', 'pilots', 'units'];
/** Most copies of one entry: a typo such as 1e9 must not build a billion descriptions in memory. */
const MAX_COPIES = 100_000;

const show = (v: unknown) => JSON.stringify(v)?.slice(0, 80) ?? 'undefined';

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Re-throws a description's BadParameter with the file and the entry in front. */
function within<T>(where: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof BadParameter) throw new BadParameter(`${where}: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * Parses a workload file's text (`file` names it in errors; `.json` is read as JSON, anything else as
 * YAML, which also reads JSON).
 * @throws BadParameter naming the file, the entry and the field.
 */
export function parseWorkload(text: string, file: string): Workload {
  let doc: unknown;
  try {
    doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new BadParameter(`${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${String(err)}`);
  }
  if (!isObject(doc)) throw new BadParameter(`${file}: must be a mapping of ${TOP_KEYS.join(', ')}`);
  for (const key of Object.keys(doc))
    if (!TOP_KEYS.includes(key))
      throw new BadParameter(`${file}: ${key}: unknown key (expected ${TOP_KEYS.join(', ')})`);
  const { name, scheduler = 'direct_submission', pilots = [], units } = doc;
  if (name !== undefined && (typeof name !== 'string' || name.length > 128))
    throw new BadParameter(`${file}: name: must be a string of at most 128 characters, got ${show(name)}`);
  if (!Array.isArray(pilots)) throw new BadParameter(`${file}: pilots: must be a list, got ${show(pilots)}`);
  if (!Array.isArray(units) || units.length === 0)
    throw new BadParameter(`${file}: units: must be a non-empty list, got ${show(units)}`);
  const out: ComputeUnitDescription[] = [];
  units.forEach((entry: unknown, i) => {
    const where = `${file}: units[${i}]`;
    let copies = 1;
    let description = entry;
    if (isObject(entry) && 'copies' in entry) {
      const { copies: c, ...rest } = entry;
      if (typeof c !== 'number' || !Number.isInteger(c) || c < 1 || c > MAX_COPIES)
        throw new BadParameter(
          `${where}.copies: must be a whole number from 1 to ${MAX_COPIES}, got ${show(c)}`,
        );
      copies = c;
      description = rest;
    }
    const parsed = within(where, () => parseUnitDescription(description));
    for (let k = 0; k < copies; k++) out.push(parsed);
  });
  return {
    ...(name !== undefined ? { name: name as string } : {}),
    scheduler: within(file, () => parseScheduler(scheduler)),
    pilots: pilots.map((p: unknown, i) => within(`${file}: pilots[${i}]`, () => parsePilotDescription(p))),
    units: out,
  };
}
