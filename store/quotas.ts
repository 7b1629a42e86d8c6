/**
 * Per-session quotas over fixed one-minute windows: one counter item per session, quota and minute
 * (`<sessionId>#quota#<name>#<YYYY-MM-DDTHH:MM>`), raised by a conditional ADD that fails when the take
 * would pass the limit. A refused take changes nothing; counters of past minutes are left (one small
 * item per busy minute; the store uses no TTL, so that both local engines run it).
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { BadParameter, Throttled } from '../core/errors.ts';
import type { StoreContext } from './context.ts';
import { ConditionFailed } from './db.ts';
import { PK } from './keys.ts';

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
        UpdateExpression: 'ADD #taken :n SET #kind = :kind',
        ConditionExpression: 'attribute_not_exists(#taken) OR #taken <= :room',
        ExpressionAttributeNames: { '#taken': 'taken', '#kind': 'kind' },
        ExpressionAttributeValues: { ':n': n, ':room': limit - n, ':kind': 'quota' },
      }),
    );
  } catch (err) {
    if (err instanceof ConditionFailed) throw refuse();
    throw err;
  }
}
