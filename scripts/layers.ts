/**
 * The layer rules of the codebase, checked on every `npm test` (`npm run lint:layers`):
 * - core/ is pure: no Node built-ins, no AWS SDK, no project code outside core/ but the shipped
 *   resource data (`resources/*.json`); adapters do the I/O.
 * - only store/ talks to DynamoDB (plus the places that build or serve the engine itself, listed below).
 * - agent/ and client/ hold no AWS SDK: agents talk HTTPS to the agent routes with their pilot token,
 *   the SDK talks HTTPS to the API.
 * Biome's `noRestrictedImports` cannot say "relative paths leaving this folder", hence this small script.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
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
  /(?:^|\n)\s*(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The module specifiers a TypeScript source imports (static, re-exports and literal dynamic imports). */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) out.push((m[1] ?? m[2]) as string);
  return out;
}

/** The rule `specifier`, imported by `file` (a path relative to the repository root), breaks, if any. */
export function ruleBroken(file: string, specifier: string): string | undefined {
  const top = file.split('/')[0];
  const isNode = specifier.startsWith('node:');
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
    for (const specifier of importsOf(readFileSync(path.join(root, file), 'utf8'))) {
      const rule = ruleBroken(file, specifier);
      if (rule) out.push({ file, specifier, rule });
    }
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const violations = checkLayers(path.resolve(import.meta.dirname, '..'));
  for (const v of violations) process.stderr.write(`${v.file}: imports '${v.specifier}': ${v.rule}\n`);
  if (violations.length) process.exit(1);
  process.stdout.write('layers: ok\n');
}
