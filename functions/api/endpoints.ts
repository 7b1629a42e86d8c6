/**
 * Endpoint mode's routes. With the session token: register an endpoint for a resource (its token is
 * returned once; only its hash is kept), list the session's endpoints, revoke one (its token dies; a session's close revokes them all once nothing waits for them). With
 * the endpoint token only: `POST /endpoint/poll` long-polls for the requests the pilot machine left for
 * the endpoint's resource (launch, check, cancel, tail), `POST /endpoint/answer` records an answer (a
 * launch's job moves its pilot to PENDING_ACTIVE), `GET /endpoint` shows what is pending.
 */
import { randomBytes } from 'node:crypto';
import { ENDPOINT_ID, type EndpointOp, parseEndpointAnswer, pollSeconds } from '../../core/endpoints.ts';
import { BadParameter, DoesNotExist, IncorrectState } from '../../core/errors.ts';
import { isFinal, PilotState, pilotModel } from '../../core/states.ts';
import type { EndpointRecord, EndpointRequestRecord, PilotRecord } from '../../store/index.ts';
import { authEndpoint, authSession } from '../lib/auth.ts';
import type { Request, RouteFn } from '../lib/http.ts';
import { str } from '../lib/http.ts';
import { once, type Replay } from '../lib/idempotency.ts';
import { cancelRequested } from '../lib/pilots.ts';
import { sessionResources } from '../lib/resources.ts';
import { hashSecret, newSecret, seal, unseal } from '../lib/secrets.ts';
import { store } from '../lib/store.ts';
import { agentConfigOf } from '../pilot/agent-config.ts';
import { launchRequest } from '../pilot/request.ts';

/** How often a long poll looks for new requests (ms). */
const POLL_EVERY_MS = 500;

function endpointOut(e: EndpointRecord) {
  const { secretHash: _h, instance: _i, ...rest } = e;
  return rest;
}

/** A request as the endpoint gets it; a launch also carries the pilot's description and agent config. */
async function requestOut(r: EndpointRequestRecord, pilots: Map<string, PilotRecord>, resource: string) {
  const base = {
    pilotId: r.pilotId,
    op: r.op,
    seq: r.seq,
    asked: r.asked,
    ...(r.job ? { job: r.job } : {}),
  };
  if (r.op !== 'launch') return base;
  const pilot = pilots.get(r.pilotId);
  if (!pilot) return undefined;
  const rc = (await sessionResources(pilot.sessionId)).get(resource);
  return { ...base, description: launchRequest(pilot).description, agentConfig: agentConfigOf(pilot, rc) };
}

/** The pending requests of an endpoint's resource; launches of pilots that ended meanwhile are withdrawn. */
async function pending(e: EndpointRecord) {
  const s = store();
  const reqs = await s.pendingEndpointRequests(e.sessionId, e.resource);
  const launches = reqs.filter((r) => r.op === 'launch').map((r) => r.pilotId);
  const pilots = new Map(
    (launches.length ? await s.getPilots(e.sessionId, launches) : []).map((p) => [p.uid, p]),
  );
  const out = [];
  for (const r of reqs) {
    const pilot = pilots.get(r.pilotId);
    if (r.op === 'launch' && pilot && (isFinal(pilotModel, pilot.state) || cancelRequested(pilot))) {
      await s.withdrawEndpointRequest(e.sessionId, r.pilotId, 'launch');
      continue;
    }
    const o = await requestOut(r, pilots, e.resource);
    if (o) out.push(o);
  }
  return out;
}

const INSTANCE = /^[\w.@:-]{1,128}$/;

/** The routes, spread into the API handler's table. */
export const endpointRoutes: Record<string, RouteFn> = {
  'POST /sessions/{sid}/endpoints': async (req: Request) => {
    const s = await authSession(req.headers, req.params.sid, req.event.routeKey);
    const registry = await sessionResources(s.sessionId);
    const resource = registry.resolve(str(req.body, 'resource', 'endpoint'));
    if (!registry.get(resource).schemas.endpoint)
      throw new BadParameter(
        `endpoint.resource: '${resource}' has no 'endpoint' access schema (its config needs "schemas": {"endpoint": {}})`,
      );
    // The answer holds the endpoint token: a repeat gets it back from a sealed copy.
    const replay: Replay<Record<string, unknown>> = {
      save: (a) => seal(JSON.stringify(a)),
      load: (saved) => JSON.parse(unseal(saved as string)) as Record<string, unknown>,
    };
    return once(req, s.sessionId, replay, async () => {
      const uid = `endpoint.${randomBytes(8).toString('hex')}`;
      const secret = newSecret();
      const e = await store().putEndpoint({
        sessionId: s.sessionId,
        uid,
        resource,
        secretHash: hashSecret(secret),
      });
      return { uid, resource, created: e.created, token: `${s.sessionId}~${uid}~${secret}` };
    });
  },

  'GET /sessions/{sid}/endpoints': async (req: Request) => {
    const s = await authSession(req.headers, req.params.sid, req.event.routeKey);
    const all = await store().listEndpoints(s.sessionId);
    const counts = new Map<string, number>();
    for (const r of new Set(all.map((e) => e.resource)))
      counts.set(r, (await store().pendingEndpointRequests(s.sessionId, r)).length);
    return { items: all.map((e) => ({ ...endpointOut(e), pending: counts.get(e.resource) ?? 0 })) };
  },

  'POST /sessions/{sid}/endpoints/{eid}/revoke': async (req: Request) => {
    const s = await authSession(req.headers, req.params.sid, req.event.routeKey);
    const eid = req.params.eid as string;
    if (!ENDPOINT_ID.test(eid))
      throw new DoesNotExist(`no endpoint ${eid} in session ${s.sessionId}`, { obj: eid });
    const e = await store().patchEndpoint(s.sessionId, eid, { state: 'closed' });
    return endpointOut(e);
  },

  'GET /endpoint': async (req: Request) => {
    const e = await authEndpoint(req.headers);
    // The agent config holds the pilot token: only a poll (which launches) gets it.
    const reqs = (await pending(e)).map((r) => {
      const { agentConfig: _a, ...rest } = r as typeof r & { agentConfig?: unknown };
      return rest;
    });
    return { endpoint: endpointOut(e), pending: reqs };
  },

  'POST /endpoint/poll': async (req: Request) => {
    let e = await authEndpoint(req.headers);
    const instance = req.body.instance;
    if (typeof instance !== 'string' || !INSTANCE.test(instance))
      throw new BadParameter(
        `endpoint poll.instance: must be a process id of [\\w.@:-], got ${JSON.stringify(instance)}`,
      );
    const host = req.body.host;
    if (host !== undefined && (typeof host !== 'string' || host.length > 256))
      throw new BadParameter(`endpoint poll.host: must be a string of at most 256 characters`);
    const wait = pollSeconds(req.body.waitSeconds);
    // One process serves an endpoint: a new `endpoint start` takes over, and the old one is told to stop
    // rather than race it for the same launches.
    if (e.instance && e.instance !== instance && req.body.takeover !== true)
      throw new IncorrectState(
        `endpoint ${e.uid} is served by another process now (${e.host ?? e.instance})`,
        {
          obj: e.uid,
        },
      );
    e = await store().patchEndpoint(e.sessionId, e.uid, {
      lastSeen: store().now(),
      instance,
      ...(typeof host === 'string' ? { host } : {}),
    });
    const deadline = Date.now() + wait * 1000;
    for (;;) {
      const requests = await pending(e);
      if (requests.length || Date.now() + POLL_EVERY_MS > deadline) {
        const rc = (await sessionResources(e.sessionId)).get(e.resource);
        return { endpoint: e.uid, resource: e.resource, resourceConfig: rc, requests };
      }
      await new Promise((r) => setTimeout(r, POLL_EVERY_MS));
    }
  },

  'POST /endpoint/answer': async (req: Request) => {
    const e = await authEndpoint(req.headers);
    const a = parseEndpointAnswer(req.body);
    const s = store();
    // Only pilots of its own session and resource: 404 for another's (getPilot), 403 for another resource.
    const pilot = await s.getPilot(e.sessionId, a.pilotId);
    if (pilot.description.resource !== e.resource)
      throw new BadParameter(`endpoint answer.pilotId: ${a.pilotId} is not a pilot of ${e.resource}`, {
        obj: a.pilotId,
      });
    const answer = !a.ok
      ? { ok: false, error: a.error }
      : a.op === 'launch'
        ? { ok: true, job: a.job }
        : a.op === 'check'
          ? { ok: true, status: a.status }
          : a.op === 'tail'
            ? { ok: true, text: a.text }
            : { ok: true };
    const out = await s.answerEndpointRequest(e.sessionId, a.pilotId, a.op as EndpointOp, a.seq, answer);
    let cancel = false;
    if (a.op === 'launch' && a.ok) {
      if (out.recorded) {
        const moved = await s.transitionPilot(e.sessionId, a.pilotId, PilotState.PENDING_ACTIVE, {
          jobId: a.job.jobId,
          sandbox: a.job.sandbox,
          appendLog: [
            `agent submitted by the endpoint (${e.host ?? e.uid}): job ${a.job.jobId}, sandbox ${a.job.sandbox}`,
          ],
        });
        // The agent may have called in already (ACTIVE is past PENDING_ACTIVE): keep the job facts anyway.
        if (!moved.ok)
          await s.patchPilot(e.sessionId, a.pilotId, { jobId: a.job.jobId, sandbox: a.job.sandbox });
      }
      // A job for a pilot that ended (or whose request was withdrawn) must not run on: cancel it.
      const now = out.recorded ? await s.getPilot(e.sessionId, a.pilotId) : pilot;
      if (!out.recorded || isFinal(pilotModel, now.state)) {
        await s.askEndpoint({
          sessionId: e.sessionId,
          pilotId: a.pilotId,
          op: 'cancel',
          resource: e.resource,
          job: a.job,
        });
        cancel = true;
      }
    }
    return { recorded: out.recorded, ...(cancel ? { cancel } : {}) };
  },
};
