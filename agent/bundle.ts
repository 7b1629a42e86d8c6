/**
 * Builds the agent into one self-contained JS file (no node_modules on the resource), which the
 * launchers copy into the pilot sandbox. The agent uses Node built-ins, a little of core/ and p-retry
 * (the one retry policy), so the bundle stays small.
 *
 * Two layouts: in this repository (sources present) the bundle is built with esbuild on first use and
 * rebuilt when a file it was built from changed; in the installed package (compiled `dist/`, no agent
 * sources) it was built at pack time (`npm run build`) and ships as `dist/agent/agent.cjs`, so esbuild is
 * not needed there.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const here = import.meta.dirname;
const root = path.resolve(here, '..');
const entry = path.join(here, 'main.ts');

/** The bundle `npm run build` writes next to the compiled agent (this file's folder in `dist/agent/`). */
export const PREBUILT_AGENT_BUNDLE = path.join(here, 'agent.cjs');

/** True when the agent's TypeScript sources are here to build from (the repository, not the installed package). */
const fromSource = existsSync(entry);

/**
 * Default location of the bundle: next to the project (`.sortie/agent.cjs`; .cjs so that no surrounding
 * package.json can make Node read it as ESM) when built from source, the prebuilt one when installed.
 */
export const DEFAULT_AGENT_BUNDLE = fromSource
  ? path.join(root, '.sortie', 'agent.cjs')
  : PREBUILT_AGENT_BUNDLE;

/**
 * Bundles agent/main.ts into `outFile` (Node 18+ target) unless an up-to-date one exists; returns its path.
 * Up to date means no file it was built from (listed beside it in `<outFile>.inputs.json`, core/ and
 * packages included) has changed since. In the installed package, returns the prebuilt bundle (copied to
 * `outFile` when another path is asked for).
 * @throws Error when neither the sources nor the prebuilt bundle are there (a package built without `npm run build`).
 */
export async function buildAgentBundle(outFile = DEFAULT_AGENT_BUNDLE): Promise<string> {
  if (!fromSource) {
    if (!existsSync(PREBUILT_AGENT_BUNDLE))
      throw new Error(
        `no agent sources (${entry}) and no prebuilt agent bundle (${PREBUILT_AGENT_BUNDLE}): this package was packed without \`npm run build\``,
      );
    if (path.resolve(outFile) !== PREBUILT_AGENT_BUNDLE) {
      mkdirSync(path.dirname(outFile), { recursive: true });
      copyFileSync(PREBUILT_AGENT_BUNDLE, outFile);
    }
    return outFile;
  }
  const inputsFile = `${outFile}.inputs.json`;
  if (existsSync(outFile) && existsSync(inputsFile)) {
    const built = statSync(outFile).mtimeMs;
    const inputs = JSON.parse(readFileSync(inputsFile, 'utf8')) as string[];
    if (inputs.every((f) => existsSync(f) && statSync(f).mtimeMs <= built)) return outFile;
  }
  // Loaded only here: esbuild is a build tool (a devDependency), not needed by the installed package.
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
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
