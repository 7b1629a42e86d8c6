/**
 * Staging directives (RP 0.22 `staging_directives.py`): the schema of the object form and the parser of
 * the string shorthand. Both end up as one normalised object, so no later stage sees a shorthand.
 */
import { z } from 'zod';
import { STAGING_SCHEME, StagingAction, StagingFlag } from './staging-paths.ts';

export {
  resolveStagingPath,
  STAGING_AREA,
  STAGING_SCHEME,
  StagingAction,
  StagingFlag,
} from './staging-paths.ts';

const ACTIONS = Object.values(StagingAction);
const FLAGS = Object.values(StagingFlag);

/**
 * The object form, normalised with RP's defaults: target = basename(source), action TRANSFER,
 * flags [CreateParents, SkipFailed], priority 0.
 */
export const stagingDirectiveSchema = z
  .strictObject({
    source: z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' }),
    target: z
      .string({ error: 'must be a string' })
      .min(1, { error: 'must be a non-empty string' })
      .optional(),
    action: z
      .enum(ACTIONS, { error: `must be one of ${ACTIONS.join(', ')}` })
      .default(StagingAction.TRANSFER),
    flags: z
      .array(z.enum(FLAGS, { error: `must be one of ${FLAGS.join(', ')}` }), {
        error: 'must be a list of flags',
      })
      .default([StagingFlag.CREATE_PARENTS, StagingFlag.SKIP_FAILED]),
    priority: z.number({ error: 'must be an integer' }).int({ error: 'must be an integer' }).default(0),
    /**
     * The S3 object that carries a Transfer input (set by the SDK after it uploaded the file; checked
     * against the session at submit, core/transfer.ts `inputObjectProblem`).
     */
    object: z
      .strictObject(
        { key: z.string(), size: z.number(), sha256: z.string() },
        { error: 'must be { key, size, sha256 }' },
      )
      .optional(),
  })
  .transform((d) => ({ ...d, target: d.target ?? basename(d.source) }));

/** A normalised staging directive. */
export type StagingDirective = z.output<typeof stagingDirectiveSchema>;
/**
 * A staging directive as a caller may write it: the object form (with lists of sources and targets
 * that pair up, as in RP) or the string shorthand.
 */
export type StagingDirectiveInput =
  | z.input<typeof stagingDirectiveSchema>
  | (Omit<z.input<typeof stagingDirectiveSchema>, 'source' | 'target'> & {
      source: string[];
      target?: string[];
    })
  | string;

/** Last path segment of a path or URL (`sftp://h/a/b.txt` → `b.txt`), as RP does for a missing target. */
export function basename(source: string): string {
  const trimmed = source.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1) || trimmed;
}

/**
 * Parse RP's string shorthand: `'f'` (source f, target basename f), `'a > b'` and `'b < a'` (a → b).
 * Returns the object form, or a reason when the string is not a valid shorthand. `>>`/`<<` (append) are
 * refused: RP 0.22 parsed them but silently ignored the append, which hides a user's mistake.
 */
export function parseShorthand(s: string): { source: string; target?: string } | { error: string } {
  if (s.includes('>>') || s.includes('<<')) {
    return { error: "append ('>>', '<<') is not supported (RP ignored it); use 'a > b' or 'b < a'" };
  }
  const out = s.split('>');
  const into = s.split('<');
  if (out.length > 2 || into.length > 2 || (out.length === 2 && into.length === 2)) {
    return { error: "must be 'f', 'a > b' or 'b < a'" };
  }
  const [source, target] = out.length === 2 ? out : into.length === 2 ? [into[1], into[0]] : [s];
  const src = source?.trim() ?? '';
  const tgt = target?.trim();
  if (!src || tgt === '') return { error: "both sides of '>' or '<' must be non-empty" };
  return tgt === undefined ? { source: src } : { source: src, target: tgt };
}

/**
 * RP lets a directive name several files: `{source: [a, b], target: [c, d]}` pairs them up (a → c,
 * b → d); without a target each keeps its basename. Returns the directives one file each, or why not.
 */
export function expandLists(d: unknown): unknown[] | { error: string } {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) return [d];
  const o = d as Record<string, unknown>;
  if (!Array.isArray(o.source)) {
    return Array.isArray(o.target) ? { error: 'target is a list but source is not' } : [d];
  }
  const sources = o.source;
  if (sources.length === 0) return { error: 'source must not be an empty list' };
  if (o.target !== undefined && !Array.isArray(o.target))
    return { error: 'source is a list, so target must be a list of the same length (or absent)' };
  if (Array.isArray(o.target) && o.target.length !== sources.length)
    return {
      error: `source has ${sources.length} entries and target ${o.target.length}; they pair up, so the lengths must match`,
    };
  const targets = o.target as unknown[] | undefined;
  return sources.map((source, i) => ({ ...o, source, ...(targets ? { target: targets[i] } : {}) }));
}

/** A URL scheme at the start of a path (`sftp://`). */
const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/**
 * Why a directive cannot run, or undefined when it can (checked at submit, so nothing accepted is
 * ignored): remote schemes (`sftp://`, `https://`…) are not built, only `staging:///` and `file://`
 * (a path on the resource). A Transfer moves a file between the user's machine and the resource through
 * S3: an input names the object the SDK uploaded it to (checked against the session by the caller), an
 * output's object is made by the agent, so it must not name one. `field` names the directive, e.g.
 * `inputStaging[0]`.
 */
export function unbuiltDirective(
  d: StagingDirective,
  field: string,
  direction: 'input' | 'output' = 'input',
): string | undefined {
  if (d.action === StagingAction.TRANSFER && direction === 'output' && d.object)
    return `${field}.object: only a Transfer input names an object (the agent makes an output's), got ${JSON.stringify(d.object)}`;
  if (d.action !== StagingAction.TRANSFER && d.object)
    return `${field}.object: only a Transfer names an object, got action ${JSON.stringify(d.action)}`;
  for (const key of ['source', 'target'] as const) {
    const m = SCHEME.exec(d[key]);
    const scheme = m?.[1]?.toLowerCase();
    if (scheme && scheme !== 'file' && d[key].startsWith(STAGING_SCHEME) === false)
      return `${field}.${key}: the ${scheme}:// scheme is not supported (only paths on the resource, file:// and staging:///), got ${JSON.stringify(d[key])}`;
  }
  return undefined;
}
