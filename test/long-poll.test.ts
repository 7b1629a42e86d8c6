/**
 * Long polls on the change feeds (functions/lib/changes.ts), on the embedded backend: a list request with
 * `wait` is held until a record changes after the client's cursor — woken at once by a write of this
 * process, and by its own re-read when the write came from elsewhere (another Lambda, deployed); a hold
 * that sees nothing new ends with the page as it is; a bad `wait` is a 400 naming it. The SDK's watcher
 * holds its polls while a wait listens (test/sdk.test.ts covers its semantics).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SCHED_BACKFILLING, Session, UnitManager } from '../client/index.ts';
import { feedWritten, heldOn, heldPage, releaseHolds } from '../functions/lib/changes.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { ENV } from '../stacks/manifest.ts';
import { feedOf, Store } from '../store/index.ts';

let backend: Backend;
let session: Session;
let umgr: UnitManager;

interface PageBody {
  items: { uid: string; state: string; changed: string }[];
  cursor: string;
}

async function list(
  query: Record<string, string>,
): Promise<{ status: number; body: PageBody & { error?: { code: string; message: string } } }> {
  const url = new URL(`${backend.apiUrl}/sessions/${session.uid}/umgrs/${umgr.uid}/units`);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const res = await fetch(url, { headers: { authorization: `Bearer ${session.token}` } });
  return { status: res.status, body: (await res.json()) as PageBody };
}

/** The feed's cursor now (everything so far read). */
async function cursorNow(): Promise<string> {
  const r = await list({});
  expect(r.status).toBe(200);
  return r.body.cursor;
}

beforeAll(async () => {
  backend = await startBackend();
  session = await Session.create({ endpoint: backend.apiUrl });
  // Backfilling with no pilot: units wait UNSCHEDULED, so nothing moves unless the test moves it.
  umgr = await UnitManager.create(session, SCHED_BACKFILLING);
  await umgr.submitUnits({ executable: '/bin/true' });
});

afterAll(async () => {
  await session?.close({ timeout: 20 }).catch(() => {});
  await backend?.close();
});

describe('GET …/units?wait=…&newer=… (long poll)', () => {
  it('is held until a unit changes after the cursor, and answers with it (woken by the write)', async () => {
    const cursor = await cursorNow();
    const held = list({ since: cursor, newer: cursor, wait: '15000' });
    await vi.waitFor(() => expect(heldOn(feedOf(session.uid, umgr.uid))).toBe(1), { timeout: 10_000 });
    const added = await umgr.submitUnits({ executable: '/bin/true' });
    const r = await held;
    expect(r.status).toBe(200);
    expect(r.body.items.map((i) => i.uid)).toEqual([added.uid]);
    expect(r.body.cursor > cursor).toBe(true);
  });

  it('a change written by another process (no local wake-up) is found by the held request re-reading', async () => {
    const unit = await umgr.submitUnits({ executable: '/bin/true' });
    const cursor = await cursorNow();
    const held = list({ since: cursor, newer: cursor, wait: '15000' });
    await vi.waitFor(() => expect(heldOn(feedOf(session.uid, umgr.uid))).toBe(1), { timeout: 10_000 });
    // A store of its own, without the backend's observer: as a write from another Lambda would be.
    const elsewhere = new Store({
      tableName: backend.env[ENV.table] as string,
      client: new DynamoDBClient({}),
    });
    const [out] = await elsewhere.transitionUnits(session.uid, [{ uid: unit.uid, target: 'Canceled' }]);
    expect(out?.ok).toBe(true);
    const r = await held;
    expect(r.body.items.map((i) => `${i.uid}:${i.state}`)).toEqual([`${unit.uid}:Canceled`]);
  });

  it('a hold that sees nothing new ends with the page as it is', async () => {
    const cursor = await cursorNow();
    const r = await list({ since: cursor, newer: cursor, wait: '30' });
    expect(r.status).toBe(200);
    expect(r.body.items).toEqual([]);
    expect(r.body.cursor).toBe(cursor);
  });

  it('until=final: changes into other states do not end the hold, one into a final state does', async () => {
    // A feed of our own (heldPage itself), woken by hand: each write re-reads it, as the route's would.
    const parent = `${session.uid}#until-final`;
    const moved = { uid: 'unit.a', state: 'Executing', changed: 'd' };
    const ended = { uid: 'unit.b', state: 'Done', changed: 'e' };
    const pages = [[], [moved], [moved, ended]];
    let reads = 0;
    const held = heldPage(
      parent,
      { ms: 20_000, newer: 'c', final: true },
      async () => ({ items: pages[Math.min(reads++, 2)] ?? [], cursor: 'c' }),
      (state) => state === 'Done',
    );
    await vi.waitFor(() => expect(heldOn(parent)).toBe(1), { timeout: 5_000 });
    feedWritten(parent); // unit.a moved to Executing: read again, held on
    await vi.waitFor(() => expect([reads, heldOn(parent)]).toEqual([2, 1]), { timeout: 5_000 });
    feedWritten(parent); // unit.b ended
    expect((await held).items).toEqual([moved, ended]);
    expect(reads).toBe(3);
    expect(await list({ wait: '10', until: 'done' })).toMatchObject({
      status: 400,
      body: { error: { code: 'BadParameter', message: 'until: must be "final" or absent, got "done"' } },
    });
  });

  it('a bad wait is a 400 naming the field and the value', async () => {
    for (const wait of ['abc', '0', '20001', '-5'])
      expect(await list({ wait })).toMatchObject({
        status: 400,
        body: {
          error: {
            code: 'BadParameter',
            message: `wait: must be a whole number of milliseconds from 1 to 20000, got "${wait}"`,
          },
        },
      });
  });
});

describe('GET …/units?known=… (the overlap in brief)', () => {
  it('answers records changed at or before `known` as uid, cursor and history length; later ones whole', async () => {
    // Prepare: a cursor after the units so far, then one more unit.
    const before = await list({});
    const known = before.body.cursor;
    const [added] = await umgr.submitUnits([{ executable: '/bin/true' }]);
    // Act: the whole feed, with `known` at the cursor read before the new unit.
    const r = await list({ known });
    // Assess: the old units in brief, the new one whole, in the feed's order.
    expect(r.status).toBe(200);
    const old = before.body.items.map((u) => ({
      uid: u.uid,
      changed: u.changed,
      entries: (u as unknown as { stateHistory: unknown[] }).stateHistory.length,
      brief: true,
    }));
    expect(r.body.items.slice(0, -1)).toEqual(old);
    expect(r.body.items.at(-1)).toMatchObject({ uid: added?.uid, state: 'Unscheduled' });
    expect(r.body.items.at(-1)).not.toHaveProperty('brief');
    // An empty cursor (an empty feed's) asks for nothing in brief.
    expect((await list({ known: '' })).body.items.some((u) => 'brief' in u)).toBe(false);
  });

  it('refuses a `known` longer than any cursor, naming it (400)', async () => {
    const r = await list({ known: 'x'.repeat(300) });
    expect(r.status).toBe(400);
    expect(r.body.error?.message).toContain('known: must be a change cursor of at most 256 characters');
  });
});

describe('releaseHolds (the embedded backend calls it as it closes)', () => {
  it('ends every hold at once with the page it read, without reading the feed again', async () => {
    const parent = `${session.uid}#release-test`;
    let reads = 0;
    const page = { items: [], cursor: 'c' };
    const held = heldPage(
      parent,
      { ms: 20_000, newer: 'c' },
      async () => {
        reads++;
        return page;
      },
      () => true,
    );
    await vi.waitFor(() => expect(heldOn(parent)).toBe(1), { timeout: 5_000 });
    releaseHolds();
    // Without the release it would re-read every 100 ms for 20 s, past this test's timeout.
    expect(await held).toBe(page);
    expect(reads).toBe(1);
    expect(heldOn(parent)).toBe(0);
  }, 10_000);
});
