import { describe, expect, it } from 'vitest';
import { describeNodes, type Slot, SlotScheduler, tooBigForPilot } from '../core/slots.ts';

const nodes = (n: number, cores: number, gpus = 0) =>
  Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}`, cores, gpus }));

describe('SlotScheduler', () => {
  it('keeps a non-MPI unit on one node with the lowest free core ids', () => {
    const s = new SlotScheduler(nodes(2, 4));
    expect(s.allocate({ cores: 3, gpus: 0, mpi: false })).toEqual([
      { node: 0, name: 'n1', cores: [0, 1, 2], gpus: [] },
    ]);
    // 2 cores do not fit on n1 (1 left): they go to n2, not split.
    expect(s.allocate({ cores: 2, gpus: 0, mpi: false })).toEqual([
      { node: 1, name: 'n2', cores: [0, 1], gpus: [] },
    ]);
    expect(s.allocate({ cores: 1, gpus: 0, mpi: false })).toEqual([
      { node: 0, name: 'n1', cores: [3], gpus: [] },
    ]);
    expect(s.allocate({ cores: 3, gpus: 0, mpi: false })).toBeUndefined();
    expect(s.freeCores).toBe(2);
  });

  it('spreads an MPI unit over nodes in order (CONTINUOUS) and gives back exactly what it took', () => {
    const s = new SlotScheduler(nodes(3, 2));
    const one = s.allocate({ cores: 1, gpus: 0, mpi: false }) as Slot[];
    const mpi = s.allocate({ cores: 4, gpus: 0, mpi: true }) as Slot[];
    expect(mpi).toEqual([
      { node: 0, name: 'n1', cores: [1], gpus: [] },
      { node: 1, name: 'n2', cores: [0, 1], gpus: [] },
      { node: 2, name: 'n3', cores: [0], gpus: [] },
    ]);
    expect(s.allocate({ cores: 2, gpus: 0, mpi: true })).toBeUndefined();
    s.release(mpi);
    expect(s.freeCores).toBe(5);
    expect(() => s.release(mpi)).toThrow(/not taken/);
    s.release(one);
    expect(s.freeCores).toBe(6);
  });

  it('assigns distinct GPU ids and never shares them unless allowed', () => {
    const s = new SlotScheduler(nodes(1, 4, 2));
    const a = s.allocate({ cores: 1, gpus: 1, mpi: false }) as Slot[];
    const b = s.allocate({ cores: 1, gpus: 1, mpi: false }) as Slot[];
    expect([a[0]?.gpus, b[0]?.gpus]).toEqual([[0], [1]]);
    expect(s.allocate({ cores: 1, gpus: 1, mpi: false })).toBeUndefined();
    expect(s.allocate({ cores: 1, gpus: 0, mpi: false })).toBeDefined();
    s.release(a);
    expect(s.allocate({ cores: 1, gpus: 1, mpi: false })?.[0]?.gpus).toEqual([0]);

    const shared = new SlotScheduler(nodes(1, 4, 2), true);
    const ids = [1, 2, 3].map((_) => shared.allocate({ cores: 1, gpus: 1, mpi: false })?.[0]?.gpus);
    expect(ids).toEqual([[0], [1], [0]]);
  });

  it('names the request and the pilot size when a unit can never fit', () => {
    const s = new SlotScheduler(nodes(2, 4, 1));
    expect(s.neverFits({ cores: 4, gpus: 1, mpi: false })).toBeUndefined();
    expect(s.neverFits({ cores: 8, gpus: 0, mpi: true })).toBeUndefined();
    expect(s.neverFits({ cores: 5, gpus: 0, mpi: false })).toBe(
      'unit needs 5 cores and 0 GPUs on one node (not MPI), but the pilot has 2 nodes × 4 cores, 1 GPU per node',
    );
    expect(s.neverFits({ cores: 9, gpus: 0, mpi: true })).toMatch(/9 cores and 0 GPUs \(MPI/);
    expect(s.neverFits({ cores: 1, gpus: 2, mpi: false })).toMatch(/1 core and 2 GPUs on one node/);
    expect(
      new SlotScheduler([{ name: 'h', cores: 2, gpus: 0 }]).neverFits({ cores: 3, gpus: 0, mpi: false }),
    ).toMatch(/pilot has 1 node with 2 cores and 0 GPUs/);
  });

  it('keeps an MPI unit that needs GPUs on one node, and says so when no node can hold it', () => {
    const s = new SlotScheduler(nodes(2, 4, 2));
    // 4 ranks and 2 GPUs: one node holds them; the ranks all see that node's GPU ids.
    const one = s.allocate({ cores: 4, gpus: 2, mpi: true }) as Slot[];
    expect(one).toHaveLength(1);
    expect(one[0]?.gpus).toEqual([0, 1]);
    // The first node is full: a second such unit takes the other one whole rather than spreading.
    expect(s.allocate({ cores: 4, gpus: 2, mpi: true })?.map((x) => x.name)).toEqual(['n2']);
    expect(s.neverFits({ cores: 4, gpus: 4, mpi: true })).toMatch(
      /an MPI unit with GPUs must fit on one node \(per-node GPU lists for its ranks are not built yet\)/,
    );
    // Without GPUs an MPI unit still spans nodes.
    expect(s.neverFits({ cores: 8, gpus: 0, mpi: true })).toBeUndefined();
    expect(
      tooBigForPilot(
        { cores: 4, gpus: 4, mpi: true },
        { cores: 8, gpus: 4, coresPerNode: 4, gpusPerNode: 2 },
      ),
    ).toMatch(/on one node/);
  });

  it('never lets a node run more cores or GPUs than it has over a long random run', () => {
    // Deterministic pseudo-random sequence so that a failure is reproducible.
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const spec = [
      { name: 'a', cores: 4, gpus: 2 },
      { name: 'b', cores: 2, gpus: 0 },
      { name: 'c', cores: 8, gpus: 4 },
    ];
    const s = new SlotScheduler(spec);
    const held: Slot[][] = [];
    const busy = spec.map(() => ({ cores: new Set<number>(), gpus: new Set<number>() }));
    let placed = 0;
    for (let step = 0; step < 5000; step++) {
      if (held.length && rnd(3) === 0) {
        const [slots] = held.splice(rnd(held.length), 1);
        for (const sl of slots ?? []) {
          for (const c of sl.cores) busy[sl.node]?.cores.delete(c);
          for (const g of sl.gpus) busy[sl.node]?.gpus.delete(g);
        }
        s.release(slots ?? []);
        continue;
      }
      const r = { cores: 1 + rnd(6), gpus: rnd(3), mpi: rnd(4) === 0 };
      const slots = s.allocate(r);
      if (!slots) continue;
      placed++;
      if (!r.mpi) expect(slots).toHaveLength(1);
      expect(slots.reduce((n, sl) => n + sl.cores.length, 0)).toBe(r.cores);
      expect(slots.reduce((n, sl) => n + sl.gpus.length, 0)).toBe(r.gpus);
      for (const sl of slots) {
        const b = busy[sl.node] as { cores: Set<number>; gpus: Set<number> };
        for (const c of sl.cores) {
          expect(b.cores.has(c)).toBe(false);
          expect(c).toBeLessThan(spec[sl.node]?.cores ?? 0);
          b.cores.add(c);
        }
        for (const g of sl.gpus) {
          expect(b.gpus.has(g)).toBe(false);
          expect(g).toBeLessThan(spec[sl.node]?.gpus ?? 0);
          b.gpus.add(g);
        }
      }
      held.push(slots);
    }
    expect(placed).toBeGreaterThan(500);
    for (const h of held) s.release(h);
    expect(s.freeCores).toBe(14);
    expect(s.freeGpus).toBe(6);
  });
});

describe('tooBigForPilot (the submit check)', () => {
  it('judges non-MPI units by one node, MPI units by the whole pilot', () => {
    const p = { cores: 256, gpus: 8, coresPerNode: 64, gpusPerNode: 4 };
    expect(tooBigForPilot({ cores: 64, gpus: 4, mpi: false }, p)).toBeUndefined();
    expect(tooBigForPilot({ cores: 256, gpus: 0, mpi: true }, p)).toBeUndefined();
    // With GPUs an MPI unit must fit on one node (its ranks share one GPU list).
    expect(tooBigForPilot({ cores: 64, gpus: 4, mpi: true }, p)).toBeUndefined();
    expect(tooBigForPilot({ cores: 256, gpus: 8, mpi: true }, p)).toMatch(/on one node \(MPI with GPUs\)/);
    expect(tooBigForPilot({ cores: 65, gpus: 0, mpi: false }, p)).toBe(
      'unit needs 65 cores and 0 GPUs on one node (not MPI), but the pilot has 256 cores and 8 GPUs, 64 cores and 4 GPUs per node',
    );
    expect(tooBigForPilot({ cores: 1, gpus: 9, mpi: true }, p)).toMatch(
      /1 core and 9 GPUs on one node \(MPI with GPUs/,
    );
    // Fork resources: the node is the pilot.
    expect(tooBigForPilot({ cores: 4, gpus: 0, mpi: false }, { cores: 4 })).toBeUndefined();
    expect(tooBigForPilot({ cores: 1, gpus: 1, mpi: false }, { cores: 4 })).toBe(
      'unit needs 1 core and 1 GPU on one node (not MPI), but the pilot has 4 cores and 0 GPUs',
    );
  });

  it('describes uneven pilots node by node', () => {
    expect(
      describeNodes([
        { name: 'a', cores: 4, gpus: 1 },
        { name: 'b', cores: 2, gpus: 0 },
      ]),
    ).toBe('2 nodes (a: 4 cores, 1 GPU; b: 2 cores, 0 GPUs)');
    expect(() => new SlotScheduler([])).toThrow(/at least one node/);
  });
});
