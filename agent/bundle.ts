/**
 * Builds the agent into one self-contained JS file (no node_modules on the resource), which the
 * launchers copy into the pilot sandbox. The agent uses Node built-ins, a little of core/ and p-retry
 * (the one retry policy), so the bundle stays small (about 25 kB).
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');

/** Default location of the bundle, next to the project (`.sortie/agent.cjs`; .cjs so that no surrounding package.json can make Node read it as ESM). */
export const DEFAULT_AGENT_BUNDLE = path.join(root, '.sortie', 'agent.cjs');

/**
 * Bundles agent/main.ts into `outFile` (Node 18+ target) unless an up-to-date one exists; returns its path.
 * Up to date means no file it was built from (listed beside it in `<outFile>.inputs.json`, core/ and
 * packages included) has changed since.
 */
export async function buildAgentBundle(outFile = DEFAULT_AGENT_BUNDLE): Promise<string> {
  const inputsFile = `${outFile}.inputs.json`;
  if (existsSync(outFile) && existsSync(inputsFile)) {
    const built = statSync(outFile).mtimeMs;
    const inputs = JSON.parse(readFileSync(inputsFile, 'utf8')) as string[];
    if (inputs.every((f) => existsSync(f) && statSync(f).mtimeMs <= built)) return outFile;
  }
  const result = await build({
    entryPoints: [path.join(root, 'agent', 'main.ts')],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'cjs',
    minify: false,
    legalComments: 'none',
    logLevel: 'error',
    metafile: true,
    absWorkingDir: root,
  });
  const inputs = Object.keys(result.metafile.inputs).map((f) => path.resolve(root, f));
  writeFileSync(inputsFile, JSON.stringify(inputs));
  return outFile;
}
