/**
 * Creating requests happen once per client request token (header `x-sortie-request-token`, which the
 * SDK sends on every creating call and keeps across its retries). See store/requests.ts for the claim.
 *
 * ```
 *   first:   claim ✓ ── run ── save answer (done)            → answer
 *   repeat:  claim ✗ ── done?    → the first answer, rebuilt; nothing created
 *                     ── pending? → wait for it (bounded), else 504 so the SDK retries later;
 *                                   past its takeoverAt (the first attempt died): take it over and run
 *                     ── failed?  → 409: the first attempt failed midway; nothing is retried blindly
 * ```
 * A request refused with a 4xx created nothing, so its claim is dropped and a repeat runs again. Claims
 * expire after a day (store/requests.ts CLAIM_TTL_SECONDS); a token reused after that runs afresh.
 * A takeover reruns the whole request: what a first attempt that crashed midway had created before it
 * died (it could record neither its answer nor its failure) may then exist twice — the price of not
 * answering 504 forever; a failure the first attempt could still catch ends in 409, as before.
 */
import { createHash } from 'node:crypto';
import { BadParameter, IncorrectState, PilotException, Timeout } from '../../core/errors.ts';
import { canTakeOver } from '../../store/index.ts';
import type { Request } from './http.ts';
import { store } from './store.ts';

/** The header carrying the client request token. */
export const REQUEST_TOKEN_HEADER = 'x-sortie-request-token';

/** How long a repeat waits for a first request still running before it answers 504 (retry later). */
const WAIT_MS = 10_000;

/** How a route saves its answer for a repeat, and rebuilds the answer from what it saved. */
export interface Replay<T> {
  save(answer: T): unknown;
  load(saved: unknown): Promise<T> | T;
  /**
   * The body holds a secret (a password, a private key): leave it out of the stored fingerprint, since a
   * plain hash of a weak password can be guessed offline. A reused token is then not checked for a body.
   */
  secretBody?: boolean;
}

/** A replay that saves the answer as it is (small answers without secrets). */
export const asIs = <T>(): Replay<T> => ({ save: (a) => a, load: (s) => s as T });

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

/** The request token of `req`, checked; undefined when the caller sent none. */
export function requestToken(req: Request): string | undefined {
  const token = req.headers[REQUEST_TOKEN_HEADER];
  if (token === undefined) return undefined;
  if (!/^[A-Za-z0-9_-]{16,128}$/.test(token))
    throw new BadParameter(
      `header ${REQUEST_TOKEN_HEADER}: must be 16-128 of [A-Za-z0-9_-], got ${JSON.stringify(token.slice(0, 80))}`,
    );
  return token;
}

/**
 * Runs `run` once per request token within `scope` (a session id, or `-` for session creation). Without
 * a token it just runs. The token is stored only hashed: for POST /sessions it is as good as a credential.
 */
export async function once<T>(
  req: Request,
  scope: string,
  replay: Replay<T>,
  /**
   * The request's work. `settled(answer)`, when it calls it, records the answer at once instead of after
   * `run` returns: for work whose answer is certain before its last step (a submission's units are
   * written, their queueing is left), so that recording it overlaps that step. Once called, the claim is
   * done whatever `run` does next.
   */
  run: (settled: (answer: T) => void) => Promise<T>,
): Promise<T> {
  const token = requestToken(req);
  if (token === undefined) return run(() => {});
  const key = `${scope}#${sha256(token)}`;
  const fingerprint = `${req.event.routeKey} ${replay.secretBody ? '-' : sha256(JSON.stringify(req.body))}`;
  const s = store();
  let waited = 0;
  let won = await s.claimRequest(key, fingerprint);
  while (!won.claimed) {
    const claim = won.claim;
    if (claim.fingerprint !== fingerprint)
      throw new BadParameter(
        `header ${REQUEST_TOKEN_HEADER}: already used for a different request (${claim.fingerprint.split(' ').slice(0, 2).join(' ')}); send a new token per request`,
      );
    if (claim.status === 'done') return replay.load(claim.result);
    if (claim.status === 'failed')
      throw new IncorrectState(
        `request ${REQUEST_TOKEN_HEADER} ${token.slice(0, 8)}…: its first attempt failed midway (${String(claim.result)}); nothing was retried — list what exists before submitting again with a new token`,
      );
    // Pending: its first attempt runs, or died without settling. Past `takeoverAt` it is certainly dead
    // (every creating function has timed out by then): take the claim over and run the request here.
    if (canTakeOver(claim, Date.parse(s.now()))) {
      won = await s.claimRequest(key, fingerprint);
      continue;
    }
    if (waited >= WAIT_MS)
      throw new Timeout(`request with this ${REQUEST_TOKEN_HEADER} is still being processed; retry later`);
    await new Promise((r) => setTimeout(r, 200));
    waited += 200;
    const seen = await s.getRequest(key);
    // Dropped (its first attempt failed cleanly) or expired meanwhile: claim it.
    won = seen ? { claimed: false, claim: seen } : await s.claimRequest(key, fingerprint);
  }
  const { attempt } = won;
  let early: Promise<boolean> | undefined;
  const settled = (a: T) => {
    early ??= s.settleRequest(key, attempt, 'done', replay.save(a));
    early.catch(() => {}); // awaited below
  };
  let answer: T;
  try {
    answer = await run(settled);
  } catch (err) {
    // Settled early: the work the answer names exists, and a repeat gets that answer.
    if (early) {
      await early.catch(() => {});
      throw err;
    }
    const status = err instanceof PilotException ? err.httpStatus : 500;
    // A 4xx is decided before anything is created: let a repeat run again. Anything else may have
    // created part of the request: a repeat must not create it twice.
    if (status < 500) await s.releaseRequest(key, attempt);
    else
      await s.settleRequest(
        key,
        attempt,
        'failed',
        err instanceof Error ? err.message.slice(0, 500) : 'error',
      );
    throw err;
  }
  // False only when a repeat took the claim over (this attempt outlived `takeoverAt`): the answer stands.
  await (early ?? s.settleRequest(key, attempt, 'done', replay.save(answer)));
  return answer;
}
