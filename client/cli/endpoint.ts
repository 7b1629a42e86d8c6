/**
 * `sortie endpoint start|status`: the endpoint of an MFA site, run by the user on its login node (see
 * client/endpoint.ts). The endpoint token comes from env SORTIE_ENDPOINT_TOKEN, else from the file a
 * previous start saved, else start registers one with the current session (its token from the saved
 * session or SORTIE_TOKEN) and saves it (0600): never from a flag, which `ps` would show.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { buildAgentBundle } from '../../agent/bundle.ts';
import { BadParameter } from '../../core/errors.ts';
import { type EndpointState, serveEndpoint } from '../endpoint.ts';
import { Transport } from '../http.ts';
import { EXIT } from './exit-codes.ts';
import { apiUrl, connect, findSaved, type SessionFlags, sortieDir, writePrivate } from './session-file.ts';

/** Options of `sortie endpoint start`. */
export interface EndpointStartFlags extends SessionFlags {
  resource: string;
  pollSeconds?: number;
}

interface SavedEndpoint {
  uid: string;
  token: string;
  apiUrl: string;
  resource: string;
}

const RESOURCE = /^[\w.-]{1,128}$/;

function files(resource: string) {
  if (!RESOURCE.test(resource))
    throw new BadParameter(`--resource: not a resource key: ${JSON.stringify(resource)}`);
  const dir = path.join(sortieDir(), 'endpoints');
  return { token: path.join(dir, `${resource}.json`), state: path.join(dir, `${resource}.state.json`) };
}

async function endpointToken(flags: EndpointStartFlags): Promise<{ token: string; apiUrl: string }> {
  const f = files(flags.resource);
  const fromEnv = process.env.SORTIE_ENDPOINT_TOKEN;
  if (fromEnv) return { token: fromEnv, apiUrl: apiUrl(flags, findSaved(flags.session)) };
  if (existsSync(f.token)) {
    const saved = JSON.parse(readFileSync(f.token, 'utf8')) as SavedEndpoint;
    return { token: saved.token, apiUrl: flags.api ?? process.env.SORTIE_API_URL ?? saved.apiUrl };
  }
  const session = await connect(flags);
  const e = await session.createEndpoint(flags.resource);
  const url = session.transport.endpoint;
  writePrivate(
    f.token,
    `${JSON.stringify({ uid: e.uid, token: e.token, apiUrl: url, resource: e.resource }, null, 2)}\n`,
  );
  process.stderr.write(`registered endpoint ${e.uid} for ${e.resource} (token saved in ${f.token})\n`);
  return { token: e.token, apiUrl: url };
}

/** `sortie endpoint start`: serves until Ctrl-C/SIGTERM, or until another process takes over. */
export async function start(flags: EndpointStartFlags): Promise<number> {
  const { token, apiUrl: url } = await endpointToken(flags);
  const bundle =
    process.env.SORTIE_AGENT_BUNDLE ?? (await buildAgentBundle(path.join(sortieDir(), 'agent.cjs')));
  const stop = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stop.abort());
  process.stderr.write(`sortie endpoint for ${flags.resource}: polling ${url} (pid ${process.pid})\n`);
  const why = await serveEndpoint({
    apiUrl: url,
    token,
    agentBundle: bundle,
    stateFile: files(flags.resource).state,
    ...(flags.pollSeconds !== undefined ? { pollSeconds: flags.pollSeconds } : {}),
    signal: stop.signal,
    log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
  });
  process.stderr.write(`sortie endpoint stopped: ${why}\n`);
  return why === 'stopped' ? EXIT.OK : EXIT.API;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed process whose parent died with it stays a zombie until init reaps it, and
  // signal 0 still reaches a zombie; where init does not reap (containers), that lasts.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    // Gone since the signal, or no procfs (macOS), where signal 0 is all there is.
    return !existsSync('/proc/self/stat');
  }
}

/** `sortie endpoint status`: this host's endpoint process and what the API holds for it. */
export async function status(flags: EndpointStartFlags & { json?: boolean }): Promise<number> {
  const f = files(flags.resource);
  const local = existsSync(f.state)
    ? (JSON.parse(readFileSync(f.state, 'utf8')) as EndpointState)
    : undefined;
  let token = process.env.SORTIE_ENDPOINT_TOKEN;
  let url = flags.api ?? process.env.SORTIE_API_URL ?? local?.apiUrl;
  if (!token && existsSync(f.token)) {
    const saved = JSON.parse(readFileSync(f.token, 'utf8')) as SavedEndpoint;
    token = saved.token;
    url ??= saved.apiUrl;
  }
  if (!token || !url)
    throw new BadParameter(
      `no endpoint for ${flags.resource} here (no ${f.token}, no SORTIE_ENDPOINT_TOKEN)`,
    );
  const remote = await new Transport({ endpoint: url, retryBudgetMs: 5_000 }, token).request<{
    endpoint: Record<string, unknown>;
    pending: { pilotId: string; op: string; seq: number; asked: string; job?: { jobId: string } }[];
  }>('GET', '/endpoint');
  const running = local ? alive(local.pid) && !local.stopped : false;
  if (flags.json) {
    process.stdout.write(
      `${JSON.stringify({ process: local ? { ...local, running } : null, ...remote }, null, 2)}\n`,
    );
    return EXIT.OK;
  }
  const e = remote.endpoint;
  const out = [
    `endpoint ${e.uid} for ${e.resource} (${e.state}); last poll ${e.lastSeen ?? 'never'}${e.host ? ` from ${e.host}` : ''}`,
    local
      ? `process ${local.pid} on this host: ${running ? 'running' : `not running${local.stopped ? ` (stopped: ${local.stopped})` : ''}`}; ${local.inFlight.length} request(s) in hand${local.inFlight.length ? `: ${local.inFlight.join(', ')}` : ''}`
      : 'no endpoint process has run here',
    `${remote.pending.length} request(s) waiting at the API${remote.pending.map((r) => `\n  ${r.pilotId} ${r.op}${r.job ? ` job ${r.job.jobId}` : ''} (asked ${r.asked})`).join('')}`,
  ];
  if (local?.handled.length)
    out.push(
      `last handled:${local.handled
        .slice(-10)
        .map((h) => `\n  ${h.time} ${h.pilotId} ${h.op}: ${h.result}`)
        .join('')}`,
    );
  process.stdout.write(`${out.join('\n')}\n`);
  return EXIT.OK;
}
