/**
 * The web dashboard: one static page, no build step, no external resource. It reads one session through
 * the same API routes the SDK uses (the session id and token come in the URL fragment, which browsers never
 * send to a server), follows each manager's change feed with `since` as the SDK's watcher does, and draws
 * pilots, units per state, throughput and a unit timeline. Served by `GET /dashboard` of the API, so the
 * page and the API share one origin in AWS and in the embedded backend (no CORS to open).
 */

/** The page's script: plain browser JavaScript, kept in a string so the Lambda bundle carries it. */
export const DASHBOARD_SCRIPT = `
'use strict';
const STATES = ['New', 'Unscheduled', 'PendingExecution', 'Scheduling', 'Executing', 'Done', 'Failed', 'Canceled'];
const COLORS = { Executing: '#1f77b4', Done: '#2ca02c', Failed: '#d62728', Canceled: '#7f7f7f' };
const POLL_MS = 1000;
// A record written just before a poll may be stamped before the poll's cursor: look back a little (SDK: 2 s).
const OVERLAP_MS = 2000;
const params = new URLSearchParams(location.hash.slice(1));
const sid = params.get('session');
const token = params.get('token');
const pilots = new Map();
const units = new Map();
const cursors = new Map();
const $ = (id) => document.getElementById(id);

async function get(path) {
  const res = await fetch(path, { headers: { authorization: 'Bearer ' + token } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(res.status + ' ' + (body.message || res.statusText) + ' (' + path + ')');
  return body;
}

function rewind(cursor) {
  const t = Date.parse(String(cursor).split('#')[0]);
  return Number.isNaN(t) ? cursor : new Date(t - OVERLAP_MS).toISOString();
}

/** Every change of one feed since its last cursor, all pages. */
async function follow(key, path, into) {
  const since = cursors.get(key);
  let next;
  do {
    const q = new URLSearchParams();
    if (since) q.set('since', rewind(since));
    if (next) q.set('next', next);
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(path + (q.size ? sep + q : ''));
    for (const r of page.items) {
      const old = into.get(r.uid);
      if (!old || old.changed <= r.changed) into.set(r.uid, r);
    }
    if (!next && page.cursor && (!cursors.get(key) || page.cursor > cursors.get(key))) cursors.set(key, page.cursor);
    next = page.next;
  } while (next);
}

function cell(tr, text) {
  const td = document.createElement('td');
  td.textContent = text == null ? '' : String(text);
  tr.appendChild(td);
  return td;
}

function renderPilots() {
  const body = $('pilots');
  body.replaceChildren();
  for (const p of [...pilots.values()].sort((a, b) => a.uid.localeCompare(b.uid))) {
    const tr = document.createElement('tr');
    tr.dataset.uid = p.uid;
    cell(tr, p.uid);
    cell(tr, p.description.resource);
    cell(tr, p.description.cores);
    cell(tr, p.state).dataset.field = 'state';
    const last = p.stateHistory[p.stateHistory.length - 1];
    cell(tr, last ? last.time : '');
    body.appendChild(tr);
  }
}

function renderCounts() {
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const u of units.values()) counts[u.state] = (counts[u.state] || 0) + 1;
  const box = $('unit-counts');
  box.replaceChildren();
  const total = units.size || 1;
  for (const s of STATES) {
    const row = document.createElement('div');
    row.className = 'count';
    row.dataset.state = s;
    const label = document.createElement('span');
    label.textContent = s;
    const n = document.createElement('b');
    n.textContent = String(counts[s]);
    n.dataset.field = 'n';
    const bar = document.createElement('i');
    bar.style.width = (100 * counts[s]) / total + '%';
    bar.style.background = COLORS[s] || '#bbb';
    row.append(label, n, bar);
    box.appendChild(row);
  }
  $('unit-total').textContent = String(units.size);
}

function renderThroughput() {
  const ends = [...units.values()].filter((u) => u.finished).map((u) => Date.parse(u.finished));
  const starts = [...units.values()].filter((u) => u.started).map((u) => Date.parse(u.started));
  const now = Date.now();
  const recent = ends.filter((t) => t > now - 10000).length / 10;
  const first = Math.min(...starts);
  const last = Math.max(...ends);
  const overall = ends.length && last > first ? ends.length / ((last - first) / 1000) : 0;
  $('rate-recent').textContent = recent.toFixed(1);
  $('rate-overall').textContent = overall.toFixed(1);
}

const SVG = 'http://www.w3.org/2000/svg';
function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text != null) e.textContent = text;
  return e;
}

/** Units as bars from start to end (or now), one row each in start order, coloured by state. */
function renderTimeline() {
  const svg = $('timeline');
  svg.replaceChildren();
  const W = 800, H = 300, L = 60, B = 40, T = 10, R = 10;
  const ran = [...units.values()].filter((u) => u.started).sort((a, b) => a.started.localeCompare(b.started));
  const t0 = ran.length ? Date.parse(ran[0].started) : Date.now();
  const now = Date.now();
  const endOf = (u) => (u.finished ? Date.parse(u.finished) : now);
  const t1 = Math.max(t0 + 1000, ...ran.map(endOf));
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (i) => T + ((i + 0.5) / Math.max(1, ran.length)) * (H - T - B);
  const h = Math.max(1, (H - T - B) / Math.max(1, ran.length) - 1);
  svg.append(el('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#333' }));
  svg.append(el('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#333' }));
  const span = (t1 - t0) / 1000;
  for (let k = 0; k <= 4; k++) {
    const tx = L + (k / 4) * (W - L - R);
    svg.append(el('text', { x: tx, y: H - B + 15, 'text-anchor': 'middle', 'font-size': 11 }, ((k / 4) * span).toFixed(1)));
  }
  svg.append(el('text', { x: (L + W) / 2, y: H - 5, 'text-anchor': 'middle', 'font-size': 12 }, 'time since the first unit started (s)'));
  svg.append(el('text', { x: 15, y: (T + H - B) / 2, 'text-anchor': 'middle', 'font-size': 12, transform: 'rotate(-90 15 ' + (T + H - B) / 2 + ')' }, 'units, in start order (' + ran.length + ')'));
  ran.forEach((u, i) => {
    const r = el('rect', { x: x(Date.parse(u.started)), y: y(i) - h / 2, width: Math.max(1, x(endOf(u)) - x(Date.parse(u.started))), height: h, fill: COLORS[u.state] || '#bbb' });
    r.append(el('title', {}, u.uid + ' ' + u.state));
    svg.append(r);
  });
}

async function poll() {
  const [pmgrs, umgrs] = await Promise.all([get('/sessions/' + sid + '/pmgrs'), get('/sessions/' + sid + '/umgrs')]);
  await Promise.all([
    ...pmgrs.items.map((m) => follow('p:' + m.uid, '/sessions/' + sid + '/pilots?pmgr=' + encodeURIComponent(m.uid), pilots)),
    ...umgrs.items.map((m) => follow('u:' + m.uid, '/sessions/' + sid + '/umgrs/' + encodeURIComponent(m.uid) + '/units', units)),
  ]);
  renderPilots();
  renderCounts();
  renderThroughput();
  renderTimeline();
  $('updated').textContent = new Date().toISOString();
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
}

async function loop() {
  try {
    await poll();
    $('error').textContent = '';
  } catch (err) {
    $('error').textContent = String(err.message || err);
  }
  setTimeout(loop, POLL_MS);
}

if (!sid || !token) {
  $('error').textContent = 'Open this page as /dashboard#session=<session id>&token=<session token> (Session.dashboardUrl in the SDK prints it).';
} else {
  $('session').textContent = sid;
  loop();
}
`;

/** The page's style sheet. */
export const DASHBOARD_STYLE = `
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 1.5em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: left; }
.count { display: grid; grid-template-columns: 11em 5em 1fr; align-items: center; max-width: 40em; }
.count i { display: block; height: 10px; }
#error { color: #b00; } .muted { color: #777; }
`;

/** The whole page; script and style are inline, allowed by hash in the response's CSP. */
export function dashboardHtml(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sortie dashboard</title><link rel="icon" href="data:,">
<style>${DASHBOARD_STYLE}</style></head>
<body>
<h1>Sortie — session <span id="session"></span></h1>
<p id="error"></p>
<p class="muted">updated <span id="updated">never</span></p>
<h2>Pilots</h2>
<table><thead><tr><th>pilot</th><th>resource</th><th>cores</th><th>state</th><th>since</th></tr></thead>
<tbody id="pilots"></tbody></table>
<h2>Units (<span id="unit-total">0</span>)</h2>
<div id="unit-counts"></div>
<h2>Throughput</h2>
<p>last 10 s: <b id="rate-recent">0</b> units/s · whole session: <b id="rate-overall">0</b> units/s</p>
<h2>Timeline</h2>
<svg id="timeline" width="800" height="300" viewBox="0 0 800 300" role="img" aria-label="unit timeline"></svg>
<script>${DASHBOARD_SCRIPT}</script>
</body></html>
`;
}
