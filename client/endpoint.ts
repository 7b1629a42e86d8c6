/**
 * The endpoint process (`sortie endpoint start`): runs on a site's login node inside the user's own
 * login (MFA done by the user, once), long-polls the API over outbound HTTP(S) for its resource's launch,
 * check, cancel and tail requests, runs them with the same job-manager adapters as the SSH launcher over
 * this host's shell, and posts the answers back. Nothing logs in to the site from outside and no
 * credential is stored anywhere.
 *
 * Safe to kill and start again: requests stay pending until answered, a launch run twice finds the job
 * of the first run (submit-once.ts records it in the sandbox), and the newest process takes over the
 * endpoint from an older one, which stops at its next poll.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import path from 'node:path';
import type { EndpointJob, EndpointOp } from '../core/endpoints.ts';
import { IncorrectState, PermissionDenied } from '../core/errors.ts';
import { parseResourceConfig } from '../core/resources.ts';
import { LocalTransport } from '../functions/pilot/launcher/local-transport.ts';
import { SshLauncher } from '../functions/pilot/launcher/ssh-launcher.ts';
import type { LaunchRequest } from '../functions/pilot/launcher/types.ts';
import { Transport } from './http.ts';

/** A request as the poll hands it over. */
interface PolledRequest {
  pilotId: string;
  op: EndpointOp;
  seq: number;
  asked: string;
  job?: EndpointJob;
  description?: LaunchRequest['description'];
  agentConfig?: Record<string, unknown>;
}

interface PollAnswer {
  endpoint: string;
  resource: string;
  resourceConfig: unknown;
  requests: PolledRequest[];
}

/** Options of {@link serveEndpoint}. */
export interface EndpointOptions {
  /** API base URL. */
  apiUrl: string;
  /** The endpoint token (`<sid>~endpoint.<hex>~<secret>`). */
  token: string;
  /** The agent bundle to ship into each sandbox (agent/bundle.ts builds it). */
  agentBundle: string;
  /** File the process keeps its state in for `sortie endpoint status` (0600). */
  stateFile: string;
  /** Long-poll length, seconds (default 20). */
  pollSeconds?: number;
  /** Stops the loop (e.g. on SIGTERM). */
  signal?: AbortSignal;
  /** Told of each request handled, for the terminal. */
  log?: (line: string) => void;
}

/** What the state file holds. */
export interface EndpointState {
  pid: number;
  instance: string;
  apiUrl: string;
  endpoint?: string;
  resource?: string;
  started: string;
  lastPoll?: string;
  lastError?: string;
  inFlight: string[];
  /** The latest requests handled, newest last (at most 50). */
  handled: { pilotId: string; op: EndpointOp; seq: number; time: string; result: string }[];
  stopped?: string;
}

function previouslyHandled(stateFile: string): EndpointState['handled'] {
  try {
    const before = JSON.parse(readFileSync(stateFile, 'utf8')) as Partial<EndpointState>;
    return Array.isArray(before.handled) ? before.handled.slice(-50) : [];
  } catch {
    return [];
  }
}

/** Serves an endpoint until `signal` aborts or another process takes over; resolves with why it stopped. */
export async function serveEndpoint(opts: EndpointOptions): Promise<string> {
  const http = new Transport(
    { endpoint: opts.apiUrl, timeoutMs: ((opts.pollSeconds ?? 20) + 15) * 1000 },
    opts.token,
  );
  const instance = `${hostname()}.${process.pid}.${randomBytes(4).toString('hex')}`;
  const where = `${userInfo().username}@${hostname()}`;
  const state: EndpointState = {
    pid: process.pid,
    instance,
    apiUrl: opts.apiUrl,
    started: new Date().toISOString(),
    inFlight: [],
    // What earlier processes handled stays visible to `sortie endpoint status` across restarts.
    handled: previouslyHandled(opts.stateFile),
  };
  const save = () => {
    mkdirSync(path.dirname(opts.stateFile), { recursive: true, mode: 0o700 });
    const tmp = `${opts.stateFile}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, opts.stateFile);
  };
  const log = opts.log ?? (() => {});
  const transport = new LocalTransport();
  let launcher: SshLauncher | undefined;
  let configText = '';
  /** Per pilot, the chain of its requests: a cancel never overtakes the launch it cancels. */
  const chains = new Map<string, Promise<void>>();
  const inFlight = new Set<string>();
  let first = true;

  const answer = async (r: PolledRequest, body: Record<string, unknown>) => {
    const out = await http.request<{ recorded: boolean; cancel?: boolean }>('POST', '/endpoint/answer', {
      pilotId: r.pilotId,
      op: r.op,
      seq: r.seq,
      ...body,
    });
    return out;
  };

  const handle = async (r: PolledRequest, resource: string, l: SshLauncher): Promise<string> => {
    const req: LaunchRequest = {
      sessionId: String(r.agentConfig?.sessionId ?? opts.token.split('~')[0]),
      pilotId: r.pilotId,
      resource,
      description: r.description ?? { runtime: 1, cores: 1 },
      agentBundle: opts.agentBundle,
      agentConfig: r.agentConfig ?? {},
    };
    try {
      switch (r.op) {
        case 'launch': {
          const job = await l.launch(req);
          const a = await answer(r, { ok: true, job: { jobId: job.jobId, sandbox: job.sandbox } });
          return `launched job ${job.jobId}${a.cancel ? ' (pilot ended meanwhile: cancel asked)' : ''}`;
        }
        case 'check': {
          const st = await l.status(req, r.job as EndpointJob);
          await answer(r, { ok: true, status: st });
          return `job ${r.job?.jobId}: ${st.state}${st.detail ? ` (${st.detail})` : ''}`;
        }
        case 'cancel':
          await l.cancel(req, r.job as EndpointJob);
          await answer(r, { ok: true });
          return `cancelled job ${r.job?.jobId}`;
        case 'tail': {
          const text = await l.tail(req, r.job as EndpointJob, 20);
          await answer(r, { ok: true, text });
          return `sent ${text.split('\n').length} line(s) of agent output`;
        }
      }
    } catch (err) {
      const e = err as Error & { permanent?: boolean };
      // A transient failure (the batch system did not answer in time) is left pending: the next poll
      // hands it over again. Anything else is the answer.
      if (e.permanent === false) return `will retry: ${e.message}`;
      await answer(r, { ok: false, error: e.message || String(err) });
      return `failed: ${e.message}`;
    }
  };

  try {
    for (;;) {
      if (opts.signal?.aborted) return 'stopped';
      let polled: PollAnswer;
      try {
        polled = await http.request<PollAnswer>('POST', '/endpoint/poll', {
          instance,
          host: where,
          waitSeconds: opts.pollSeconds ?? 20,
          ...(first ? { takeover: true } : {}),
        });
        first = false;
        delete state.lastError;
      } catch (err) {
        if (err instanceof IncorrectState || err instanceof PermissionDenied) {
          state.stopped = (err as Error).message;
          return (err as Error).message;
        }
        // The API is unreachable or failing: keep trying (what waits for us waits in the table).
        state.lastError = (err as Error).message;
        save();
        log(`poll failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      state.endpoint = polled.endpoint;
      state.resource = polled.resource;
      state.lastPoll = new Date().toISOString();
      const text = JSON.stringify(polled.resourceConfig);
      if (!launcher || text !== configText) {
        configText = text;
        launcher = new SshLauncher(parseResourceConfig(polled.resource, polled.resourceConfig), {
          transport,
        });
      }
      const l = launcher;
      for (const r of polled.requests) {
        const key = `${r.pilotId}:${r.op}:${r.seq}`;
        if (inFlight.has(key)) continue;
        inFlight.add(key);
        const prev = chains.get(r.pilotId) ?? Promise.resolve();
        const next = prev.then(async () => {
          const result = await handle(r, polled.resource, l).catch(
            (e: Error) => `answer failed: ${e.message}`,
          );
          log(`${r.pilotId} ${r.op}: ${result}`);
          state.handled.push({
            pilotId: r.pilotId,
            op: r.op,
            seq: r.seq,
            time: new Date().toISOString(),
            result,
          });
          state.handled.splice(0, Math.max(0, state.handled.length - 50));
          inFlight.delete(key);
          state.inFlight = [...inFlight];
          save();
        });
        chains.set(r.pilotId, next);
        void next.finally(() => {
          if (chains.get(r.pilotId) === next) chains.delete(r.pilotId);
        });
      }
      state.inFlight = [...inFlight];
      save();
    }
  } finally {
    state.stopped ??= new Date().toISOString();
    // Let what is running finish its answer (bounded), so a stop between submit and answer is rare.
    await Promise.race([Promise.all(chains.values()), new Promise((r) => setTimeout(r, 30_000).unref())]);
    save();
  }
}
