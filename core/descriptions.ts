/**
 * ComputePilotDescription and ComputeUnitDescription (RP 0.22 §1.4, §1.7) as zod schemas, and the parsers
 * every entry point uses. Keys are camelCase (the SDK's idiom); RP's snake_case spellings are accepted
 * and renamed first. Unknown keys are refused, as RP's non-extensible `Attributes` did, so a typo never
 * silently becomes a default.
 */
import { z } from 'zod';
import { BadParameter } from './errors.ts';
import {
  expandLists,
  parseShorthand,
  type StagingDirectiveInput,
  stagingDirectiveSchema,
} from './staging.ts';

export {
  basename,
  StagingAction,
  type StagingDirective,
  type StagingDirectiveInput,
  StagingFlag,
} from './staging.ts';

const POSITIVE = 'must be a positive integer';
const positiveInt = z.number({ error: POSITIVE }).int({ error: POSITIVE }).positive({ error: POSITIVE });
const countInt = z
  .number({ error: 'must be a non-negative integer' })
  .int({ error: 'must be a non-negative integer' })
  .nonnegative({ error: 'must be a non-negative integer' });
const str = z.string({ error: 'must be a string' });
const nonEmpty = str.min(1, { error: 'must be a non-empty string' });
const bool = z.boolean({ error: 'must be true or false' });
const strings = z.array(str, { error: 'must be a list of strings' });
const staging = z.array(stagingDirectiveSchema, { error: 'must be a list of staging directives' });

/** Schema of a ComputePilotDescription (camelCase keys). */
export const computePilotDescriptionSchema = z.strictObject(
  {
    /** Resource-config key, e.g. `local.localhost`. */
    resource: nonEmpty,
    /** Walltime in minutes. */
    runtime: positiveInt,
    cores: positiveInt,
    /** MB. */
    memory: positiveInt.optional(),
    queue: str.optional(),
    project: str.optional(),
    sandbox: str.optional(),
    cleanup: bool.optional(),
    /** `ssh`, `gsissh`, `local`, … (a string; RP registered it as BOOL by mistake). */
    accessSchema: str.optional(),
    /** Extension (RP 1.x). */
    gpus: countInt.optional(),
    /** Extension (RP 1.x). */
    nodes: positiveInt.optional(),
    /**
     * Extension (RP has none): seconds the agent has to call in once the batch system reports the job
     * running; default the resource's `activateTimeout`. A queue wait never counts against it.
     */
    activateTimeout: positiveInt.optional(),
    /**
     * Extension (RP has none): seconds the pilot's job may wait queued before the pilot fails (and its
     * job is cancelled); default as long as the batch system keeps it, up to the resource's
     * `maxQueueTimeout` (7 days unless the resource says otherwise), which it may not exceed.
     */
    queueTimeout: positiveInt.optional(),
  },
  { error: 'must be an object' },
);

/** Schema of a ComputeUnitDescription (camelCase keys; staging shorthand already expanded). */
export const computeUnitDescriptionSchema = z.strictObject(
  {
    executable: nonEmpty,
    arguments: strings.optional(),
    /**
     * RP writes each value into the unit's launch script, so a number stands for its string (`OMP_NUM_THREADS:
     * 4`); `null` means no environment, as RP's `None` (dropped before parsing, see parseUnit).
     */
    environment: z
      .record(str, z.union([str, z.number().transform(String)], { error: 'must be a string or a number' }), {
        error: 'must be an object of string (or number) values',
      })
      .superRefine((env, ctx) => {
        // The launch script exports each name (RP does the same): only shell variable names can be.
        for (const k of Object.keys(env))
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
            ctx.addIssue({
              code: 'custom',
              path: [k],
              message: 'is not a shell variable name (letters, digits and _, not starting with a digit)',
            });
      })
      .optional(),
    cores: positiveInt.default(1),
    mpi: bool.optional(),
    preExec: strings.optional(),
    postExec: strings.optional(),
    inputStaging: staging.optional(),
    outputStaging: staging.optional(),
    name: str.optional(),
    cleanup: bool.optional(),
    stdout: str.optional(),
    stderr: str.optional(),
    /** May be rescheduled if its pilot ends (RP v0.23+). */
    restartable: bool.optional(),
    /** Extension (RP 1.x). */
    gpus: countInt.optional(),
  },
  { error: 'must be an object' },
);

/** A parsed, normalised pilot description. */
export type ComputePilotDescription = z.output<typeof computePilotDescriptionSchema>;
/** A pilot description as a caller writes it. */
export type ComputePilotDescriptionInput = z.input<typeof computePilotDescriptionSchema>;
/** A parsed, normalised unit description: `cores` set, staging directives as full objects. */
export type ComputeUnitDescription = z.output<typeof computeUnitDescriptionSchema>;
/**
 * A unit description as a caller writes it: staging may use the string shorthand, and one directive may
 * stand alone instead of in a list (RP: `cud.input_staging = "/etc/passwd"`).
 */
export type ComputeUnitDescriptionInput = Omit<
  z.input<typeof computeUnitDescriptionSchema>,
  'inputStaging' | 'outputStaging' | 'environment'
> & {
  inputStaging?: StagingDirectiveInput | StagingDirectiveInput[];
  outputStaging?: StagingDirectiveInput | StagingDirectiveInput[];
  environment?: Record<string, string | number> | null;
};

/**
 * Largest unit description (as JSON): a unit travels whole in one SQS message (≤ 256 KiB) and lives in
 * one DynamoDB item (≤ 400 KB) beside its history and output, so a bigger one could never run.
 */
export const MAX_UNIT_DESCRIPTION_BYTES = 128 * 1024;
/** Largest pilot description (as JSON): its fields are names and paths; it shares an item with the pilot's log. */
export const MAX_PILOT_DESCRIPTION_BYTES = 16 * 1024;

/** RP's snake_case spellings (and the deprecated `input_data`/`output_data`) → camelCase keys. */
const PILOT_ALIASES: Readonly<Record<string, string>> = {
  access_schema: 'accessSchema',
  activate_timeout: 'activateTimeout',
  queue_timeout: 'queueTimeout',
};
const UNIT_ALIASES: Readonly<Record<string, string>> = {
  pre_exec: 'preExec',
  post_exec: 'postExec',
  input_staging: 'inputStaging',
  output_staging: 'outputStaging',
  input_data: 'inputStaging',
  output_data: 'outputStaging',
};

type Path = (string | number)[];

/**
 * Parse and normalise one pilot description.
 * @throws BadParameter naming the field path and the offending value.
 */
export function parsePilotDescription(x: unknown): ComputePilotDescription {
  const parsed = parseWith(
    computePilotDescriptionSchema,
    'pilot description',
    renameAliases(x, PILOT_ALIASES, [], 'pilot description'),
    [],
  );
  const bytes = Buffer.byteLength(JSON.stringify(parsed));
  if (bytes > MAX_PILOT_DESCRIPTION_BYTES)
    throw new BadParameter(
      `pilot description: at most ${MAX_PILOT_DESCRIPTION_BYTES} bytes as JSON, got ${bytes}`,
    );
  return parsed;
}

/**
 * Parse and normalise one unit description (aliases renamed, staging shorthand expanded, defaults set).
 * @throws BadParameter naming the field path and the offending value.
 */
export function parseUnitDescription(x: unknown): ComputeUnitDescription {
  return parseUnit(x, []);
}

/**
 * Parse a list of unit descriptions; an error names the list index, e.g.
 * `unit description [3].cores: must be a positive integer, got -2`.
 * @throws BadParameter
 */
export function parseUnitDescriptions(xs: unknown): ComputeUnitDescription[] {
  if (!Array.isArray(xs)) throw new BadParameter(`unit descriptions: must be a list, got ${show(xs)}`);
  return xs.map((x, i) => parseUnit(x, [i]));
}

function parseUnit(x: unknown, base: Path): ComputeUnitDescription {
  const renamed = renameAliases(x, UNIT_ALIASES, base, 'unit description');
  if (isPlainObject(renamed)) {
    // RP's attribute default is None: a description built field by field may carry `environment: null`.
    if (renamed.environment === null) delete renamed.environment;
    for (const key of ['inputStaging', 'outputStaging']) {
      if (key in renamed) renamed[key] = expandStaging(renamed[key], [...base, key]);
    }
  }
  const parsed = parseWith(computeUnitDescriptionSchema, 'unit description', renamed, base);
  const bytes = Buffer.byteLength(JSON.stringify(parsed));
  if (bytes > MAX_UNIT_DESCRIPTION_BYTES) {
    const where = base.length ? ` ${formatPath(base)}` : '';
    throw new BadParameter(
      `unit description${where}: at most ${MAX_UNIT_DESCRIPTION_BYTES} bytes as JSON, got ${bytes}; stage large inputs as files`,
    );
  }
  return parsed;
}

function parseWith<T extends z.ZodType>(schema: T, what: string, x: unknown, base: Path): z.output<T> {
  const r = schema.safeParse(x);
  if (r.success) return r.data;
  throw new BadParameter(r.error.issues.map((issue) => describeIssue(what, x, base, issue)).join('; '), {
    cause: r.error,
  });
}

function describeIssue(what: string, input: unknown, base: Path, issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map((k) => {
        const path = [...issue.path, k];
        return `${what} ${formatPath([...base, ...path])}: unknown key, got ${show(valueAt(input, path))}`;
      })
      .join('; ');
  }
  const value = valueAt(input, issue.path);
  const tail = value === undefined ? 'is required' : `${issue.message}, got ${show(value)}`;
  const where = formatPath([...base, ...issue.path]);
  return where ? `${what} ${where}: ${tail}` : `${what}: ${tail}`;
}

/** Rename snake_case aliases to their camelCase keys; refuses both spellings at once. */
function renameAliases(
  x: unknown,
  aliases: Readonly<Record<string, string>>,
  base: Path,
  what: string,
): unknown {
  if (!isPlainObject(x)) return x;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(x)) {
    const camel = aliases[key] ?? key;
    if (camel in out) {
      throw new BadParameter(
        `${what} ${formatPath([...base, key])}: duplicates ${camel}, got ${show(value)}`,
      );
    }
    out[camel] = value;
  }
  return out;
}

/** A single directive may stand for a list of one (RP does the same); strings become objects. */
function expandStaging(value: unknown, path: Path): unknown {
  const list = typeof value === 'string' || isPlainObject(value) ? [value] : value;
  if (!Array.isArray(list)) return value;
  return list.flatMap((d: unknown, i) => {
    if (typeof d !== 'string') {
      // Lists of sources and targets pair up into one directive per file (RP's expansion).
      const each = expandLists(d);
      if ('error' in each)
        throw new BadParameter(`unit description ${formatPath([...path, i])}: ${each.error}, got ${show(d)}`);
      return each;
    }
    const parsed = parseShorthand(d);
    if ('error' in parsed) {
      throw new BadParameter(`unit description ${formatPath([...path, i])}: ${parsed.error}, got ${show(d)}`);
    }
    return [parsed];
  });
}

/** `[3].inputStaging[0].action`, or `cores` when there is no list index. */
function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

function valueAt(x: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = x;
  for (const p of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function show(v: unknown): string {
  const s = v === undefined ? 'undefined' : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
