/**
 * Per-session quotas over fixed one-minute windows: one counter item per session, quota and minute
 * (`<sessionId>#quota#<name>#<YYYY-MM-DDTHH:MM>`), raised by a conditional ADD that fails when the take
 * would pass the limit. A refused take changes nothing. A counter carries `expires` (the table's TTL
 * attribute) a little after its minute, so DynamoDB drops it itself: a session's purge cannot list them
 * (no index holds them), and past minutes are never read again. The code never relies on the expiry
 * (dynalite keeps them): a counter's minute is in its key.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { BadParameter, Throttled } from '../core/errors.ts';
import { TABLE } from '../stacks/manifest.ts';
import type { StoreContext } from './context.ts';
import { ConditionFailed } from './db.ts';
import { PK } from './keys.ts';

/** Seconds a quota counter is kept after its minute ends before DynamoDB may drop it. */
const QUOTA_KEEP_SECONDS = 120;

/** The counter's `expires` (epoch seconds): a couple of minutes after its minute (`YYYY-MM-DDTHH:MM`). */
function quotaExpiry(minute: string): number {
  return Math.floor(Date.parse(`${minute}:00Z`) / 1000) + 60 + QUOTA_KEEP_SECONDS;
}

/**
 * Take `n` from the session's quota `name` for the current minute, at most `limit` a minute.
 * @throws BadParameter when `n` alone passes the limit; Throttled naming the quota, the limit and what was
 *   asked when this minute has no room left (the SDK retries 429); DatabaseError
 */
export async function takeQuota(
  ctx: StoreContext,
  sessionId: string,
  name: string,
  n: number,
  limit: number,
): Promise<void> {
  const minute = ctx.now().slice(0, 16);
  const refuse = () =>
    new Throttled(
      `session ${sessionId}: at most ${limit} ${name} per minute; asked for ${n} more in minute ${minute}Z; try again in the next minute`,
      { obj: sessionId },
    );
  // More than a whole minute's quota can never be granted: bad input, not a reason to retry.
  if (n > limit)
    throw new BadParameter(`${name}: at most ${limit} per minute per session; this request asks for ${n}`, {
      obj: sessionId,
    });
  try {
    await ctx.db.send(
      'UpdateItem',
      new UpdateCommand({
        TableName: ctx.db.tableName,
        Key: { [PK]: `${sessionId}#quota#${name}#${minute}` },
        UpdateExpression: 'ADD #taken :n SET #kind = :kind, #expires = :expires',
        ConditionExpression: 'attribute_not_exists(#taken) OR #taken <= :room',
        ExpressionAttributeNames: { '#taken': 'taken', '#kind': 'kind', '#expires': TABLE.timeToLive },
        ExpressionAttributeValues: {
          ':n': n,
          ':room': limit - n,
          ':kind': 'quota',
          ':expires': quotaExpiry(minute),
        },
      }),
    );
  } catch (err) {
    if (err instanceof ConditionFailed) throw refuse();
    throw err;
  }
}
