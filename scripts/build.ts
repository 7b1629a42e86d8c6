/**
 * `npm run build` (also `prepack`): the installable package in dist/, runnable by plain Node 20/22.
 *
 * - tsc (tsconfig.build.json) compiles client/, core/, store/, functions/, agent/, local/, resources/ and
 *   stacks/manifest.ts to ESM JS + .d.ts, keeping the tree's shape so that the runtime paths relative to the
 *   package root (handlers, the ASL file, resource JSON) hold in dist/ as they do in the repository.
 * - The files those modules read at runtime are copied beside them: the state machine's ASL and the Java
 *   launcher of DynamoDB Local.
 * - The agent is bundled once here (dist/agent/agent.cjs), so the installed package needs no esbuild.
 * - The CLI gets a plain-Node shebang (the source's runs through tsx).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { buildAgentBundle } from '../agent/bundle.ts';
import { STATE_MACHINES } from '../stacks/manifest.ts';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');

/** Every file under `dir` whose name ends with `suffix`. */
function filesUnder(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...filesUnder(full, suffix));
    else if (name.endsWith(suffix)) out.push(full);
  }
  return out;
}

/** Relative `.ts` specifiers (`from './x.ts'`, `import('./x.ts')`, `import './x.ts'`) in emitted code. */
const RELATIVE_TS = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]*?)\.ts\2/g;

/** Relative JSON imports without an import attribute (`from '../x.json';`). */
const RELATIVE_JSON = /(\bfrom\s*(['"])\.{1,2}\/[^'"]*?\.json\2)(?=\s*;)/g;

rmSync(dist, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
});
if (compiled.status !== 0) {
  process.stderr.write(`build: tsc failed (exit ${compiled.status})\n`);
  process.exit(1);
}

// tsc rewrites `.ts` specifiers in the JS it emits (rewriteRelativeImportExtensions), not in declarations.
for (const file of filesUnder(dist, '.d.ts')) {
  const text = readFileSync(file, 'utf8');
  const fixed = text.replace(RELATIVE_TS, '$1$2$3.js$2');
  if (fixed !== text) writeFileSync(file, fixed);
}
// Plain Node ESM loads JSON only with an import attribute. The sources go without one because SST v2's
// esbuild (0.18), which bundles the Lambdas from them, cannot parse `with`; the emitted JS gets it here.
for (const file of filesUnder(dist, '.js')) {
  const text = readFileSync(file, 'utf8');
  const fixed = text.replace(RELATIVE_JSON, "$1 with { type: 'json' }");
  if (fixed !== text) writeFileSync(file, fixed);
}
const leftover = filesUnder(dist, '.js').filter((f) =>
  new RegExp(RELATIVE_TS.source).test(readFileSync(f, 'utf8')),
);
if (leftover.length) {
  process.stderr.write(`build: .ts imports left in emitted JS: ${leftover.join(', ')}\n`);
  process.exit(1);
}

for (const asset of [STATE_MACHINES.pilot.aslFile, 'local/java']) {
  cpSync(path.join(root, asset), path.join(dist, asset), { recursive: true });
}

const cli = path.join(dist, 'client', 'cli.js');
const lines = readFileSync(cli, 'utf8').split('\n');
if (lines[0]?.startsWith('#!')) lines[0] = '#!/usr/bin/env node';
else lines.unshift('#!/usr/bin/env node');
writeFileSync(cli, lines.join('\n'));
chmodSync(cli, 0o755);

const bundle = await buildAgentBundle(path.join(dist, 'agent', 'agent.cjs'));
process.stdout.write(`build: dist/ ready (agent bundle ${path.relative(root, bundle)})\n`);
