/**
 * A small ssh2 wrapper for the launcher: connect (key or password) with a handshake deadline and
 * keepalives, verify the host key (pinned, or trust-on-first-use through a {@link HostKeyStore}), run
 * commands with a deadline, write files over SFTP with an exact mode, and reuse one connection per
 * host+user+credential until it has been idle for a while. Failures are the typed errors of
 * `ssh-errors.ts`. Nothing here logs; credentials never reach a message.
 */
import { createHash } from 'node:crypto';
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { classifyConnectError, SshHostKeyRejected, SshTimeout, SshTransientError } from './ssh-errors.ts';

/** Remembers host keys (`type base64`, as in known_hosts) by `host` or `[host]:port`. */
export interface HostKeyStore {
  get(hostPort: string): string | undefined | Promise<string | undefined>;
  /** Called once when a host is first seen under trust-on-first-use; persist it to pin the key later. */
  set(hostPort: string, keyLine: string): void | Promise<void>;
}

/** In-memory {@link HostKeyStore}: trust lasts as long as the process (e.g. one warm Lambda). */
export class MemoryHostKeyStore implements HostKeyStore {
  private readonly keys = new Map<string, string>();
  get(hostPort: string): string | undefined {
    return this.keys.get(hostPort);
  }
  set(hostPort: string, keyLine: string): void {
    this.keys.set(hostPort, keyLine);
  }
}

const defaultStore = new MemoryHostKeyStore();

/** Where and how to log in. */
export interface SshConnectOptions {
  host: string;
  /** Default 22. */
  port?: number;
  username: string;
  /** OpenSSH or PEM private key. */
  privateKey?: string | Buffer;
  passphrase?: string;
  password?: string;
  /** Pinned host key, `ssh-ed25519 AAAA…` or the bare base64 blob. Wins over the store. */
  hostKey?: string;
  /** Trust-on-first-use store; default: a process-wide in-memory one. */
  hostKeyStore?: HostKeyStore;
  /** Accept and record an unknown host key (default true). False refuses hosts with no known key. */
  trustOnFirstUse?: boolean;
  /** Handshake deadline (default 10 s). */
  readyTimeoutMs?: number;
  /** Keepalive interval (default 15 s); the connection is dropped after 3 unanswered ones. */
  keepaliveIntervalMs?: number;
}

/** Result of a remote command. */
export interface ExecResult {
  /** Exit code; null if the command died on a signal. */
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

/** Per-command options. */
export interface ExecOptions {
  /** Deadline (default 60 s); on expiry the channel is closed and {@link SshTimeout} thrown. */
  timeoutMs?: number;
  /** Written to the command's stdin, then closed. */
  stdin?: string | Buffer;
}

const MAX_OUTPUT = 1 << 20; // keep a runaway command from filling the Lambda's memory

/** `host` or `[host]:port`, the known_hosts spelling. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** The `type base64` line of a raw SSH public-key blob (its first field is the key type). */
export function keyLineOf(blob: Buffer): string {
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  const type = blob.subarray(4, 4 + len).toString('ascii') || 'unknown';
  return `${type} ${blob.toString('base64')}`;
}

/** The base64 blob of a `type base64 [comment]` line, or the input if it is a bare blob. */
function blobOf(keyLine: string): string {
  const parts = keyLine.trim().split(/\s+/);
  return (parts.length >= 2 ? parts[1] : parts[0]) ?? '';
}

/** ssh2 host-key algorithms that can present a key of this type. */
function algorithmsFor(keyLine: string): ConnectConfig['algorithms'] | undefined {
  const type = keyLine.trim().split(/\s+/)[0];
  if (!type || !keyLine.includes(' ')) return undefined;
  // Pin the algorithm too: a host with several keys would otherwise present whichever it prefers.
  const list = type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
  return { serverHostKey: list as NonNullable<NonNullable<ConnectConfig['algorithms']>['serverHostKey']> };
}

/** One authenticated SSH connection. */
export class SshConnection {
  private sftpP: Promise<SFTPWrapper> | undefined;
  private closedFlag = false;
  private active = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Called when the connection ends for any reason (used by the cache). */
  onClose: (() => void) | undefined;

  private constructor(
    private readonly client: Client,
    /** `user@host:port`, for messages. */
    readonly where: string,
    private readonly idleMs: number,
  ) {
    client.on('close', () => {
      this.closedFlag = true;
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.onClose?.();
    });
    // After 'ready', errors also arrive as 'close'; without a listener an 'error' would crash the process.
    client.on('error', () => {});
  }

  /** Opens a new connection (no cache); `idleMs` > 0 closes it after that long without use. */
  static async open(opts: SshConnectOptions, idleMs = 0): Promise<SshConnection> {
    const port = opts.port ?? 22;
    const where = `${opts.username}@${opts.host}:${port}`;
    const name = knownHostsName(opts.host, port);
    const store = opts.hostKeyStore ?? defaultStore;
    const expected = opts.hostKey ?? (await store.get(name));
    if (!expected && opts.trustOnFirstUse === false)
      throw new SshHostKeyRejected(
        `no known host key for ${name} and trust-on-first-use is off; add its key (ssh-keyscan) to the resource config`,
        'host-key-unknown',
      );
    let seen: string | undefined;
    const client = new Client();
    const cfg: ConnectConfig = {
      host: opts.host,
      port,
      username: opts.username,
      readyTimeout: opts.readyTimeoutMs ?? 10_000,
      keepaliveInterval: opts.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        seen = keyLineOf(key);
        return !expected || blobOf(expected) === key.toString('base64');
      },
      ...(opts.privateKey === undefined ? {} : { privateKey: opts.privateKey }),
      ...(opts.passphrase === undefined ? {} : { passphrase: opts.passphrase }),
      ...(opts.password === undefined ? {} : { password: opts.password }),
    };
    const algorithms = expected ? algorithmsFor(expected) : undefined;
    if (algorithms) cfg.algorithms = algorithms;
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        client.removeListener('ready', ok);
        client.end();
        if (seen && expected && blobOf(expected) !== blobOf(seen))
          reject(
            new SshHostKeyRejected(
              `host key of ${name} changed: expected ${expected.split(/\s+/)[0]} …${blobOf(expected).slice(-12)}, ` +
                `got ${seen.split(' ')[0]} …${blobOf(seen).slice(-12)}; if the site rotated its keys, update the ` +
                'pinned/recorded key, otherwise someone may be intercepting the connection',
              'host-key-changed',
            ),
          );
        else reject(classifyConnectError(err, where));
      };
      const ok = () => {
        client.removeListener('error', fail);
        resolve();
      };
      client.once('ready', ok);
      client.once('error', fail);
      try {
        client.connect(cfg);
      } catch (e) {
        // ssh2 throws synchronously on an unparsable private key.
        fail(Object.assign(new Error('invalid private key'), { level: 'client-authentication', cause: e }));
      }
    });
    if (!expected && seen) await store.set(name, seen);
    const conn = new SshConnection(client, where, idleMs);
    conn.touch();
    return conn;
  }

  /** True once the connection has ended. */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** Runs `cmd` in the login shell of the remote user. Non-zero exit codes are returned, not thrown. */
  async exec(cmd: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.use(
      () =>
        new Promise<ExecResult>((resolve, reject) => {
          this.client.exec(cmd, (err, channel) => {
            if (err) {
              reject(new SshTransientError(`cannot start a command on ${this.where}: ${err.message}`));
              return;
            }
            // Listeners go on synchronously: ssh2 may parse the exit status in the same tick as the open
            // confirmation, and a listener added after an await would miss it.
            collect(channel, opts, this.where, resolve, reject);
          });
        }),
    );
  }

  /** Writes `data` to `path` over SFTP; the file has exactly `mode` before any byte is written. */
  async writeFile(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
    return this.use(async () => {
      const sftp = await this.sftp();
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      const handle = await sftpCall<Buffer>((cb) => sftp.open(path, 'w', { mode }, cb), path);
      try {
        // open's mode only applies to new files (and passes through the umask); an existing file keeps its own.
        await sftpCall<void>((cb) => sftp.fchmod(handle, mode, cb), path);
        let off = 0;
        while (off < buf.length) {
          const n = Math.min(32_768, buf.length - off);
          await sftpCall<void>((cb) => sftp.write(handle, buf, off, n, off, cb), path);
          off += n;
        }
      } finally {
        await sftpCall<void>((cb) => sftp.close(handle, cb), path);
      }
    });
  }

  /** `mkdir -p` over SFTP for an absolute path; new directories get `mode`. */
  async mkdirp(path: string, mode = 0o700): Promise<void> {
    return this.use(async () => {
      const sftp = await this.sftp();
      const parts = path.split('/').filter(Boolean);
      let cur = '';
      for (const p of parts) {
        cur += `/${p}`;
        const exists = await new Promise<boolean>((resolve) =>
          sftp.stat(cur, (err, st) => resolve(!err && st.isDirectory())),
        );
        if (exists) continue;
        await sftpCall<void>((cb) => sftp.mkdir(cur, { mode }, cb), cur).catch(async (e: unknown) => {
          // A concurrent launch may have created it between stat and mkdir.
          const now = await new Promise<boolean>((r) =>
            sftp.stat(cur, (err, st) => r(!err && st.isDirectory())),
          );
          if (!now) throw e;
        });
      }
    });
  }

  /** File mode bits (e.g. 0o600) of a remote path. */
  async statMode(path: string): Promise<number> {
    return this.use(async () => {
      const sftp = await this.sftp();
      const st = await sftpCall<{ mode: number }>((cb) => sftp.stat(path, cb), path);
      return st.mode & 0o7777;
    });
  }

  /** Ends the connection now. */
  close(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.client.end();
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpP ??= new Promise<SFTPWrapper>((resolve, reject) =>
      this.client.sftp((err, s) => {
        if (err) {
          this.sftpP = undefined;
          reject(new SshTransientError(`cannot open SFTP on ${this.where}: ${err.message}`));
        } else resolve(s);
      }),
    );
    return this.sftpP;
  }

  private async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closedFlag) throw new SshTransientError(`SSH connection to ${this.where} is closed`);
    this.active++;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    try {
      return await fn();
    } finally {
      this.active--;
      this.touch();
    }
  }

  private touch(): void {
    if (this.idleMs <= 0 || this.active > 0 || this.closedFlag) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.close(), this.idleMs);
    // An idle cached connection must not keep a process (or a test run) alive.
    this.idleTimer.unref();
  }
}

function collect(
  channel: ClientChannel,
  opts: ExecOptions,
  where: string,
  resolve: (r: ExecResult) => void,
  reject: (e: Error) => void,
): void {
  const out: Buffer[] = [];
  const errOut: Buffer[] = [];
  let size = 0;
  const take = (into: Buffer[]) => (d: Buffer) => {
    if (size < MAX_OUTPUT) into.push(d);
    size += d.length;
  };
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const timer = setTimeout(() => {
    channel.close();
    reject(new SshTimeout(`command on ${where} did not finish within ${timeoutMs} ms`));
  }, timeoutMs);
  let code: number | null = null;
  let signal: string | undefined;
  channel.on('data', take(out));
  channel.stderr.on('data', take(errOut));
  channel.on('exit', (c: number | null, s?: string) => {
    code = c;
    signal = s;
  });
  channel.on('close', () => {
    clearTimeout(timer);
    const r: ExecResult = {
      code,
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(errOut).toString('utf8'),
    };
    if (signal) r.signal = signal;
    resolve(r);
  });
  if (opts.stdin !== undefined) channel.end(opts.stdin);
  else channel.end();
}

function sftpCall<T>(
  op: (cb: (err: Error | null | undefined, v: T) => void) => void,
  path: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) =>
    op((err, v) =>
      err ? reject(new SshTransientError(`SFTP on ${path} failed: ${err.message}`)) : resolve(v),
    ),
  );
}

const cache = new Map<string, Promise<SshConnection>>();

/** Cache key: who logs in where with which credential (hashed, so the key holds no secret). */
function cacheKey(o: SshConnectOptions): string {
  const secret = createHash('sha256')
    .update(String(o.privateKey ?? ''))
    .update('\0')
    .update(o.password ?? '')
    .update('\0')
    .update(o.hostKey ?? '')
    .digest('hex')
    .slice(0, 16);
  return `${o.username}@${o.host}:${o.port ?? 22}#${secret}`;
}

/**
 * A connection from the per-process cache, opened if needed; it closes itself after `idleMs` (default
 * 30 s) without use. Failed connects are not cached.
 */
export function getSshConnection(opts: SshConnectOptions, idleMs = 30_000): Promise<SshConnection> {
  const key = cacheKey(opts);
  const hit = cache.get(key);
  if (hit) {
    return hit.then((c) => {
      if (!c.closed) return c;
      if (cache.get(key) === hit) cache.delete(key);
      return getSshConnection(opts, idleMs);
    });
  }
  const p = SshConnection.open(opts, idleMs).then(
    (c) => {
      c.onClose = () => {
        if (cache.get(key) === p) cache.delete(key);
      };
      return c;
    },
    (e: unknown) => {
      cache.delete(key);
      throw e;
    },
  );
  cache.set(key, p);
  return p;
}

/** Closes every cached connection (tests, Lambda shutdown). */
export async function closeAllSshConnections(): Promise<void> {
  const all = [...cache.values()];
  cache.clear();
  for (const p of all) {
    try {
      (await p).close();
    } catch {
      // a failed connect has nothing to close
    }
  }
}
