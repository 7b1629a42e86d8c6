/**
 * The main job exactly as a user runs it (`npm start` → tsx, Node's own ESM loader, a fresh process),
 * not through vitest's module transform, which accepts imports that Node itself refuses.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');

describe('npm start', () => {
  it('runs the getting-started workload to 16 DONE units and exits 0', async () => {
    const env = { ...process.env };
    delete env.SORTIE_API_URL; // the job must start its own embedded backend
    const child = spawn(
      process.execPath,
      [path.join(root, 'node_modules/tsx/dist/cli.mjs'), 'examples/getting-started.ts'],
      {
        cwd: root,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    expect(code, out).toBe(0);
    expect(out).toContain('16 of 16 units DONE');
    expect(out).toMatch(/unit\.000015 +Done +0 /);
  }, 120_000);
});
