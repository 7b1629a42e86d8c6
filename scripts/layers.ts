/**
 * The layer rules of the codebase, checked on every `npm test` (`npm run lint:layers`):
 * - core/ is pure: no Node built-ins (with or without `node:`), no AWS SDK, no project code outside core/
 *   but the shipped resource data (`resources/*.json`); adapters do the I/O. Nor does it hold module state
 *   (a top-level `let`/`var`, or a top-level Map/Set): state such as the resource registry is an object
 *   passed in, so that two callers in one process (two sessions) never share it.
 * - only store/ talks to DynamoDB (plus the places that build or serve the engine itself, listed below).
 * - agent/ and client/ hold no AWS SDK: agents talk HTTPS to the agent routes with their pilot token,
 *   the SDK talks HTTPS to the API.
 * Biome's `noRestrictedImports` cannot say "relative paths leaving this folder", hence this small script.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';

/** One crossed layer: the file, the import and the rule it breaks. */
export interface Violation {
  file: string;
  specifier: string;
  rule: string;
}

/** Places outside store/ allowed to name DynamoDB, and why. */
const DYNAMODB_ALLOWED = [
  'functions/lib/aws.ts', // builds the one counted client the handlers hand to store/
  'local/', // the embedded backend creates the tables it serves
  'bench/', // raw BatchWriteItem/GetItem baselines and request metering
  'test/',
];

const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:import|require)\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g;

/**
 * The module specifiers a TypeScript source imports (static, re-exports, side-effect imports, literal
 * dynamic imports and `require` calls).
 */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) out.push((m[1] ?? m[2] ?? m[3]) as string);
  return out;
}

const BUILTINS = new Set(builtinModules);

/** True for a Node built-in, written `node:fs` or plain `fs` (`fs/promises` too). */
function isNodeBuiltin(specifier: string): boolean {
  return (
    specifier.startsWith('node:') || BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0] ?? '')
  );
}

/** Module state at the top level of a file: `let`/`var` bindings, and Maps or Sets held in a `const`. */
const MODULE_STATE_RE =
  /^(?:export\s+)?(?:(?:let|var)\s+[\w$]+|const\s+[\w$]+(?:\s*:[^=\n]+)?\s*=\s*new\s+(?:Weak)?(?:Map|Set)\b)/gm;

/** The top-level declarations of a source that hold module state (see {@link MODULE_STATE_RE}). */
export function moduleStateOf(source: string): string[] {
  return [...source.matchAll(MODULE_STATE_RE)].map((m) => m[0]);
}

/** The rule `specifier`, imported by `file` (a path relative to the repository root), breaks, if any. */
export function ruleBroken(file: string, specifier: string): string | undefined {
  const top = file.split('/')[0];
  const isNode = isNodeBuiltin(specifier);
  const isAws = specifier.startsWith('@aws-sdk/') || specifier.startsWith('@aws-lambda-powertools/');
  const isDynamo = /^@aws-sdk\/(client-dynamodb|lib-dynamodb|util-dynamodb)/.test(specifier);
  if (top === 'core') {
    if (isNode) return 'core/ is pure: no Node built-ins (do the I/O in an adapter)';
    if (isAws) return 'core/ is pure: no AWS SDK';
    if (specifier.startsWith('.')) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
      if (!target.startsWith('core/') && !/^resources\/[\w.-]+\.json$/.test(target))
        return 'core/ imports only core/ (and the shipped resources/*.json data)';
    }
  }
  if ((top === 'agent' || top === 'client') && isAws)
    return `${top}/ holds no AWS SDK: it talks HTTPS to the API`;
  if (isDynamo && top !== 'store' && !DYNAMODB_ALLOWED.some((a) => file === a || file.startsWith(a)))
    return 'only store/ talks to DynamoDB';
  return undefined;
}

function sources(dir: string, root: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    // dist/ is the build's output of these very sources (npm run build), checked where they live.
    if (name === 'node_modules' || name.startsWith('.') || (dir === root && name === 'dist')) continue;
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sources(full, root));
    else if (/\.(ts|mts|cts|js|mjs)$/.test(name))
      out.push(path.relative(root, full).split(path.sep).join('/'));
  }
  return out;
}

/** Every layer crossing in the tree at `root`. */
export function checkLayers(root: string): Violation[] {
  const out: Violation[] = [];
  for (const file of sources(root, root)) {
    const source = readFileSync(path.join(root, file), 'utf8');
    for (const specifier of importsOf(source)) {
      const rule = ruleBroken(file, specifier);
      if (rule) out.push({ file, specifier, rule });
    }
    if (file.startsWith('core/'))
      for (const state of moduleStateOf(source))
        out.push({ file, specifier: state, rule: 'core/ holds no module state: pass objects in' });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const violations = checkLayers(path.resolve(import.meta.dirname, '..'));
  for (const v of violations) process.stderr.write(`${v.file}: '${v.specifier}': ${v.rule}\n`);
  if (violations.length) process.exit(1);
  process.stdout.write('layers: ok\n');
}
