/**
 * Staging directives (RP 0.22 `staging_directives.py`): the schema of the object form and the parser of
 * the string shorthand. Both end up as one normalised object, so no later stage sees a shorthand.
 */
import { z } from 'zod';

/** Staging actions (RP constants; the values are the wire strings). */
export const StagingAction = { COPY: 'Copy', LINK: 'Link', MOVE: 'Move', TRANSFER: 'Transfer' } as const;
/** A staging action's wire value. */
export type StagingAction = (typeof StagingAction)[keyof typeof StagingAction];

/** Staging flags (RP constants). */
export const StagingFlag = { CREATE_PARENTS: 'CreateParents', SKIP_FAILED: 'SkipFailed' } as const;
/** A staging flag's wire value. */
export type StagingFlag = (typeof StagingFlag)[keyof typeof StagingFlag];

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
  })
  .transform((d) => ({ ...d, target: d.target ?? basename(d.source) }));

/** A normalised staging directive. */
export type StagingDirective = z.output<typeof stagingDirectiveSchema>;
/** A staging directive as a caller may write it (object form; the string shorthand is also accepted). */
export type StagingDirectiveInput = z.input<typeof stagingDirectiveSchema> | string;

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
