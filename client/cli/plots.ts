/**
 * The report's two plots as SVG text, written by hand (no plotting library: two charts of rectangles and
 * a step line do not need one): the unit timeline (units on each node's cores over time, coloured by
 * their final state) and utilization (busy cores over time against the pilots' cores). Axes labelled.
 */
import type { Steps, Timeline } from '../../core/report.ts';

const W = 1000;
const LEFT = 150;
const RIGHT = 20;
const TOP = 56;
const BOTTOM = 72;
const FONT = 'font-family="DejaVu Sans, Arial, sans-serif"';

/** Colours by unit state (final states first; anything else is still running). */
export const STATE_COLOURS: Record<string, string> = {
  Done: '#2e7d32',
  Failed: '#c62828',
  Canceled: '#9e9e9e',
  running: '#1565c0',
};

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** About `count` round tick values from 0 to `max`. */
export function ticks(max: number, count = 8): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = 0; v <= max + 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function frame(
  height: number,
  title: string,
  xLabel: string,
  yLabel: string,
  xMax: number,
  plotH: number,
): string[] {
  const plotW = W - LEFT - RIGHT;
  const parts = [
    `<rect width="${W}" height="${height}" fill="white"/>`,
    `<text x="${LEFT}" y="22" font-size="15" ${FONT}>${esc(title)}</text>`,
    `<line x1="${LEFT}" y1="${TOP + plotH}" x2="${LEFT + plotW}" y2="${TOP + plotH}" stroke="black"/>`,
    `<line x1="${LEFT}" y1="${TOP}" x2="${LEFT}" y2="${TOP + plotH}" stroke="black"/>`,
    `<text x="${LEFT + plotW / 2}" y="${height - 34}" text-anchor="middle" font-size="13" ${FONT}>${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${TOP + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="13" ${FONT}>${esc(yLabel)}</text>`,
  ];
  for (const v of ticks(xMax)) {
    const x = LEFT + (v / (xMax || 1)) * plotW;
    parts.push(
      `<line x1="${x.toFixed(1)}" y1="${TOP + plotH}" x2="${x.toFixed(1)}" y2="${TOP + plotH + 5}" stroke="black"/>`,
      `<text x="${x.toFixed(1)}" y="${TOP + plotH + 18}" text-anchor="middle" font-size="11" ${FONT}>${v}</text>`,
    );
  }
  return parts;
}

function legend(entries: [string, string][], y: number): string[] {
  return entries.flatMap(([label, colour], i) => {
    const x = LEFT + 110 * i;
    return [
      `<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${colour}"/>`,
      `<text x="${x + 16}" y="${y}" font-size="12" ${FONT}>${esc(label)}</text>`,
    ];
  });
}

/** The unit timeline: one row per core of each node, a bar per unit from EXECUTING to its end. */
export function timelineSvg(t: Timeline, title: string): string {
  const rows = t.nodes.reduce((n, x) => n + x.cores, 0);
  const rowH = Math.max(3, Math.min(40, Math.floor(480 / Math.max(1, rows))));
  const plotH = Math.max(rowH, rows * rowH);
  const height = TOP + plotH + BOTTOM;
  const span = Math.max(1e-3, (t.t1 - t.t0) / 1000);
  const plotW = W - LEFT - RIGHT;
  const parts = frame(height, title, 'seconds since the first unit started', 'node / core', span, plotH);
  const firstRow = new Map<string, number>();
  let row = 0;
  for (const n of t.nodes) {
    firstRow.set(n.node, row);
    const y = TOP + row * rowH;
    parts.push(
      `<line x1="${LEFT}" y1="${y}" x2="${LEFT + plotW}" y2="${y}" stroke="#bbb"/>`,
      `<text x="${LEFT - 22}" y="${y + (n.cores * rowH) / 2 + 4}" text-anchor="end" font-size="11" ${FONT}>${esc(n.node)}</text>`,
    );
    if (rowH >= 10)
      for (let c = 0; c < n.cores; c++)
        parts.push(
          `<text x="${LEFT - 6}" y="${y + c * rowH + rowH - 2}" text-anchor="end" font-size="9" fill="#555" ${FONT}>${c > 0 ? c : ''}</text>`,
        );
    row += n.cores;
  }
  for (const b of t.bars) {
    const x = LEFT + ((b.start - t.t0) / 1000 / span) * plotW;
    const w = Math.max(0.8, ((b.end - b.start) / 1000 / span) * plotW);
    const y = TOP + ((firstRow.get(b.node) ?? 0) + b.lane) * rowH;
    const colour = STATE_COLOURS[b.state] ?? STATE_COLOURS.running;
    parts.push(
      `<rect x="${x.toFixed(2)}" y="${(y + 0.5).toFixed(1)}" width="${w.toFixed(2)}" height="${(b.cores * rowH - 1).toFixed(1)}" fill="${colour}" stroke="white" stroke-width="0.3"><title>${esc(`${b.uid} ${b.state}`)}</title></rect>`,
    );
  }
  parts.push(
    ...legend(
      Object.entries(STATE_COLOURS).map(([s, c]) => [s, c] as [string, string]),
      height - 8,
    ),
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}">\n${parts.join('\n')}\n</svg>\n`;
}

/** Utilization: busy cores (filled steps) and the pilots' cores (dashed steps) over time. */
export function utilizationSvg(busy: Steps, capacity: Steps, t0: number, t1: number, title: string): string {
  const plotH = 360;
  const height = TOP + plotH + BOTTOM;
  const plotW = W - LEFT - RIGHT;
  const from = Math.min(t0, capacity[0]?.[0] ?? t0);
  const to = Math.max(t1, capacity.at(-1)?.[0] ?? t1);
  const span = Math.max(1e-3, (to - from) / 1000);
  const yMax = Math.max(1, ...busy.map((s) => s[1]), ...capacity.map((s) => s[1]));
  const parts = frame(height, title, 'seconds since the first pilot became active', 'cores', span, plotH);
  const X = (t: number) => (LEFT + ((t - from) / 1000 / span) * plotW).toFixed(2);
  const Y = (v: number) => (TOP + plotH - (v / yMax) * plotH).toFixed(2);
  for (const v of ticks(yMax, 6)) {
    parts.push(
      `<line x1="${LEFT - 5}" y1="${Y(v)}" x2="${LEFT + plotW}" y2="${Y(v)}" stroke="#ddd"/>`,
      `<text x="${LEFT - 8}" y="${Number(Y(v)) + 4}" text-anchor="end" font-size="11" ${FONT}>${v}</text>`,
    );
  }
  const path = (s: Steps) => {
    if (!s.length) return '';
    let d = `M${X(s[0]?.[0] as number)},${Y(0)}`;
    for (let i = 0; i < s.length; i++) {
      const [t, v] = s[i] as [number, number];
      const next = s[i + 1]?.[0] ?? to;
      d += ` L${X(t)},${Y(v)} L${X(next)},${Y(v)}`;
    }
    return d;
  };
  if (busy.length)
    parts.push(
      `<path d="${path(busy)} L${X(to)},${Y(0)} Z" fill="#1565c0" fill-opacity="0.45" stroke="#1565c0"/>`,
    );
  if (capacity.length)
    parts.push(
      `<path d="${path(capacity)}" fill="none" stroke="#e65100" stroke-width="2" stroke-dasharray="6 4"/>`,
    );
  parts.push(
    ...legend(
      [
        ['busy cores', '#1565c0'],
        ['pilot cores', '#e65100'],
      ],
      height - 8,
    ),
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}">\n${parts.join('\n')}\n</svg>\n`;
}
