import { describe, expect, it } from 'vitest';
import { parsePilotDescription, parseUnitDescription, parseUnitDescriptions } from '../core/descriptions.ts';
import { BadParameter } from '../core/errors.ts';
import { resolveStagingPath, type StagingDirective, unbuiltDirective } from '../core/staging.ts';

function errorOf(fn: () => unknown): BadParameter {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BadParameter);
    return e as BadParameter;
  }
  throw new Error('expected BadParameter');
}

describe('parsePilotDescription', () => {
  it('accepts the mandatory keys and the extensions', () => {
    const d = parsePilotDescription({
      resource: 'local.localhost',
      runtime: 10,
      cores: 4,
      gpus: 0,
      nodes: 1,
    });
    expect(d).toEqual({ resource: 'local.localhost', runtime: 10, cores: 4, gpus: 0, nodes: 1 });
  });

  it('renames RP snake_case keys', () => {
    const d = parsePilotDescription({ resource: 'r.x', runtime: 1, cores: 1, access_schema: 'ssh' });
    expect(d.accessSchema).toBe('ssh');
  });

  it.each([
    [{ runtime: 1, cores: 1 }, 'pilot description resource: is required'],
    [{ resource: 'r', runtime: 0, cores: 1 }, 'pilot description runtime: must be a positive integer, got 0'],
    [
      { resource: 'r', runtime: 1.5, cores: 1 },
      'pilot description runtime: must be a positive integer, got 1.5',
    ],
    [
      { resource: 'r', runtime: 1, cores: '4' },
      'pilot description cores: must be a positive integer, got "4"',
    ],
    [
      { resource: 'r', runtime: 1, cores: 1, cleanup: 'yes' },
      'pilot description cleanup: must be true or false',
    ],
    [{ resource: 'r', runtime: 1, cores: 1, walltime: 5 }, 'pilot description walltime: unknown key, got 5'],
    [
      { resource: 'r', runtime: 1, cores: 1, access_schema: 'ssh', accessSchema: 'local' },
      'pilot description accessSchema: duplicates accessSchema',
    ],
  ])('refuses %j', (input, message) => {
    expect(errorOf(() => parsePilotDescription(input)).message).toContain(message);
  });
});

describe('parseUnitDescription', () => {
  it('sets the defaults', () => {
    expect(parseUnitDescription({ executable: '/bin/date' })).toEqual({ executable: '/bin/date', cores: 1 });
  });

  it('renames RP snake_case keys', () => {
    const d = parseUnitDescription({
      executable: '/bin/sh',
      pre_exec: ['module load x'],
      post_exec: ['echo done'],
      input_staging: ['in.txt'],
      output_data: ['out.txt'],
    });
    expect(d.preExec).toEqual(['module load x']);
    expect(d.postExec).toEqual(['echo done']);
    expect(d.inputStaging?.[0]?.source).toBe('in.txt');
    expect(d.outputStaging?.[0]?.source).toBe('out.txt');
  });

  it('takes numeric environment values as their string and environment null as none, as RP writes them', () => {
    const d = parseUnitDescription({
      executable: 'x',
      environment: { OMP_NUM_THREADS: 4, RATIO: 0.5, S: 's' },
    });
    expect(d.environment).toEqual({ OMP_NUM_THREADS: '4', RATIO: '0.5', S: 's' });
    const none = parseUnitDescription({ executable: 'x', environment: null });
    expect(none).toEqual({ executable: 'x', cores: 1 });
    expect('environment' in none).toBe(false);
  });

  it('accepts every field', () => {
    const full = {
      executable: '/bin/echo',
      arguments: ['a', 'b'],
      environment: { A: '1' },
      cores: 2,
      mpi: true,
      preExec: [],
      postExec: [],
      inputStaging: [],
      outputStaging: [],
      name: 'u',
      cleanup: true,
      stdout: 'out',
      stderr: 'err',
      restartable: true,
      gpus: 1,
    };
    expect(parseUnitDescription(full)).toEqual(full);
  });

  describe('staging', () => {
    const defaults = { action: 'Transfer', flags: ['CreateParents', 'SkipFailed'], priority: 0 };
    it.each([
      ['data/in.txt', { source: 'data/in.txt', target: 'in.txt' }],
      ['a.txt > b.txt', { source: 'a.txt', target: 'b.txt' }],
      ['b.txt < a.txt', { source: 'a.txt', target: 'b.txt' }],
      ['sftp://host/x/y.dat>y.dat', { source: 'sftp://host/x/y.dat', target: 'y.dat' }],
      ['staging:///shared', { source: 'staging:///shared', target: 'shared' }],
    ])('expands the shorthand %j', (shorthand, expected) => {
      const d = parseUnitDescription({ executable: 'x', inputStaging: [shorthand] });
      expect(d.inputStaging).toEqual([{ ...expected, ...defaults }]);
    });

    it('accepts the object form and a single directive', () => {
      const d = parseUnitDescription({
        executable: 'x',
        outputStaging: { source: 'o', target: 'p', action: 'Copy', flags: ['SkipFailed'], priority: 2 },
      });
      expect(d.outputStaging).toEqual([
        { source: 'o', target: 'p', action: 'Copy', flags: ['SkipFailed'], priority: 2 },
      ]);
    });

    it.each([
      ['a >> b', "inputStaging[0]: append ('>>', '<<') is not supported"],
      ['b << a', "inputStaging[0]: append ('>>', '<<') is not supported"],
      ['a > b > c', 'inputStaging[0]: must be'],
      ['a > ', 'inputStaging[0]: both sides'],
    ])('refuses the shorthand %j', (shorthand, message) => {
      const err = errorOf(() => parseUnitDescription({ executable: 'x', inputStaging: [shorthand] }));
      expect(err.message).toContain(message);
      expect(err.message).toContain(JSON.stringify(shorthand));
    });

    it('refuses an unknown action, naming the allowed ones', () => {
      const err = errorOf(() =>
        parseUnitDescription({ executable: 'x', inputStaging: [{ source: 'a', action: 'Teleport' }] }),
      );
      expect(err.message).toBe(
        'unit description inputStaging[0].action: must be one of Copy, Link, Move, Transfer, got "Teleport"',
      );
    });

    it('refuses an unknown flag and an unknown directive key', () => {
      expect(
        errorOf(() =>
          parseUnitDescription({ executable: 'x', inputStaging: [{ source: 'a', flags: ['Nope'] }] }),
        ).message,
      ).toContain('inputStaging[0].flags[0]: must be one of CreateParents, SkipFailed, got "Nope"');
      expect(
        errorOf(() => parseUnitDescription({ executable: 'x', inputStaging: [{ source: 'a', mode: 1 }] }))
          .message,
      ).toContain('inputStaging[0].mode: unknown key, got 1');
    });

    it('pairs lists of sources and targets into one directive per file (RP)', () => {
      const d = parseUnitDescription({
        executable: 'x',
        inputStaging: [
          { source: ['a', '/p/b'], target: ['x/a', 'b2'], action: 'Copy' },
          { source: ['/q/c'] },
        ],
      });
      expect(d.inputStaging?.map((x) => [x.source, x.target, x.action])).toEqual([
        ['a', 'x/a', 'Copy'],
        ['/p/b', 'b2', 'Copy'],
        ['/q/c', 'c', 'Transfer'],
      ]);
      expect(
        errorOf(() =>
          parseUnitDescription({ executable: 'x', inputStaging: [{ source: ['a', 'b'], target: ['c'] }] }),
        ).message,
      ).toContain(
        'inputStaging[0]: source has 2 entries and target 1; they pair up, so the lengths must match',
      );
      expect(
        errorOf(() =>
          parseUnitDescription({ executable: 'x', outputStaging: [{ source: 'a', target: ['c'] }] }),
        ).message,
      ).toContain('outputStaging[0]: target is a list but source is not');
    });

    it("resolves paths by RP's rules: staging:///, file://, absolute, relative to a base", () => {
      const pilot = '/scratch/pilot.0000';
      expect(resolveStagingPath('staging:///d/x.dat', '/u', pilot)).toBe(
        '/scratch/pilot.0000/staging_area/d/x.dat',
      );
      expect(resolveStagingPath('file:///data/x', '/u', pilot)).toBe('/data/x');
      expect(resolveStagingPath('/data/./y/../x', '/u', pilot)).toBe('/data/x');
      expect(resolveStagingPath('in/x', '/scratch/pilot.0000/unit.000001', pilot)).toBe(
        '/scratch/pilot.0000/unit.000001/in/x',
      );
    });

    it('names what is not built (remote schemes) and a Transfer object where none belongs', () => {
      const [t] = parseUnitDescription({ executable: 'x', inputStaging: ['input.dat'] }).inputStaging ?? [];
      expect(unbuiltDirective(t as StagingDirective, 'inputStaging[0]')).toBeUndefined();
      const object = { key: 's/in/x', size: 1, sha256: 'a'.repeat(64) };
      const [o] =
        parseUnitDescription({ executable: 'x', outputStaging: [{ source: 'o', object }] }).outputStaging ??
        [];
      expect(unbuiltDirective(o as StagingDirective, 'outputStaging[0]', 'output')).toContain(
        'outputStaging[0].object: only a Transfer input names an object',
      );
      const [c] =
        parseUnitDescription({ executable: 'x', inputStaging: [{ source: 'i', action: 'Copy', object }] })
          .inputStaging ?? [];
      expect(unbuiltDirective(c as StagingDirective, 'inputStaging[0]')).toContain(
        'inputStaging[0].object: only a Transfer names an object, got action "Copy"',
      );
      const [r] =
        parseUnitDescription({ executable: 'x', inputStaging: [{ source: 'https://h/x', action: 'Copy' }] })
          .inputStaging ?? [];
      expect(unbuiltDirective(r as StagingDirective, 'inputStaging[0]')).toContain(
        'inputStaging[0].source: the https:// scheme is not supported',
      );
      const [ok] =
        parseUnitDescription({ executable: 'x', inputStaging: [{ source: 'staging:///x', action: 'Link' }] })
          .inputStaging ?? [];
      expect(unbuiltDirective(ok as StagingDirective, 'inputStaging[0]')).toBeUndefined();
    });
  });

  it.each([
    [{ executable: 'x', kernel: 'md' }, 'unit description kernel: unknown key, got "md"'],
    [{ executable: '' }, 'unit description executable: must be a non-empty string, got ""'],
    [{}, 'unit description executable: is required'],
    [{ executable: 7 }, 'unit description executable: must be a string, got 7'],
    [{ executable: 'x', cores: -2 }, 'unit description cores: must be a positive integer, got -2'],
    [
      { executable: 'x', arguments: 'a b' },
      'unit description arguments: must be a list of strings, got "a b"',
    ],
    [{ executable: 'x', arguments: ['a', 3] }, 'unit description arguments[1]: must be a string, got 3'],
    [
      { executable: 'x', environment: { A: true } },
      'unit description environment.A: must be a string or a number, got true',
    ],
    [{ executable: 'x', environment: [] }, 'unit description environment: must be an object of string'],
    [
      { executable: 'x', environment: { 'MY-VAR': 'v' } },
      'unit description environment.MY-VAR: is not a shell variable name (letters, digits and _, not starting with a digit), got "v"',
    ],
    [{ executable: 'x', mpi: 'yes' }, 'unit description mpi: must be true or false, got "yes"'],
    ['just a string', 'unit description: '],
  ])('refuses %j', (input, message) => {
    expect(errorOf(() => parseUnitDescription(input)).message).toContain(message);
  });
});

describe('parseUnitDescriptions', () => {
  it('names the list index in the message', () => {
    const xs = [
      { executable: 'a' },
      { executable: 'b' },
      { executable: 'c' },
      { executable: 'd', cores: -2 },
    ];
    expect(errorOf(() => parseUnitDescriptions(xs)).message).toBe(
      'unit description [3].cores: must be a positive integer, got -2',
    );
  });

  it('names the list index for shorthand and alias errors too', () => {
    expect(
      errorOf(() => parseUnitDescriptions([{ executable: 'a', input_staging: ['x >> y'] }])).message,
    ).toContain('unit description [0].inputStaging[0]: append');
    expect(
      errorOf(() => parseUnitDescriptions([{ executable: 'a', pre_exec: [], preExec: [] }])).message,
    ).toContain('unit description [0].preExec: duplicates preExec');
  });

  it('refuses a non-list', () => {
    expect(errorOf(() => parseUnitDescriptions({ executable: 'a' })).message).toContain('must be a list');
  });

  it('parses a list', () => {
    expect(parseUnitDescriptions([{ executable: 'a' }, { executable: 'b', cores: 3 }])).toEqual([
      { executable: 'a', cores: 1 },
      { executable: 'b', cores: 3 },
    ]);
  });
});
