/**
 * Every listing route pages, on the embedded backend: with a small `limit`, each lists more than one page,
 * `next` leads through all of them (GET /umgrs once dropped it), and the pages together hold every item
 * exactly once; the change feed (`since`) pages the same way. The SDK's paginator (`pageSize`) walks the
 * same pages for sessions' managers, a manager's pilots and a manager's units. A bad `limit` is a 400
 * naming the value.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComputePilot, PilotManager, Session, UnitManager } from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';

let backend: Backend;
let session: Session;
let token: string;
let pmgr: PilotManager;
let umgr: UnitManager;
const pmgrs: string[] = [];
const umgrs: string[] = [];
let pilots: string[] = [];
let units: string[] = [];

interface PageBody {
  items: { uid: string }[];
  cursor: string;
  next?: string;
}

async function get(path: string, query: Record<string, string>): Promise<{ status: number; body: unknown }> {
  const url = new URL(`${backend.apiUrl}/sessions/${session.uid}${path}`);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

/** Walks a route page by page over raw HTTP; returns the pages' uids and the last cursor. */
async function walk(
  path: string,
  query: Record<string, string>,
): Promise<{ pages: string[][]; cursor: string }> {
  const pages: string[][] = [];
  let next: string | undefined;
  let cursor = '';
  do {
    const r = await get(path, { ...query, ...(next ? { next } : {}) });
    expect(r.status).toBe(200);
    const page = r.body as PageBody;
    pages.push(page.items.map((i) => i.uid));
    if (page.cursor > cursor) cursor = page.cursor; // an empty last page repeats `since`
    next = page.next;
  } while (next);
  return { pages, cursor };
}

beforeAll(async () => {
  backend = await startBackend();
  session = await Session.create({ endpoint: backend.apiUrl, pageSize: 2 });
  token = session.token;
  for (let i = 0; i < 3; i++) {
    const p = await PilotManager.create(session);
    pmgrs.push(p.uid);
    const u = await UnitManager.create(session, 'direct_submission');
    umgrs.push(u.uid);
  }
  pmgr = (await session.getPilotManagers([pmgrs[0] as string]))[0] as PilotManager;
  umgr = (await session.getUnitManagers([umgrs[0] as string]))[0] as UnitManager;
  // Three pilots, one of which runs five short units; then all final, so that no feed moves during the walks.
  const submitted = await pmgr.submitPilots(
    [1, 2, 3].map(() => ({ resource: 'local.localhost', runtime: 5, cores: 1 })),
  );
  pilots = submitted.map((p) => p.uid);
  await umgr.addPilots(submitted[0] as ComputePilot);
  const submittedUnits = await umgr.submitUnits(
    [1, 2, 3, 4, 5].map((i) => ({ executable: '/bin/true', arguments: [String(i)] })),
  );
  units = submittedUnits.map((u) => u.uid);
  await umgr.waitUnits({ timeout: 120 });
  await pmgr.cancelPilots();
  await pmgr.waitPilots({ timeout: 60 });
});

afterAll(async () => {
  await session?.close({ timeout: 20 });
  await backend?.close();
});

describe('every listing route pages through next', () => {
  const routes = () =>
    [
      ['GET /pmgrs', '/pmgrs', {}, pmgrs],
      ['GET /umgrs', '/umgrs', {}, umgrs],
      ['GET /pilots', '/pilots', { pmgr: pmgr.uid }, pilots],
      ['GET /umgrs/{umid}/units', `/umgrs/${umgr.uid}/units`, {}, units],
    ] as const;

  it('limit=2: more than one page, every item once', async () => {
    for (const [name, path, query, all] of routes()) {
      const { pages } = await walk(path, { ...query, limit: '2' });
      expect(pages.length, name).toBeGreaterThan(1);
      expect(
        pages.every((p) => p.length <= 2),
        name,
      ).toBe(true);
      expect(pages.flat().sort(), name).toEqual([...all].sort());
    }
  });

  it('the change feed (since) pages the same way', async () => {
    for (const [name, path, query, all] of routes()) {
      // Everything changed after the first item, one per page (DynamoDB may end with an empty page).
      const first = (await get(path, { ...query, limit: '1' })).body as PageBody;
      const rest = await walk(path, { ...query, limit: '1', since: first.cursor });
      expect(rest.pages.filter((p) => p.length).length, name).toBe(all.length - 1);
      expect([first.items[0]?.uid, ...rest.pages.flat()].sort(), name).toEqual([...all].sort());
      // Nothing changed since the last page's cursor.
      const after = (await get(path, { ...query, since: rest.cursor })).body as PageBody;
      expect(after.items, name).toEqual([]);
    }
  });

  it('a bad limit is a 400 naming the value', async () => {
    for (const limit of ['0', '1001', 'ten', '-1', '2.5']) {
      const r = await get('/umgrs', { limit });
      expect(r.status, limit).toBe(400);
      expect(JSON.stringify(r.body), limit).toContain(
        `limit: must be a whole number from 1 to 1000, got \\"${limit}\\"`,
      );
    }
  });
});

describe("the SDK's paginator (pageSize 2) lists every page", () => {
  it('managers, pilots and units, in more than one request each', async () => {
    const gets = (suffix: string) =>
      Object.entries(session.transport.requests)
        .filter(([k]) => k.startsWith('GET ') && k.endsWith(suffix))
        .reduce((n, [, v]) => n + v, 0);
    const suffixes = ['/pmgrs', '/umgrs', '/pilots', '/units'];
    const before = Object.fromEntries(suffixes.map((x) => [x, gets(x)]));
    const count = (suffix: string) => gets(suffix) - (before[suffix] ?? 0);
    expect((await session.listPilotManagers()).sort()).toEqual([...pmgrs].sort());
    expect((await session.listUnitManagers()).sort()).toEqual([...umgrs].sort());
    expect((await pmgr.listPilots()).sort()).toEqual([...pilots].sort());
    expect((await umgr.listUnits()).sort()).toEqual([...units].sort());
    // 3 managers at 2 a page: 2 requests; 3 pilots and 5 units through the change feed: 2 and 3 at least.
    expect(count('/pmgrs')).toBe(2);
    expect(count('/umgrs')).toBe(2);
    expect(count('/pilots')).toBeGreaterThanOrEqual(2);
    expect(count('/units')).toBeGreaterThanOrEqual(3);
  });
});
