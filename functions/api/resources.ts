/**
 * Routes of a session's resource configs (RP's `Session.add_resource_config`, `get_resource_config`,
 * `list_resources`): configs are validated by the resource-config schema, stored with the session and
 * used by every launch of its pilots; another session never sees them.
 */
import { BadParameter } from '../../core/errors.ts';
import { parseResourceFile } from '../../core/resources.ts';
import { authSession } from '../lib/auth.ts';
import type { RouteFn } from '../lib/http.ts';
import { sessionResources } from '../lib/resources.ts';
import { store } from '../lib/store.ts';

/** Most configs one request may add. */
export const MAX_CONFIGS_PER_REQUEST = 100;
/** Largest config accepted, as JSON (a shipped one is under 2 KB; a table item holds at most 400 KB). */
export const MAX_CONFIG_BYTES = 32 * 1024;

const shown = (v: unknown) =>
  Array.isArray(v) ? 'a list' : v === null ? 'null' : (JSON.stringify(v)?.slice(0, 80) ?? typeof v);

/** Resource config routes, keyed like the manifest's ROUTES. */
export const resourceRoutes: Record<string, RouteFn> = {
  'POST /sessions/{sid}/resources': async (req) => {
    const s = await authSession(req.headers, req.params.sid, req.event.routeKey);
    const { configs, site } = req.body;
    if (typeof configs !== 'object' || configs === null || Array.isArray(configs))
      throw new BadParameter(
        `addResourceConfig.configs: must be an object of resource name → config, got ${shown(configs)}`,
      );
    const n = Object.keys(configs).length;
    if (n === 0 || n > MAX_CONFIGS_PER_REQUEST)
      throw new BadParameter(
        `addResourceConfig.configs: must hold 1-${MAX_CONFIGS_PER_REQUEST} configs, got ${n}`,
      );
    if (site !== undefined && typeof site !== 'string')
      throw new BadParameter(`addResourceConfig.site: must be a string, got ${shown(site)}`);
    for (const [name, config] of Object.entries(configs)) {
      const bytes = Buffer.byteLength(JSON.stringify(config) ?? '');
      if (bytes > MAX_CONFIG_BYTES)
        throw new BadParameter(
          `addResourceConfig.configs['${name.slice(0, 128)}']: at most ${MAX_CONFIG_BYTES} bytes of JSON, got ${bytes}`,
        );
    }
    // All entries are validated before any is stored: a bad one adds nothing.
    const entries = parseResourceFile(configs, site);
    await store().putResourceConfigs(s.sessionId, entries);
    return { added: entries.map(([key]) => key) };
  },

  'GET /sessions/{sid}/resources': async (req) => {
    const s = await authSession(req.headers, req.params.sid, req.event.routeKey);
    const registry = await sessionResources(s.sessionId);
    return { items: registry.list(), aliases: registry.aliases() };
  },

  'GET /sessions/{sid}/resources/{key}': async (req) => {
    const s = await authSession(req.headers, req.params.sid, req.event.routeKey);
    const registry = await sessionResources(s.sessionId);
    const key = registry.resolve(req.params.key as string);
    return { key, config: registry.get(key) };
  },
};
