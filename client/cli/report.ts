/**
 * `sortie report [SESSION] [--out DIR]`: the unit timeline and utilization plots (SVG, and PNG through
 * resvg), the figures (units/s, utilization %, time to first unit) and the control-plane cost from the
 * session's counted requests at list prices (with the lower bound its records prove, as a cross-check),
 * printed and written to DIR/report.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { busyCores, costLowerBound, figures, pilotCores, timeline } from '../../core/report.ts';
import type { PilotRecord, UnitRecord } from '../../core/wire.ts';
import { EXIT } from './exit-codes.ts';
import { timelineSvg, utilizationSvg } from './plots.ts';
import { connect, type SessionFlags } from './session-file.ts';
import { pilotsOf, unitsOf } from './session-view.ts';
import { table } from './table.ts';

/** Options of `sortie report`. */
export interface ReportOptions extends SessionFlags {
  out?: string;
}

/** SVG → PNG with resvg (a prebuilt native module); undefined with the reason when it cannot load. */
async function toPng(svg: string): Promise<Buffer | string> {
  try {
    const { Resvg } = await import('@resvg/resvg-js');
    const r = new Resvg(svg, {
      font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
      background: 'white',
    });
    return r.render().asPng();
  } catch (err) {
    return `PNG not written (resvg: ${(err as Error).message})`;
  }
}

const fmt = (n: number | undefined, digits = 1) => (n === undefined ? 'n/a' : n.toFixed(digits));

/** Writes the plots and figures of the session; resolves with the exit code. */
export async function report(sid: string | undefined, opts: ReportOptions): Promise<number> {
  const session = await connect(sid ? { ...opts, session: sid } : opts);
  const pilots: PilotRecord[] = (await pilotsOf(session)).pilots.map((p) => p.asDict());
  const units: UnitRecord[] = (await unitsOf(session)).units.map((u) => u.asDict());
  const now = Date.now();
  const t = timeline(pilots, units, now);
  const f = figures(pilots, units, now);
  const { cost, writes, usage } = costLowerBound(pilots, units);
  const counted = await session.usage(units.length);
  const out = path.resolve(opts.out ?? path.join('sortie-report', session.uid));
  mkdirSync(out, { recursive: true });

  const title = `${session.name ?? session.uid}: ${units.length} units on ${pilots.length} pilot(s)`;
  const plots: [string, string][] = [
    ['timeline', timelineSvg(t, `Unit timeline — ${title}`)],
    [
      'utilization',
      utilizationSvg(busyCores(t), pilotCores(pilots, now), t.t0, t.t1, `Utilization — ${title}`),
    ],
  ];
  const written: string[] = [];
  for (const [name, svg] of plots) {
    writeFileSync(path.join(out, `${name}.svg`), svg);
    written.push(`${name}.svg`);
    const png = await toPng(svg);
    if (typeof png === 'string') process.stderr.write(`sortie report: ${png}\n`);
    else {
      writeFileSync(path.join(out, `${name}.png`), png);
      written.push(`${name}.png`);
    }
  }
  const doc = {
    session: session.uid,
    figures: f,
    controlPlaneCost: {
      usd: counted.cost?.usd ?? 0,
      usdPerMillionUnits: counted.cost?.usdPerMillionUnits ?? 0,
      dominant: counted.cost?.dominant,
      counted: counted.counters,
      lines: counted.cost?.lines ?? [],
    },
    recordsLowerBound: {
      usd: cost?.usd ?? 0,
      usdPerMillionUnits: cost?.usdPerMillionUnits ?? 0,
      proven: { dynamoWrites: writes, dynamoWru: usage.dynamo.wru, sfnTransitions: usage.sfn.transitions },
    },
  };
  writeFileSync(path.join(out, 'report.json'), `${JSON.stringify(doc, null, 2)}\n`);
  written.push('report.json');

  const rows: [string, string][] = [
    [
      'units',
      `${f.units} (${Object.entries(f.byState)
        .map(([s, n]) => `${s} ${n}`)
        .join(', ')})`,
    ],
    ['span (first start → last end)', `${fmt(f.spanSeconds)} s`],
    ['units/s', fmt(f.unitsPerSecond, 2)],
    [
      'utilization',
      `${fmt(f.utilizationPercent)} % (${fmt(f.busyCoreSeconds)} of ${fmt(f.pilotCoreSeconds)} core-s)`,
    ],
    ['time to first unit', `${fmt(f.timeToFirstUnitSeconds)} s`],
    [
      'control-plane cost',
      `$${(counted.cost?.usd ?? 0).toFixed(6)} ($${(counted.cost?.usdPerMillionUnits ?? 0).toFixed(2)} per million units; mostly ${counted.cost?.dominant ?? 'n/a'}) from the session's counted requests at list prices: ${Math.round(counted.counters.lambdaRequests)} Lambda invocations, ${Math.round(counted.counters.httpRequests)} API requests, ${fmt(counted.counters.dynamoWru, 0)} DynamoDB WRU, ${fmt(counted.counters.dynamoRru, 0)} RRU, ${Math.round(counted.counters.sqsCalls)} SQS requests, ${Math.round(counted.counters.sfnTransitions)} Step Functions transitions`,
    ],
    [
      'records prove at least',
      `$${(cost?.usd ?? 0).toFixed(6)}: ${writes} DynamoDB writes, ${usage.sfn.transitions} pilot state transitions`,
    ],
  ];
  process.stdout.write(`${table(['figure', 'value'], rows)}\nwrote ${written.join(', ')} to ${out}\n`);
  return EXIT.OK;
}
