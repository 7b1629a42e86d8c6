/**
 * Packing units into SQS messages (functions/lib/queues.ts): every unit travels exactly once, in order;
 * no message body and no SendMessageBatch exceeds its byte limit, counted in UTF-8 bytes as SQS counts
 * them; and queue names stay within SQS's rules.
 */
import { describe, expect, it } from 'vitest';
import { batchBodies, packUnits, pilotQueueName, type QueuedUnit } from '../functions/lib/queues.ts';

const MESSAGE_BYTES = 24 * 1024;
const BATCH_BYTES = 250 * 1024;
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

function unit(i: number, argBytes = 20, char = 'a'): QueuedUnit {
  return {
    uid: `unit.${String(i).padStart(6, '0')}`,
    ...(i % 3 === 0 ? { name: `n${i}` } : {}),
    description: { executable: '/bin/echo', arguments: [char.repeat(argBytes)] } as QueuedUnit['description'],
  };
}

/** The units the bodies carry, in order. */
const unpack = (bodies: string[]) => bodies.flatMap((b) => (JSON.parse(b) as { units: QueuedUnit[] }).units);

describe('packUnits', () => {
  it('no units, no message', () => {
    expect(packUnits([])).toEqual([]);
  });

  it('small units share one message, as {"units":[...]}, in order', () => {
    const units = [unit(1), unit(2), unit(3)];
    const bodies = packUnits(units);
    expect(bodies).toHaveLength(1);
    expect(JSON.parse(bodies[0] ?? '')).toEqual({ units });
  });

  it('thousands of units: each exactly once, in order, every body within the limit and most of it used', () => {
    const units = Array.from({ length: 5_000 }, (_, i) => unit(i, i % 200));
    const bodies = packUnits(units);
    expect(unpack(bodies)).toEqual(units);
    for (const b of bodies) expect(bytes(b)).toBeLessThanOrEqual(MESSAGE_BYTES);
    // Full messages, not one unit per message: all but the last are within one unit of the limit.
    for (const b of bodies.slice(0, -1)) expect(bytes(b)).toBeGreaterThan(MESSAGE_BYTES - 400);
  });

  it('counts UTF-8 bytes, not characters: units with multi-byte text stay within the limit too', () => {
    const units = Array.from({ length: 300 }, (_, i) => unit(i, 500, i % 2 ? 'é' : '漢'));
    const bodies = packUnits(units);
    expect(unpack(bodies)).toEqual(units);
    for (const b of bodies) expect(bytes(b)).toBeLessThanOrEqual(MESSAGE_BYTES);
  });

  it('a unit bigger than a message travels alone, between its neighbours', () => {
    const big = unit(2, 100 * 1024);
    const bodies = packUnits([unit(1), big, unit(3)]);
    expect(bodies.map((b) => unpack([b]).map((u) => u.uid))).toEqual([
      ['unit.000001'],
      ['unit.000002'],
      ['unit.000003'],
    ]);
    expect(bytes(bodies[1] ?? '')).toBeGreaterThan(MESSAGE_BYTES);
  });
});

describe('batchBodies', () => {
  it('at most ten messages per SendMessageBatch, every body once, in order', () => {
    const bodies = packUnits(Array.from({ length: 20_000 }, (_, i) => unit(i, 40)));
    expect(bodies.length).toBeGreaterThan(20);
    const batches = batchBodies(bodies);
    expect(batches.flat()).toEqual(bodies);
    for (const b of batches) expect(b.length).toBeLessThanOrEqual(10);
    for (const b of batches) expect(bytes(b.join(''))).toBeLessThanOrEqual(BATCH_BYTES);
  });

  it('fewer than ten per batch when the bodies are big, counted in UTF-8 bytes', () => {
    const units = Array.from({ length: 12 }, (_, i) => unit(i, 20 * 1024, '漢'));
    const batches = batchBodies(packUnits(units));
    expect(unpack(batches.flat())).toEqual(units);
    for (const b of batches) expect(bytes(b.join(''))).toBeLessThanOrEqual(BATCH_BYTES);
    expect(batches.length).toBeGreaterThan(1);
  });

  it('no bodies, no batch', () => {
    expect(batchBodies([])).toEqual([]);
  });
});

describe('pilotQueueName', () => {
  it('replaces what SQS does not allow and keeps short names whole', () => {
    const name = pilotQueueName('session.2026.abc', 'pilot.0001');
    expect(name).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(name.endsWith('session_2026_abc-pilot_0001')).toBe(true);
  });

  it('shortens long names to 80 characters keeping both ends, so two pilots of a session still differ', () => {
    const sid = `session.${'x'.repeat(90)}`;
    const a = pilotQueueName(sid, 'pilot.0001');
    const b = pilotQueueName(sid, 'pilot.0002');
    expect(a).toHaveLength(80);
    expect(a).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(a.endsWith('pilot_0001')).toBe(true);
    expect(a).not.toBe(b);
  });
});
