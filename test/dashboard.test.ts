/**
 * The web dashboard in headless Chromium (Debian's `chromium`, driven by playwright-core) against a live
 * embedded backend: the page is opened before the workload is submitted, so the counts it ends with came
 * from its live feed; they must equal the API's. A screenshot is kept in test/artifacts/ (git-ignored).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComputePilot, DONE, FAILED, PilotManager, Session, UnitManager } from '../client/index.ts';
import { type Backend, startBackend } from '../local/backend.ts';
import { until } from './e2e.ts';

const CHROMIUM = process.env.SORTIE_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = new URL('./artifacts/', import.meta.url);
const missing = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;

let backend: Backend;
let browser: Browser;
let session: Session;
let pilot: ComputePilot;
let umgr: UnitManager;

describe.skipIf(missing)(`web dashboard${missing ? ` (skipped: ${missing})` : ''}`, () => {
  beforeAll(async () => {
    backend = await startBackend();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    session = await Session.create({ endpoint: backend.apiUrl });
    const pmgr = await PilotManager.create(session);
    pilot = await pmgr.submitPilots({ resource: 'local.localhost', runtime: 10, cores: 2 });
    umgr = await UnitManager.create(session, 'direct_submission');
    await umgr.addPilots(pilot);
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await session?.close({ timeout: 30 });
    await backend?.close();
  });

  it('shows the pilots, the units per state, throughput and the timeline, live, as the API has them', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 1100 } });
    const refused: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') refused.push(m.text());
    });
    await page.goto(session.dashboardUrl);
    await page.waitForSelector(`#pilots tr[data-uid="${pilot.uid}"]`, { timeout: 30_000 });
    const units = await umgr.submitUnits([
      ...Array.from({ length: 30 }, (_, i) => ({ executable: '/bin/echo', arguments: [`${i}`] })),
      { executable: '/bin/false' },
      { executable: '/bin/false' },
    ]);
    const states = await umgr.waitUnits({ uids: units.map((u) => u.uid), timeout: 60 });
    expect(states.filter((s) => s === DONE)).toHaveLength(30);
    expect(states.filter((s) => s === FAILED)).toHaveLength(2);
    const count = (state: string) => `#unit-counts [data-state="${state}"] b`;
    // Read from Node, not with a page-side function: the page's CSP forbids eval, as it should.
    await until(
      'the dashboard showing 30 Done and 2 Failed',
      async () =>
        (await page.textContent(count('Done'))) === '30' && (await page.textContent(count('Failed'))) === '2'
          ? true
          : undefined,
      30_000,
      200,
    );
    expect(await page.textContent('#unit-total')).toBe('32');
    expect(await page.textContent(count('Executing'))).toBe('0');
    await pilot.refresh();
    expect(await page.textContent(`#pilots tr[data-uid="${pilot.uid}"] [data-field="state"]`)).toBe(
      pilot.state,
    );
    expect(await page.locator('#timeline rect').count()).toBe(32);
    expect(Number(await page.textContent('#rate-overall'))).toBeGreaterThan(0);
    expect(await page.textContent('#error')).toBe('');
    // Nothing was refused by the page's CSP or failed to load.
    expect(refused).toEqual([]);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('dashboard.png', ARTIFACTS).pathname, fullPage: true });
    await page.close();
  }, 120_000);

  it('says how to open it without a session, and shows the API refusing a wrong token', async () => {
    let page = await browser.newPage();
    await page.goto(`${backend.apiUrl}/dashboard`);
    expect(await page.textContent('#error')).toMatch(/#session=<session id>&token=<session token>/);
    // A new page: only the fragment differs, so the same page would not load again.
    await page.close();
    page = await browser.newPage();
    await page.goto(`${backend.apiUrl}/dashboard#session=${session.uid}&token=wrong`);
    const shown = await until(
      'the refusal shown',
      async () => ((await page.textContent('#error')) || undefined) ?? undefined,
      30_000,
      200,
    );
    expect(shown).toMatch(/\b40[13]\b/);
    await page.close();
  }, 60_000);

  it('serves the page with a CSP that runs only its own script and talks only to its origin', async () => {
    const res = await fetch(`${backend.apiUrl}/dashboard`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'(;|$)/);
    expect(csp).toMatch(/connect-src 'self'/);
  });
});
