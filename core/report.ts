/**
 * What `sortie report` computes from a session's pilot and unit records (pure, so tests can check it on
 * hand-made records): where each unit ran over time, busy cores against the pilots' cores, the figures
 * (units/s, utilization, time to first unit) and a lower bound of the control-plane cost at list prices.
 *
 * Units record the nodes they ran on, not their cores: the timeline puts each unit on the lowest cores of
 * its node that were free when it started, which is a placement the agent's scheduler could have made
 * (it never oversubscribes a node), not necessarily the one it made.
 */
import { type CostBreakdown, plainItemBytes, priceUsage, type Usage, writeUnits } from './pricing.ts';
import { isFinal, PilotState, UnitState, unitModel } from './states.ts';
import type { PilotRecord, UnitRecord } from './wire.ts';

/** One unit's run: from EXECUTING to its final state (ms since the epoch), on a node's core lanes. */
export interface Bar {
  uid: string;
  /** `<pilot> <node>`: the row group it is drawn in. */
  node: string;
  /** First core lane it occupies on that node, and how many. */
  lane: number;
  cores: number;
  start: number;
  end: number;
  state: UnitState;
}

/** A row group of the timeline: one node of one pilot, with as many lanes as it has cores. */
export interface NodeRows {
  node: string;
  cores: number;
}

/** The unit timeline: rows, bars and the time span. */
export interface Timeline {
  nodes: NodeRows[];
  bars: Bar[];
  t0: number;
  t1: number;
}

const ms = (iso: string | undefined) => (iso === undefined ? Number.NaN : Date.parse(iso));

/**
 * When a unit ran (ms since the epoch): the agent's start and end times (`started`, `finished`), else the
 * times its EXECUTING and final states were written (later: reports are batched); `now` for one still
 * running. Undefined if it never ran.
 */
export function runSpan(u: UnitRecord, now: number): { start: number; end: number } | undefined {
  let start = ms(u.started);
  if (!Number.isFinite(start)) start = ms(u.stateHistory.find((h) => h.state === UnitState.EXECUTING)?.time);
  if (!Number.isFinite(start)) return undefined;
  let end = now;
  if (isFinal(unitModel, u.state)) {
    end = ms(u.finished);
    if (!Number.isFinite(end)) end = ms(u.stateHistory.at(-1)?.time);
  }
  return { start, end: Math.max(start, Number.isFinite(end) ? end : now) };
}

/** The rows of a pilot: its nodes with their cores (from the agent's report, else the description). */
export function pilotRows(p: PilotRecord): NodeRows[] {
  const d = p.resourceDetail;
  if (d?.nodeDetails?.length)
    return d.nodeDetails.map((n) => ({ node: `${p.uid} ${n.name}`, cores: n.cores }));
  if (d?.nodes.length) return d.nodes.map((n) => ({ node: `${p.uid} ${n}`, cores: d.coresPerNode }));
  return [];
}

/**
 * Places every unit that ran on the lanes of its node(s): sorted by start, each takes the lowest lanes
 * free at its start (its cores spread evenly over its nodes). Lanes beyond a node's cores appear only
 * if the records overlap more than the node holds (clock skew between reports).
 */
export function timeline(pilots: PilotRecord[], units: UnitRecord[], now: number): Timeline {
  const nodes = pilots.flatMap(pilotRows);
  const freeAt = new Map<string, number[]>(
    nodes.map((n) => [n.node, Array(n.cores).fill(Number.NEGATIVE_INFINITY)]),
  );
  const runs = units
    .map((u) => ({ u, span: runSpan(u, now) }))
    .filter((r): r is { u: UnitRecord; span: { start: number; end: number } } => r.span !== undefined)
    .sort((a, b) => a.span.start - b.span.start || a.u.uid.localeCompare(b.u.uid));
  const bars: Bar[] = [];
  for (const { u, span } of runs) {
    const where = u.execLocations?.length ? u.execLocations : ['?'];
    const per = Math.max(1, Math.ceil(u.description.cores / where.length));
    for (const name of where) {
      const node = `${u.pilot ?? '?'} ${name}`;
      let lanes = freeAt.get(node);
      if (!lanes) {
        lanes = [];
        freeAt.set(node, lanes);
        nodes.push({ node, cores: 0 });
      }
      // The lowest run of `per` lanes free at the start (lanes past the end are free).
      let lane = 0;
      while (!lanes.slice(lane, lane + per).every((t) => t <= span.start)) lane++;
      while (lanes.length < lane + per) lanes.push(Number.NEGATIVE_INFINITY);
      for (let k = lane; k < lane + per; k++) lanes[k] = span.end;
      bars.push({ uid: u.uid, node, lane, cores: per, start: span.start, end: span.end, state: u.state });
    }
  }
  for (const n of nodes) n.cores = Math.max(n.cores, freeAt.get(n.node)?.length ?? 0);
  const t0 = bars.length ? Math.min(...bars.map((b) => b.start)) : now;
  const t1 = bars.length ? Math.max(...bars.map((b) => b.end)) : now;
  return { nodes, bars, t0, t1 };
}

/** A step function: from each point's time on, the value holds until the next point. */
export type Steps = [time: number, value: number][];

function steps(events: [number, number][]): Steps {
  events.sort((a, b) => a[0] - b[0]);
  const out: Steps = [];
  let v = 0;
  for (const [t, d] of events) {
    v += d;
    if (out.length && out[out.length - 1]?.[0] === t) (out[out.length - 1] as [number, number])[1] = v;
    else out.push([t, v]);
  }
  return out;
}

/** Busy cores over time: the sum of the cores of the units running. */
export function busyCores(t: Timeline): Steps {
  return steps(
    t.bars.flatMap((b): [number, number][] => [
      [b.start, b.cores],
      [b.end, -b.cores],
    ]),
  );
}

/** When a pilot could run units: from ACTIVE to its final state (`now` while it lives); undefined if never active. */
export function activeSpan(p: PilotRecord, now: number): { start: number; end: number } | undefined {
  const start = ms(p.stateHistory.find((h) => h.state === PilotState.ACTIVE)?.time);
  if (!Number.isFinite(start)) return undefined;
  const last = p.stateHistory.at(-1);
  const final =
    last && [PilotState.DONE, PilotState.FAILED, PilotState.CANCELED].includes(last.state as never);
  return { start, end: final ? ms(last?.time) : now };
}

/** The pilots' cores over time, counted while each pilot is ACTIVE. */
export function pilotCores(pilots: PilotRecord[], now: number): Steps {
  return steps(
    pilots.flatMap((p): [number, number][] => {
      const s = activeSpan(p, now);
      const cores = p.resourceDetail?.cores ?? p.description.cores;
      return s
        ? [
            [s.start, cores],
            [s.end, -cores],
          ]
        : [];
    }),
  );
}

/** The area under a step function between `from` and `to` (value × ms). */
export function area(s: Steps, from: number, to: number): number {
  let sum = 0;
  for (let i = 0; i < s.length; i++) {
    const [t, v] = s[i] as [number, number];
    const next = s[i + 1]?.[0] ?? to;
    const a = Math.max(t, from);
    const b = Math.min(next, to);
    if (b > a) sum += v * (b - a);
  }
  return sum;
}

/** The session's figures. */
export interface Figures {
  units: number;
  byState: Record<string, number>;
  /** Seconds from the first unit's start to the last unit's end. */
  spanSeconds: number;
  /** Units that ended, per second of that span. */
  unitsPerSecond: number;
  /** Busy core-seconds over the pilots' core-seconds while ACTIVE (0–100). */
  utilizationPercent: number;
  /** Seconds from the first unit's submission to the first unit's start. */
  timeToFirstUnitSeconds: number | undefined;
  busyCoreSeconds: number;
  pilotCoreSeconds: number;
}

/** The figures of a session from its records. */
export function figures(pilots: PilotRecord[], units: UnitRecord[], now: number): Figures {
  const t = timeline(pilots, units, now);
  const byState: Record<string, number> = {};
  for (const u of units) byState[u.state] = (byState[u.state] ?? 0) + 1;
  const ended = units.filter((u) => isFinal(unitModel, u.state) && runSpan(u, now) !== undefined).length;
  const span = (t.t1 - t.t0) / 1000;
  const capacity = pilotCores(pilots, now);
  const windowStart = capacity[0]?.[0] ?? t.t0;
  const windowEnd = Math.max(capacity.at(-1)?.[0] ?? t.t1, t.t1);
  const busy = area(busyCores(t), windowStart, windowEnd) / 1000;
  const offered = area(capacity, windowStart, windowEnd) / 1000;
  const submitted = units.map((u) => ms(u.submitted ?? u.stateHistory[0]?.time)).filter(Number.isFinite);
  return {
    units: units.length,
    byState,
    spanSeconds: span,
    unitsPerSecond: span > 0 ? ended / span : 0,
    utilizationPercent: offered > 0 ? (100 * busy) / offered : 0,
    timeToFirstUnitSeconds:
      t.bars.length && submitted.length ? (t.t0 - Math.min(...submitted)) / 1000 : undefined,
    busyCoreSeconds: busy,
    pilotCoreSeconds: offered,
  };
}

/** Writes a record's history proves: all states entered in one write share its time. */
export function writesOf(history: { time: string }[]): number {
  return new Set(history.map((h) => h.time)).size;
}

/**
 * A lower bound of the session's control-plane cost at list prices (core/pricing.ts), from what its
 * records prove: one DynamoDB write per distinct history time of each unit and pilot, each billed on the
 * table and on the byParent index (which projects whole items) at the record's size, and one Step
 * Functions transition per pilot state entered. Not counted (the records do not show them): reads,
 * feed polls, agent pulls and heartbeats, Lambda, API Gateway and SQS requests.
 */
export function costLowerBound(
  pilots: PilotRecord[],
  units: UnitRecord[],
): { usage: Usage; cost: CostBreakdown | undefined; writes: number } {
  let writes = 0;
  let wru = 0;
  for (const r of [...units, ...pilots]) {
    const n = writesOf(r.stateHistory);
    writes += n;
    wru += n * 2 * writeUnits(plainItemBytes(r as unknown as Record<string, unknown>));
  }
  const usage: Usage = {
    lambda: {},
    httpApi: { requests: 0, billed: 0 },
    dynamo: { calls: writes, wru, rru: 0 },
    sqs: { calls: 0, billed: 0 },
    sfn: { transitions: pilots.reduce((n, p) => n + p.stateHistory.length, 0) },
  };
  return { usage, cost: units.length ? priceUsage(usage, units.length) : undefined, writes };
}
