/**
 * A security context (RP's `Context`, from SAGA): the credentials a session uses to reach resources.
 * Only `ssh` (key or password) and `userpass` are meaningful to Sortie's launchers.
 */

/** Context types RP accepts; Sortie launches with `ssh`. */
export type ContextType = 'ssh' | 'userpass' | 'gsissh' | 'x509' | 'myproxy';

/** Credentials for a resource. Sent once to the API (encrypted at rest there), never logged. */
export class Context {
  userId?: string;
  /** Private key (PEM/OpenSSH text), or a path to it: the SDK reads the file. */
  userKey?: string;
  userPass?: string;
  /** A key pair Sortie generated for you (`session.generateKey`): its id stands in for `userKey`. */
  keyId?: string;
  /** Restrict this context to one resource key (default: every resource of the session). */
  resource?: string;
  /**
   * Which credential the backend holds for a context listed after `Session.reconnect` (the key or
   * password itself is never returned): a private key, a password, a generated key, or none (userId only).
   */
  credential?: 'key' | 'password' | 'generatedKey' | 'none';

  constructor(
    readonly type: ContextType,
    init: {
      userId?: string;
      userKey?: string;
      userPass?: string;
      keyId?: string;
      resource?: string;
      credential?: Context['credential'];
    } = {},
  ) {
    Object.assign(this, init);
  }

  /** RP's `Context.from_dict`. */
  static fromDict(d: {
    type: ContextType;
    userId?: string;
    userKey?: string;
    userPass?: string;
    resource?: string;
  }): Context {
    const { type, ...rest } = d;
    return new Context(type, rest);
  }

  /** Hides secrets when printed or logged. */
  toJSON(): Record<string, unknown> {
    return {
      type: this.type,
      userId: this.userId,
      userKey: this.userKey ? '***' : undefined,
      userPass: this.userPass ? '***' : undefined,
      keyId: this.keyId ? '***' : undefined,
    };
  }
}
