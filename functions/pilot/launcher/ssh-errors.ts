/**
 * Typed SSH failures. Each says whether retrying can help (`permanent`), so the pilot state machine can
 * fail a pilot at once on a wrong key or a changed host key instead of retrying for minutes, while a
 * dropped connection is retried. Messages say what to do; they never contain key material or passwords.
 */
import {
  AuthenticationFailed,
  NoSuccess,
  PermissionDenied,
  type PilotException,
  Timeout,
} from '../../../core/errors.ts';

/** What went wrong, for logs and branching without instanceof chains. */
export type SshFailure =
  | 'authentication'
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'unreachable'
  | 'timeout'
  | 'transient';

/** The login node refused every credential offered. Permanent: fix the key, password or user name. */
export class SshAuthenticationFailed extends AuthenticationFailed {
  readonly permanent = true;
  readonly failure: SshFailure = 'authentication';
}

/** The host key is not the pinned/recorded one, or unknown while trust-on-first-use is off. Permanent. */
export class SshHostKeyRejected extends PermissionDenied {
  readonly permanent = true;
  constructor(
    message: string,
    readonly failure: 'host-key-unknown' | 'host-key-changed',
  ) {
    super(message);
  }
}

/** Nothing answers at host:port (refused, no route, DNS, handshake timeout). Permanent for this launch. */
export class SshUnreachable extends NoSuccess {
  readonly permanent = true;
  readonly failure: SshFailure = 'unreachable';
}

/** A remote command outlived its deadline. Retrying may help. */
export class SshTimeout extends Timeout {
  readonly permanent = false;
  readonly failure: SshFailure = 'timeout';
}

/** The connection dropped or a channel could not be opened; a retry on a fresh connection may help. */
export class SshTransientError extends NoSuccess {
  readonly permanent = false;
  readonly failure: SshFailure = 'transient';
}

/** Any of the typed SSH errors. */
export type SshError =
  | SshAuthenticationFailed
  | SshHostKeyRejected
  | SshUnreachable
  | SshTimeout
  | SshTransientError;

/** True for SSH errors that retrying cannot fix. */
export function isPermanentSshError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'permanent' in e && e.permanent === true;
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Maps an ssh2 connection error to a typed one. `where` is `user@host:port`, which is all the message
 * mentions about the connection.
 */
export function classifyConnectError(err: unknown, where: string): PilotException {
  const e = (err ?? {}) as { level?: string; code?: string; message?: string };
  const msg = e.message ?? String(err);
  if (e.level === 'client-authentication')
    return new SshAuthenticationFailed(
      `SSH authentication failed for ${where}: the server accepted none of the offered credentials; ` +
        'check the user name and that the public key is in ~/.ssh/authorized_keys there',
      { cause: err },
    );
  if (e.level === 'client-timeout')
    return new SshUnreachable(
      `SSH to ${where} timed out during the handshake; check host, port and firewalls`,
      { cause: err },
    );
  if (e.code && UNREACHABLE_CODES.has(e.code))
    return new SshUnreachable(`cannot reach SSH at ${where} (${e.code}); check host and port`, {
      cause: err,
    });
  if (e.level === 'client-dns')
    return new SshUnreachable(`cannot resolve the SSH host of ${where}`, { cause: err });
  return new SshTransientError(`SSH connection to ${where} failed: ${msg}`, { cause: err });
}
