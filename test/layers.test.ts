import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLayers, importsOf, moduleStateOf } from '../scripts/layers.ts';

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'sortie-layers-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), text);
  }
  return root;
}

describe('layer check', () => {
  it('finds static, multi-line, type-only, re-export and dynamic imports', () => {
    const src = [
      "import { a } from './a.ts';",
      'import {\n  b,\n  c,\n} from "node:fs";',
      "import type { T } from '../store/db.ts';",
      "export { d } from './d.ts';",
      "const m = await import('@aws-sdk/client-sqs');",
      "import 'node:child_process';",
      "const os = require('os');",
    ].join('\n');
    expect(importsOf(src)).toEqual([
      './a.ts',
      'node:fs',
      '../store/db.ts',
      './d.ts',
      '@aws-sdk/client-sqs',
      'node:child_process',
      'os',
    ]);
  });

  it('finds module state: top-level let/var, and Maps or Sets in a top-level const', () => {
    const src = [
      'const registry = new Map<string, number>();',
      'export let loaded = false;',
      'var count = 0;',
      'const seen: Set<string> = new Set();',
      'const LIMIT = 5;',
      'function f() {',
      '  let local = 1;',
      '  const m = new Map();',
      '}',
    ].join('\n');
    expect(moduleStateOf(src)).toEqual([
      'const registry = new Map',
      'export let loaded',
      'var count',
      'const seen: Set<string> = new Set',
    ]);
  });

  it('fails on each crossed layer and passes the allowed imports', () => {
    const root = tree({
      'core/ok.ts':
        "import { z } from 'zod';\nimport x from '../resources/local.json';\nimport { y } from './y.ts';",
      'core/io.ts': "import { readFileSync } from 'node:fs';",
      'core/bare.ts': "import { join } from 'path';\nimport 'fs/promises';",
      'core/state.ts': 'const registry = new Map<string, string>();\nlet loaded = false;',
      'functions/lib/state.ts': "let cached: string | undefined;\nimport { join } from 'path';",
      'core/up.ts': "import { store } from '../store/index.ts';",
      'core/aws.ts': "import { SQSClient } from '@aws-sdk/client-sqs';",
      'agent/sdk.ts': "import { SQSClient } from '@aws-sdk/client-sqs';",
      'client/sdk.ts': "import { DynamoDBClient } from '@aws-sdk/client-dynamodb';",
      'functions/api/db.ts': "import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';",
      'functions/lib/aws.ts': "import { DynamoDBClient } from '@aws-sdk/client-dynamodb';",
      'store/db.ts': "import { DynamoDBClient } from '@aws-sdk/client-dynamodb';",
      // build output (npm run build) of sources that are checked where they live
      'dist/functions/api/db.js': "import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';",
    });
    const found = checkLayers(root).map((v) => `${v.file} ${v.specifier}`);
    expect(found.sort()).toEqual(
      [
        'agent/sdk.ts @aws-sdk/client-sqs',
        'client/sdk.ts @aws-sdk/client-dynamodb',
        'core/aws.ts @aws-sdk/client-sqs',
        'core/io.ts node:fs',
        'core/bare.ts path',
        'core/bare.ts fs/promises',
        'core/state.ts const registry = new Map',
        'core/state.ts let loaded',
        'core/up.ts ../store/index.ts',
        'functions/api/db.ts @aws-sdk/lib-dynamodb',
      ].sort(),
    );
  });

  it('this repository crosses no layer', () => {
    expect(checkLayers(path.resolve(import.meta.dirname, '..'))).toEqual([]);
  });
});
