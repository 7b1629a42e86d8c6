/** The pure rules of endpoint mode (core/endpoints.ts): answers checked field by field, poll lengths, views. */
import { describe, expect, it } from 'vitest';
import {
  ENDPOINT_ID,
  launchWaitDetail,
  MAX_ANSWER_TEXT,
  MAX_POLL_SECONDS,
  parseEndpointAnswer,
  pollSeconds,
  silentEndpointView,
} from '../core/endpoints.ts';
import { BadParameter } from '../core/errors.ts';

const base = { pilotId: 'pilot.0001', seq: 3 };

describe('parseEndpointAnswer', () => {
  it('takes each kind of answer', () => {
    expect(
      parseEndpointAnswer({ ...base, op: 'launch', ok: true, job: { jobId: '42', sandbox: '/h/s' } }),
    ).toEqual({
      ...base,
      op: 'launch',
      ok: true,
      job: { jobId: '42', sandbox: '/h/s' },
    });
    expect(
      parseEndpointAnswer({ ...base, op: 'check', ok: true, status: { state: 'queued', detail: 'PENDING' } }),
    ).toEqual({ ...base, op: 'check', ok: true, status: { state: 'queued', detail: 'PENDING' } });
    expect(parseEndpointAnswer({ ...base, op: 'check', ok: true, status: { state: 'running' } })).toEqual({
      ...base,
      op: 'check',
      ok: true,
      status: { state: 'running' },
    });
    expect(parseEndpointAnswer({ ...base, op: 'cancel', ok: true })).toEqual({
      ...base,
      op: 'cancel',
      ok: true,
    });
    expect(parseEndpointAnswer({ ...base, op: 'tail', ok: true, text: 'a\nb' })).toEqual({
      ...base,
      op: 'tail',
      ok: true,
      text: 'a\nb',
    });
    expect(parseEndpointAnswer({ ...base, op: 'launch', ok: false, error: 'sbatch: no' })).toEqual({
      ...base,
      op: 'launch',
      ok: false,
      error: 'sbatch: no',
    });
  });

  it('keeps the end of long texts (where the error is)', () => {
    const long = `${'x'.repeat(MAX_ANSWER_TEXT)}END`;
    const a = parseEndpointAnswer({ ...base, op: 'tail', ok: true, text: long });
    expect(a.ok && a.op === 'tail' && a.text.length).toBe(MAX_ANSWER_TEXT);
    expect(a.ok && a.op === 'tail' && a.text.endsWith('END')).toBe(true);
    const e = parseEndpointAnswer({ ...base, op: 'check', ok: false, error: long });
    expect(!e.ok && e.error.endsWith('END')).toBe(true);
    const d = parseEndpointAnswer({
      ...base,
      op: 'check',
      ok: true,
      status: { state: 'finished', detail: long },
    });
    expect(d.ok && d.op === 'check' && d.status.detail?.length).toBe(MAX_ANSWER_TEXT);
  });

  it.each([
    [{ ...base, pilotId: 'a b', op: 'cancel', ok: true }, 'pilotId'],
    [{ ...base, op: 'reboot', ok: true }, 'op'],
    [{ ...base, seq: 1.5, op: 'cancel', ok: true }, 'seq'],
    [{ ...base, op: 'cancel', ok: 'yes' }, 'ok'],
    [{ ...base, op: 'cancel', ok: false }, 'error'],
    [{ ...base, op: 'launch', ok: true }, 'job.jobId'],
    [{ ...base, op: 'launch', ok: true, job: { jobId: '1' } }, 'job.sandbox'],
    [{ ...base, op: 'check', ok: true, status: { state: 'odd' } }, 'status.state'],
    [{ ...base, op: 'check', ok: true, status: { state: 'queued', detail: 7 } }, 'status.detail'],
    [{ ...base, op: 'tail', ok: true }, 'text'],
  ])('refuses %j naming %s', (body, field) => {
    expect(() => parseEndpointAnswer(body as Record<string, unknown>)).toThrow(BadParameter);
    expect(() => parseEndpointAnswer(body as Record<string, unknown>)).toThrow(`endpoint answer.${field}:`);
  });
});

describe('pollSeconds', () => {
  it('defaults to the longest poll and takes 0 to the limit', () => {
    expect(pollSeconds(undefined)).toBe(MAX_POLL_SECONDS);
    expect(pollSeconds(0)).toBe(0);
    expect(pollSeconds(2.5)).toBe(2.5);
  });
  it.each([-1, MAX_POLL_SECONDS + 1, '5', Number.NaN])('refuses %j', (v) => {
    expect(() => pollSeconds(v)).toThrow(/waitSeconds/);
  });
});

describe('views while the endpoint is silent', () => {
  it('counts a job never reported as queued (the queue limit bounds the wait)', () => {
    expect(silentEndpointView('s.x', undefined, undefined)).toEqual({
      state: 'queued',
      detail: 'the endpoint for s.x has not answered (never seen)',
    });
  });
  it("keeps the last answer's state, marked as old", () => {
    expect(silentEndpointView('s.x', { state: 'running', detail: 'RUNNING' }, 'T')).toEqual({
      state: 'running',
      detail: 'RUNNING; the endpoint for s.x has not answered (last seen T)',
    });
    expect(silentEndpointView('s.x', { state: 'queued' }, 'T').detail).toBe(
      'the endpoint for s.x has not answered (last seen T)',
    );
  });
  it('says how to start an endpoint when none has polled', () => {
    expect(launchWaitDetail('s.x', undefined)).toContain('sortie endpoint start');
    expect(launchWaitDetail('s.x', 'T')).toContain('last seen T');
  });
  it('knows an endpoint id', () => {
    expect(ENDPOINT_ID.test('endpoint.0123456789abcdef')).toBe(true);
    expect(ENDPOINT_ID.test('pilot.0000')).toBe(false);
  });
});
