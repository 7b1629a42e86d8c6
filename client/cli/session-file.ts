/**
 * How the CLI finds its API and session: `sortie run` saves the session it creates (uid, token, API URL)
 * to `.sortie/sessions/<uid>.json` and marks it current in `.sortie/session.json`, both 0600 in a 0700
 * directory, because the token is the only key to the session (the API keeps only its hash). Every other
 * command takes `--session ID` (token from SORTIE_TOKEN or the saved file) and `--api URL` (or
 * SORTIE_API_URL, or the saved URL), and falls back to the current session. SORTIE_DIR moves `.sortie`.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BadParameter } from '../../core/errors.ts';
import { Session } from '../session.ts';

/** What the CLI keeps of a session it created. */
export interface SavedSession {
  uid: string;
  token: string;
  apiUrl: string;
  name?: string;
  created: string;
}

/** Options every session command takes. */
export interface SessionFlags {
  session?: string;
  api?: string;
}

/** The CLI's directory: SORTIE_DIR, or `.sortie` in the working directory (beside `sortie up`'s data). */
export function sortieDir(): string {
  return path.resolve(process.env.SORTIE_DIR ?? '.sortie');
}

/** Writes a file only its owner can read (0600, in a 0700 directory). */
export function writePrivate(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600); // an existing file keeps its mode on write
}

/** Saves a session and makes it the current one. */
export function saveSession(s: SavedSession): string {
  const dir = sortieDir();
  const text = `${JSON.stringify(s, null, 2)}\n`;
  writePrivate(path.join(dir, 'sessions', `${s.uid}.json`), text);
  const current = path.join(dir, 'session.json');
  writePrivate(current, text);
  return current;
}

function readSaved(file: string): SavedSession {
  const s = JSON.parse(readFileSync(file, 'utf8')) as SavedSession;
  if (typeof s.uid !== 'string' || typeof s.token !== 'string')
    throw new BadParameter(`${file}: not a saved session (no uid or token)`);
  return s;
}

/** Every session saved in this directory, oldest first. */
export function savedSessions(): SavedSession[] {
  const dir = path.join(sortieDir(), 'sessions');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => readSaved(path.join(dir, f)))
    .sort((a, b) => a.created.localeCompare(b.created) || a.uid.localeCompare(b.uid));
}

/** The saved session `uid`, or the current one when no uid is given; undefined when none is saved. */
export function findSaved(uid?: string): SavedSession | undefined {
  if (uid === undefined) {
    const current = path.join(sortieDir(), 'session.json');
    return existsSync(current) ? readSaved(current) : undefined;
  }
  const file = path.join(sortieDir(), 'sessions', `${uid}.json`);
  return existsSync(file) ? readSaved(file) : undefined;
}

/** The API URL: --api, SORTIE_API_URL, then the saved session's. */
export function apiUrl(flags: SessionFlags, saved?: SavedSession): string {
  const url = flags.api ?? process.env.SORTIE_API_URL ?? saved?.apiUrl;
  if (!url)
    throw new BadParameter(
      '--api: no Sortie API (pass --api URL or set SORTIE_API_URL; `sortie up` prints it)',
    );
  return url;
}

/**
 * Reconnects to the session the flags name (or the current one). The token comes from the saved file,
 * else SORTIE_TOKEN: never from a flag, so it does not show in `ps` or shell history.
 */
export async function connect(flags: SessionFlags): Promise<Session> {
  const uid = flags.session ?? process.env.SORTIE_SESSION;
  const saved = findSaved(uid);
  const sid = uid ?? saved?.uid;
  if (!sid)
    throw new BadParameter(
      `--session: no session given and none saved in ${sortieDir()} (run \`sortie run WORKLOAD\` first, or pass --session ID with SORTIE_TOKEN)`,
    );
  const token = saved?.token ?? process.env.SORTIE_TOKEN;
  if (!token)
    throw new BadParameter(
      `--session: no token for ${sid} (set SORTIE_TOKEN, or use a session saved in ${sortieDir()})`,
    );
  return Session.reconnect(sid, { endpoint: apiUrl(flags, saved), token });
}
