/**
 * Tokens and secrets. Session and pilot tokens are `<ids>~<secret>`; only a SHA-256 of the secret is
 * stored, compared in constant time. Credentials that must be used later (SSH keys, passwords) are
 * sealed with AES-256-GCM under the deployment's key (env SORTIE_SECRET_KEY: from Secrets Manager in
 * AWS, generated per backend locally), so DynamoDB never holds them in plaintext.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { AuthenticationFailed } from '../../core/errors.ts';
import { ENV } from '../../stacks/manifest.ts';

/** A fresh random secret (32 bytes, base64url). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * A pilot's secret: derived (HMAC-SHA256 under the deployment's key) from its session and pilot ids, not
 * drawn at random, so that a Launch retried after a dropped connection writes the very agent.json its first
 * attempt wrote: a batch job that first attempt submitted, and that the retry finds and keeps, starts an
 * agent whose token still opens the agent routes. Only its hash is stored, as for any secret; knowing it
 * takes the key that already seals the users' SSH credentials.
 */
export function pilotSecret(sessionId: string, pilotId: string): string {
  return createHmac('sha256', key()).update(`pilot-secret\0${sessionId}\0${pilotId}`).digest('base64url');
}

/** The stored form of a secret. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time check of a presented secret against its stored hash. */
export function secretMatches(secret: string, storedHash: string | undefined): boolean {
  if (!storedHash) return false;
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Splits `Authorization: Bearer a~b~c` into its parts; throws AuthenticationFailed when absent. */
export function bearerParts(headers: Record<string, string | undefined>, parts: number): string[] {
  const h = headers.authorization ?? headers.Authorization;
  const m = h ? /^Bearer\s+(\S+)$/i.exec(h) : null;
  const fields = m?.[1]?.split('~') ?? [];
  if (fields.length !== parts || fields.some((f) => f === '')) {
    throw new AuthenticationFailed('missing or malformed bearer token (Authorization: Bearer <token>)');
  }
  return fields;
}

function key(): Buffer {
  const k = process.env[ENV.secretKey];
  if (!k || k.length < 16)
    throw new Error(`environment variable ${ENV.secretKey} is required (at least 16 characters)`);
  return createHash('sha256').update(k).digest();
}

/** Seals a secret for storage: `v1:<base64(iv | tag | ciphertext)>`. */
export function seal(plaintext: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key(), iv);
  const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  return `v1:${Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64')}`;
}

/** Opens a sealed secret; throws if it was tampered with or sealed under another key. */
export function unseal(sealed: string): string {
  if (!sealed.startsWith('v1:')) throw new Error('unsupported sealed secret format');
  const raw = Buffer.from(sealed.slice(3), 'base64');
  const d = createDecipheriv('aes-256-gcm', key(), raw.subarray(0, 12));
  d.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
}
