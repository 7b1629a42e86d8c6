/**
 * Builds the agent into one self-contained JS file (no node_modules on the resource), which the
 * launchers copy into the pilot sandbox. The agent uses only Node built-ins, so the bundle is small.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');

/** Default location of the bundle, next to the project (`.sortie/agent.cjs`; .cjs so that no surrounding package.json can make Node read it as ESM). */
export const DEFAULT_AGENT_BUNDLE = path.join(root, '.sortie', 'agent.cjs');

/** Bundles agent/main.ts into `outFile` (Node 18+ target) unless an up-to-date one exists; returns its path. */
export async function buildAgentBundle(outFile = DEFAULT_AGENT_BUNDLE): Promise<string> {
  const entry = path.join(root, 'agent', 'main.ts');
  if (existsSync(outFile)) {
    const built = statSync(outFile).mtimeMs;
    const dir = path.join(root, 'agent');
    const sources = ['main.ts', 'api.ts', 'allocation.ts', 'config.ts', 'executor.ts', 'reporter.ts'];
    if (sources.every((f) => !existsSync(path.join(dir, f)) || statSync(path.join(dir, f)).mtimeMs <= built))
      return outFile;
  }
  await build({
    entryPoints: [entry],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'cjs',
    minify: false,
    legalComments: 'none',
    logLevel: 'error',
  });
  return outFile;
}
