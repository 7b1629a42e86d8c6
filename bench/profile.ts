/**
 * Optional CPU profile of one bench phase in this process (`--profile`): the V8 profiler through
 * node:inspector, summarised as self time per package or project directory, which is what tells where
 * a unit's time goes (DynamoDB emulator, SDK, handlers, client change feed, JSON, GC).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time share (%) per package (`node_modules/<pkg>`), project directory, or Node internal. */
export function summarize(profile: Profile, top = 20): [string, number][] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const frame = byId.get(id)?.callFrame;
    const url = frame?.url ?? '';
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
    const key =
      pkg ??
      (url.includes('/work/') || url.startsWith('file:')
        ? (url.split('/').slice(-2, -1)[0] ?? url)
        : url.startsWith('node:')
          ? url
          : frame?.functionName || '(native)');
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => [k, Math.round((v / total) * 1000) / 10]);
}

/** Starts profiling; the returned function stops, writes `file` and returns the summary. */
export async function startProfile(file: string): Promise<() => Promise<[string, number][]>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = (await session.post('Profiler.stop')) as { profile: Profile };
    session.disconnect();
    writeFileSync(file, JSON.stringify(profile));
    return summarize(profile);
  };
}
