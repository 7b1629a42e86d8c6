/**
 * RP's `Session`: the root of everything a user creates. It lives in the control plane (DynamoDB), not
 * in this process: `Session.reconnect(uid, { token })` picks it up from anywhere.
 */

import { readFileSync } from 'node:fs';
import { BadParameter, DoesNotExist, IncorrectState } from '../core/errors.ts';
import type { CostBreakdown } from '../core/pricing.ts';
import type { ResourceConfig } from '../core/resources.ts';
import { addUsage, emptyUsage, priceCounters, type UsageCounters } from '../core/usage.ts';
import { readResourceConfigFile } from '../resources/files.ts';
import { Context } from './context.ts';
import { newRequestToken, Transport, type TransportOptions } from './http.ts';
import { PilotManager } from './pilot-manager.ts';
import { UnitManager } from './unit-manager.ts';

/** Options of Session.create / reconnect. */
export interface SessionOptions extends TransportOptions {
  name?: string;
  /**
   * For a deployment that requires a login to open sessions (a JWT authorizer, see the README): your
   * OpenID Connect ID or access token; default env SORTIE_ID_TOKEN. Sent only to create the session.
   */
  idToken?: string;
}

interface SessionWire {
  uid: string;
  token?: string;
  name?: string;
  created: string;
  lastReconnect?: string;
  closed?: string;
}

/** A context as `GET /sessions/{sid}/contexts` lists it: no key, no password. */
interface StoredContext {
  type: 'ssh' | 'userpass';
  userId?: string;
  resource: string;
  credential: 'key' | 'password' | 'generatedKey' | 'none';
}

/** A Sortie session (RP's Session). */
export class Session {
  /** @internal */ readonly transport: Transport;
  /** @internal */ readonly pilotManagers = new Map<string, PilotManager>();
  /** @internal */ readonly unitManagers = new Map<string, UnitManager>();
  private closing: Promise<void> | undefined;
  private info: SessionWire;
  private readonly contexts: Context[] = [];

  private constructor(transport: Transport, info: SessionWire) {
    this.transport = transport;
    this.info = info;
  }

  /** Creates a new session; its token (keep it secret) lets you reconnect later. */
  static async create(opts: SessionOptions = {}): Promise<Session> {
    const transport = new Transport(opts, opts.idToken ?? process.env.SORTIE_ID_TOKEN);
    const info = await transport.request<SessionWire>(
      'POST',
      '/sessions',
      { ...(opts.name ? { name: opts.name } : {}) },
      undefined,
      { requestToken: newRequestToken() },
    );
    transport.token = info.token;
    return new Session(transport, info);
  }

  /** Reconnects to an existing session (RP: `Session(session_uid=...)`); token defaults to env SORTIE_TOKEN. */
  static async reconnect(uid: string, opts: SessionOptions & { token?: string } = {}): Promise<Session> {
    const token = opts.token ?? process.env.SORTIE_TOKEN;
    if (!token) throw new BadParameter(`reconnect ${uid}: no token (pass { token } or set SORTIE_TOKEN)`);
    const transport = new Transport(opts, token);
    // RP records every reconnect on the session (`last_reconnect`).
    const info = await transport.request<SessionWire>(
      'POST',
      `/sessions/${encodeURIComponent(uid)}/reconnect`,
      {},
    );
    const session = new Session(transport, { ...info, token });
    // RP read the session's credentials back on reconnect; Sortie lists what the backend holds of them
    // (who, for which resource, which kind of credential) and never the key or password itself.
    const stored = await transport.request<{ items: StoredContext[] }>(
      'GET',
      `/sessions/${encodeURIComponent(uid)}/contexts`,
    );
    for (const c of stored.items)
      session.contexts.push(
        new Context(c.type, {
          ...(c.userId ? { userId: c.userId } : {}),
          ...(c.resource !== '*' ? { resource: c.resource } : {}),
          credential: c.credential,
        }),
      );
    return session;
  }

  get uid(): string {
    return this.info.uid;
  }
  /** The bearer token of this session. */
  get token(): string {
    return this.info.token ?? '';
  }
  get name(): string | undefined {
    return this.info.name;
  }
  /**
   * The web dashboard of this session: the API's `/dashboard` page with the session id and token in the
   * URL fragment (which browsers never send to a server). Treat it like the token.
   */
  get dashboardUrl(): string {
    const fragment = new URLSearchParams({ session: this.uid, token: this.token });
    return `${this.transport.endpoint.replace(/\/+$/, '')}/dashboard#${fragment}`;
  }
  get created(): Date {
    return new Date(this.info.created);
  }
  get lastReconnect(): Date | undefined {
    return this.info.lastReconnect ? new Date(this.info.lastReconnect) : undefined;
  }
  /** True once close() has run. */
  get closed(): boolean {
    return this.info.closed !== undefined;
  }

  /** @internal */
  path(rest = ''): string {
    return `/sessions/${encodeURIComponent(this.uid)}${rest}`;
  }

  /** @internal */
  assertOpen(): void {
    if (this.info.closed) throw new IncorrectState(`session ${this.uid} is closed`);
  }

  /** Adds a security context used by every pilot of this session (RP: `session.add_context`). */
  async addContext(ctx: Context): Promise<void> {
    this.assertOpen();
    let userKey = ctx.userKey;
    if (userKey && !userKey.includes('PRIVATE KEY')) {
      try {
        userKey = readFileSync(userKey, 'utf8');
      } catch (err) {
        throw new BadParameter(`context.userKey: not a private key and not a readable file: ${ctx.userKey}`, {
          cause: err,
        });
      }
    }
    await this.transport.request(
      'POST',
      this.path('/contexts'),
      {
        type: ctx.type,
        ...(ctx.userId ? { userId: ctx.userId } : {}),
        ...(userKey ? { userKey } : {}),
        ...(ctx.userPass ? { userPass: ctx.userPass } : {}),
        ...(ctx.keyId ? { keyId: ctx.keyId } : {}),
        ...(ctx.resource ? { resource: ctx.resource } : {}),
      },
      undefined,
      { requestToken: newRequestToken() },
    );
    this.contexts.push(ctx);
  }

  /**
   * The session's contexts (RP's `list_contexts()`): those added through this Session object, or after
   * `reconnect` those the backend holds (one per resource key, the last added there: the one launches
   * use), without their key or password, which the API never returns. Secrets are masked when printed.
   */
  listContexts(): Context[] {
    return [...this.contexts];
  }

  /**
   * Has Sortie generate an SSH key pair for `resource` (the safer path: your own private key never
   * leaves your machine, and the generated one never leaves Sortie, sealed). This session uses it at
   * once; install `publicKey` in `~/.ssh/authorized_keys` on the resource (see `instructions`), and keep
   * `keyId` to use the same key from later sessions: `new Context('ssh', { userId, keyId })`.
   */
  async generateKey(
    resource: string,
    opts: { userId?: string } = {},
  ): Promise<{ keyId: string; publicKey: string; instructions: string }> {
    this.assertOpen();
    return this.transport.request(
      'POST',
      this.path('/keys'),
      { resource, ...(opts.userId ? { userId: opts.userId } : {}) },
      undefined,
      { requestToken: newRequestToken() },
    );
  }

  /**
   * Registers an endpoint for a resource whose config has the `endpoint` access schema (MFA sites): run
   * `sortie endpoint start --resource NAME` on the site's login node with the returned token in env
   * `SORTIE_ENDPOINT_TOKEN`; it launches, checks and cancels this session's pilots there. The token is
   * shown once (the API keeps its hash) and opens only the endpoint routes; `revokeEndpoint` revokes it.
   */
  async createEndpoint(
    resource: string,
  ): Promise<{ uid: string; token: string; resource: string; created: string }> {
    this.assertOpen();
    return this.transport.request('POST', this.path('/endpoints'), { resource }, undefined, {
      requestToken: newRequestToken(),
    });
  }

  /** The session's endpoints: resource, last poll, host, and how many requests wait for each. */
  async listEndpoints(): Promise<
    {
      uid: string;
      resource: string;
      state: string;
      created: string;
      lastSeen?: string;
      host?: string;
      pending: number;
    }[]
  > {
    const out = await this.transport.request<{ items: never[] }>('GET', this.path('/endpoints'));
    return out.items;
  }

  /** Revokes an endpoint's token: its process stops at its next poll. */
  async revokeEndpoint(uid: string): Promise<void> {
    await this.transport.request('POST', this.path(`/endpoints/${encodeURIComponent(uid)}/revoke`), {});
  }

  /**
   * Adds resource configurations to this session (RP: `session.add_resource_config`): from an object of
   * full `<site>.<name>` keys → config, or from a path to a JSON file on this machine (`<site>.json` or
   * `resource_<site>.json`, names inside become `<site>.<name>`), read here and sent. The backend
   * validates every entry (nothing is added if one is bad), stores them with the session and uses them
   * for every launch of its pilots; other sessions do not see them. A key that exists is replaced; the
   * backend looks the config up again to check and cancel a pilot's job, so give a changed config a new
   * key while pilots on the old one still run.
   * @returns the keys added, sorted.
   */
  async addResourceConfig(configOrPath: string | Readonly<Record<string, unknown>>): Promise<string[]> {
    this.assertOpen();
    const body =
      typeof configOrPath === 'string' ? readResourceConfigFile(configOrPath) : { configs: configOrPath };
    const r = await this.transport.request<{ added: string[] }>('POST', this.path('/resources'), body);
    return r.added;
  }

  /**
   * The configuration of a resource key as this session sees it (RP: `session.get_resource_config`);
   * aliases such as `localhost` resolve to the key they stand for.
   * @throws BadParameter naming an unknown key.
   */
  async getResourceConfig(key: string): Promise<ResourceConfig> {
    const r = await this.transport.request<{ key: string; config: ResourceConfig }>(
      'GET',
      this.path(`/resources/${encodeURIComponent(key)}`),
    );
    return r.config;
  }

  /** Every resource key this session can use, sorted (RP: `session.list_resources`). */
  async listResources(): Promise<string[]> {
    const r = await this.transport.request<{ items: string[] }>('GET', this.path('/resources'));
    return r.items;
  }

  async listPilotManagers(): Promise<string[]> {
    return (await this.transport.list<{ uid: string }>(this.path('/pmgrs'))).map((m) => m.uid);
  }

  /** Pilot managers of this session: all, the given uids, or one for one uid (RP: single in, single out). */
  getPilotManagers(uid: string): Promise<PilotManager>;
  getPilotManagers(uids?: string[]): Promise<PilotManager[]>;
  async getPilotManagers(uids?: string | string[]): Promise<PilotManager | PilotManager[]> {
    const known = await this.listPilotManagers();
    const all = uids === undefined ? known : typeof uids === 'string' ? [uids] : uids;
    for (const uid of all)
      if (!known.includes(uid))
        throw new DoesNotExist(
          `getPilotManagers: unknown pilot manager ${JSON.stringify(uid)} in ${this.uid}`,
          {
            obj: uid,
          },
        );
    const out = all.map((uid) => this.pilotManagers.get(uid) ?? PilotManager.attach(this, uid));
    return typeof uids === 'string' ? (out[0] as PilotManager) : out;
  }

  async listUnitManagers(): Promise<string[]> {
    return (await this.transport.list<{ uid: string }>(this.path('/umgrs'))).map((m) => m.uid);
  }

  /** Unit managers of this session: all, the given uids, or one for one uid (RP: single in, single out). */
  getUnitManagers(uid: string): Promise<UnitManager>;
  getUnitManagers(uids?: string[]): Promise<UnitManager[]>;
  async getUnitManagers(uids?: string | string[]): Promise<UnitManager | UnitManager[]> {
    const all = uids === undefined ? await this.listUnitManagers() : typeof uids === 'string' ? [uids] : uids;
    const out: UnitManager[] = [];
    // attach() reads the manager: an unknown uid is the API's DoesNotExist.
    for (const uid of all) out.push(this.unitManagers.get(uid) ?? (await UnitManager.attach(this, uid)));
    return typeof uids === 'string' ? (out[0] as UnitManager) : out;
  }

  /**
   * The session's counted control-plane usage (every Lambda counts its requests per session; see README
   * "Monitoring") and its price at list prices per unit of work (`units`, default: none priced). Counts
   * are written by each warm Lambda container at most a minute late in AWS, at once in the embedded backend.
   */
  async usage(units = 0): Promise<{ counters: UsageCounters; cost: CostBreakdown | undefined }> {
    const r = await this.transport.request<SessionWire & { usage?: UsageCounters }>('GET', this.path(''));
    const counters = addUsage(emptyUsage(), r.usage ?? {});
    return { counters, cost: priceCounters(counters, units) };
  }

  /** RP's `as_dict()`: what identifies this session. */
  asDict(): { uid: string; name?: string; created: string; lastReconnect?: string; closed?: string } {
    const { token: _secret, ...info } = this.info;
    return info;
  }

  /**
   * Closes the session (RP semantics: `cleanup` implies `terminate`; terminate cancels every pilot and
   * waits for them), then closes every manager, so no callback or poll is left and a script exits on its
   * own. `timeout` in seconds (as every timeout of the SDK) bounds the wait for the pilots (default 60).
   * Safe to call twice; always returns.
   */
  close(opts: { cleanup?: boolean; terminate?: boolean; timeout?: number } = {}): Promise<void> {
    if (!this.closing) this.closing = this.doClose(opts);
    return this.closing;
  }

  private async doClose(opts: { cleanup?: boolean; terminate?: boolean; timeout?: number }): Promise<void> {
    const cleanup = opts.cleanup ?? true;
    const terminate = cleanup || (opts.terminate ?? true);
    const errors: unknown[] = [];
    if (terminate) {
      for (const pmgr of await this.getPilotManagers().catch(() => [...this.pilotManagers.values()])) {
        try {
          await pmgr.cancelPilots();
          await pmgr.waitPilots({ timeout: opts.timeout ?? 60, throwOnTimeout: true });
        } catch (err) {
          errors.push(err);
        }
      }
    }
    for (const m of [...this.unitManagers.values()]) await m.close();
    for (const m of [...this.pilotManagers.values()]) await m.close({ terminate: false });
    const r = await this.transport.request<SessionWire>('POST', this.path('/close'), { cleanup, terminate });
    this.info = { ...this.info, closed: r.closed ?? new Date().toISOString() };
    if (errors.length)
      console.warn(
        `sortie: session ${this.uid} closed; ${errors.length} pilot manager(s) did not end cleanly:`,
        errors,
      );
  }
}
