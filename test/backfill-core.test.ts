/** The backfilling scheduler's pure part (core/backfill.ts): the pull's offer, its check and RP's fitting rule. */
import { describe, expect, it } from 'vitest';
import {
  hasRoom,
  MAX_FREE_NODES,
  parseFreeRoom,
  pickFitting,
  requestOf,
  roomAfter,
} from '../core/backfill.ts';
import { BadParameter } from '../core/errors.ts';
import { SlotScheduler } from '../core/slots.ts';

const one = (cores: number, gpus = 0, mpi = false) => ({ cores, gpus, mpi });

describe('parseFreeRoom', () => {
  it('takes a list of {cores, gpus} per node, dropping anything else', () => {
    expect(
      parseFreeRoom([
        { cores: 2, gpus: 0, name: 'x' },
        { cores: 0, gpus: 1 },
      ]),
    ).toEqual([
      { cores: 2, gpus: 0 },
      { cores: 0, gpus: 1 },
    ]);
    expect(parseFreeRoom(undefined)).toBeUndefined();
    expect(parseFreeRoom(null)).toBeUndefined();
  });

  it('refuses anything else with a 400 naming the field and the value', () => {
    const tooMany = Array.from({ length: MAX_FREE_NODES + 1 }, () => ({ cores: 1, gpus: 0 }));
    for (const bad of [
      3,
      'x',
      [{ cores: -1, gpus: 0 }],
      [{ cores: 1.5, gpus: 0 }],
      [{ cores: 1 }],
      [null],
      tooMany,
    ]) {
      expect(() => parseFreeRoom(bad), JSON.stringify(bad).slice(0, 40)).toThrow(BadParameter);
    }
    expect(() => parseFreeRoom([{ cores: -1, gpus: 0 }])).toThrow('pull.free: must be a list');
    expect(() => parseFreeRoom([{ cores: -1, gpus: 0 }])).toThrow('got [{"cores":-1,"gpus":0}]');
  });
});

describe('hasRoom', () => {
  it('needs a free core somewhere', () => {
    expect(hasRoom(undefined)).toBe(false);
    expect(hasRoom([])).toBe(false);
    expect(hasRoom([{ cores: 0, gpus: 4 }])).toBe(false);
    expect(
      hasRoom([
        { cores: 0, gpus: 0 },
        { cores: 1, gpus: 0 },
      ]),
    ).toBe(true);
  });
});

describe('pickFitting (RP 0.22 backfilling: in queue order, every unit that still fits)', () => {
  it('takes units in order while they fit, and skips one that does not to take smaller ones behind it', () => {
    // 4 free cores: 2 fits, 4 does not any more (2 left), 1 and 1 fill the rest, the last 1 has no room.
    expect(pickFitting([one(2), one(4), one(1), one(1), one(1)], [{ cores: 4, gpus: 0 }])).toEqual([0, 2, 3]);
  });

  it('offers nothing when there is no free core', () => {
    expect(pickFitting([one(1)], [])).toEqual([]);
    expect(pickFitting([one(1)], [{ cores: 0, gpus: 2 }])).toEqual([]);
  });

  it('keeps a non-MPI unit on one node and lets an MPI unit span nodes, as the agent does', () => {
    const free = [
      { cores: 2, gpus: 0 },
      { cores: 2, gpus: 0 },
    ];
    expect(pickFitting([one(3)], free)).toEqual([]);
    expect(pickFitting([one(3, 0, true)], free)).toEqual([0]);
  });

  it('counts GPUs', () => {
    expect(pickFitting([one(1, 1), one(1, 1), one(1)], [{ cores: 4, gpus: 1 }])).toEqual([0, 2]);
  });
});

describe('requestOf', () => {
  it('reads cores (default 1), gpus (default 0) and mpi', () => {
    expect(requestOf({})).toEqual(one(1));
    expect(requestOf({ cores: 3, gpus: 1, mpi: true })).toEqual(one(3, 1, true));
  });
});

describe('roomAfter', () => {
  const node = (cores: number, gpus = 0) => ({ name: 'n', cores, gpus });

  it('is the free room less the units held, in order', () => {
    expect(roomAfter([node(4, 2)], [one(1, 1), one(2)])).toEqual([{ cores: 1, gpus: 1 }]);
    expect(roomAfter([node(4)], [])).toEqual([{ cores: 4, gpus: 0 }]);
  });

  it('offers nothing when a held unit does not fit now (nothing claimed would start before it)', () => {
    expect(roomAfter([node(2)], [one(1), one(2)])).toEqual([]);
    expect(roomAfter([], [])).toEqual([]);
  });

  it('with shared GPUs offers every GPU of a node', () => {
    expect(roomAfter([node(4, 2)], [one(1, 2)], true)).toEqual([{ cores: 3, gpus: 2 }]);
  });
});

describe('SlotScheduler.freeNodes', () => {
  it('reports each node with what is free there now', () => {
    const s = new SlotScheduler([
      { name: 'a', cores: 2, gpus: 1 },
      { name: 'b', cores: 4, gpus: 0 },
    ]);
    s.allocate(one(2, 1));
    expect(s.freeNodes()).toEqual([
      { name: 'a', cores: 0, gpus: 0 },
      { name: 'b', cores: 4, gpus: 0 },
    ]);
  });
});
