/**
 * Tokens and sealed secrets (functions/lib/secrets.ts): what is stored never holds the secret, a sealed
 * credential opens only under the key it was sealed with, and any change to it is detected.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthenticationFailed } from '../core/errors.ts';
import { bearerParts, hashSecret, newSecret, seal, secretMatches, unseal } from '../functions/lib/secrets.ts';
import { ENV } from '../stacks/manifest.ts';

const KEY = 'a-deployment-key-of-some-length';
const PEM =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';

beforeEach(() => {
  vi.stubEnv(ENV.secretKey, KEY);
});
afterEach(() => {
  vi.unstubAllEnvs();
});

describe('seal / unseal', () => {
  it('round-trips any text (multi-line keys, unicode, empty)', () => {
    for (const text of [PEM, 'pässwörd ✓', '', 'x'.repeat(20_000)]) expect(unseal(seal(text))).toBe(text);
  });

  it('stores no plaintext: versioned base64 of iv, tag and ciphertext, fresh iv every time', () => {
    const a = seal(PEM);
    const b = seal(PEM);
    expect(a).toMatch(/^v1:[A-Za-z0-9+/]+=*$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain('PRIVATE KEY');
    expect(Buffer.from(a.slice(3), 'base64').toString('latin1')).not.toContain('PRIVATE KEY');
    // 12-byte iv + 16-byte tag + the ciphertext, as long as the text (GCM is a stream mode).
    expect(Buffer.from(a.slice(3), 'base64')).toHaveLength(12 + 16 + Buffer.byteLength(PEM));
  });

  it('refuses a sealed secret whose ciphertext, tag or iv was changed', () => {
    const raw = Buffer.from(seal(PEM).slice(3), 'base64');
    for (const at of [0, 12, 28, raw.length - 1]) {
      const bent = Buffer.from(raw);
      bent[at] = (bent[at] ?? 0) ^ 1;
      expect(() => unseal(`v1:${bent.toString('base64')}`), `byte ${at}`).toThrow();
    }
    expect(() => unseal(`v1:${raw.subarray(0, raw.length - 1).toString('base64')}`)).toThrow();
  });

  it('refuses a secret sealed under another deployment key', () => {
    const sealed = seal(PEM);
    vi.stubEnv(ENV.secretKey, 'another-deployment-key-entirely');
    expect(() => unseal(sealed)).toThrow();
  });

  it('refuses an unknown format', () => {
    expect(() => unseal(PEM)).toThrow('unsupported sealed secret format');
    expect(() => unseal(`v2:${seal('x').slice(3)}`)).toThrow('unsupported sealed secret format');
  });

  it('needs a deployment key of at least 16 characters, naming the variable', () => {
    vi.stubEnv(ENV.secretKey, 'short');
    expect(() => seal('x')).toThrow(`${ENV.secretKey} is required (at least 16 characters)`);
    vi.stubEnv(ENV.secretKey, '');
    expect(() => seal('x')).toThrow(ENV.secretKey);
  });
});

describe('secrets and their stored hashes', () => {
  it('a fresh secret is 32 random bytes in base64url, different every time', () => {
    const a = newSecret();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
    expect(newSecret()).not.toBe(a);
  });

  it('matches the secret it was made from and nothing else', () => {
    const s = newSecret();
    const stored = hashSecret(s);
    expect(stored).toMatch(/^[0-9a-f]{64}$/);
    expect(stored).not.toContain(s);
    expect(secretMatches(s, stored)).toBe(true);
    expect(secretMatches(`${s}x`, stored)).toBe(false);
    expect(secretMatches('', stored)).toBe(false);
    expect(secretMatches(s, undefined)).toBe(false);
    expect(secretMatches(s, '')).toBe(false);
    expect(secretMatches(s, 'abcd')).toBe(false); // a malformed stored hash, shorter than SHA-256
  });
});

describe('bearerParts', () => {
  it('splits a bearer token into its ~-separated parts (either header casing, any scheme casing)', () => {
    expect(bearerParts({ authorization: 'Bearer s1~p1~sec' }, 3)).toEqual(['s1', 'p1', 'sec']);
    expect(bearerParts({ Authorization: 'bearer s1~sec' }, 2)).toEqual(['s1', 'sec']);
  });

  it('refuses a missing, malformed or wrongly shaped token with AuthenticationFailed', () => {
    const bad: Record<string, string | undefined>[] = [
      {},
      { authorization: undefined },
      { authorization: 's1~sec' }, // no scheme
      { authorization: 'Basic s1~sec' },
      { authorization: 'Bearer s1~sec extra' },
      { authorization: 'Bearer s1~p1~sec' }, // three parts where two are wanted
      { authorization: 'Bearer s1~' }, // empty part
      { authorization: 'Bearer ~sec' },
    ];
    for (const headers of bad) {
      expect(() => bearerParts(headers, 2), JSON.stringify(headers)).toThrow(AuthenticationFailed);
    }
  });
});
