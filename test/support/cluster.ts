/** The multi-node test cluster (scripts/testbed.sh cluster) as the suites see it. */
import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import { type Relay, relay } from '../../local/relay.ts';

const dir = process.env.SORTIE_CLUSTER_DIR ?? '/var/tmp/sortie-cluster';

/** The facts `testbed.sh cluster up` wrote, or why the suite cannot run. */
export function readCluster(): { env: Record<string, string> } | { skip: string } {
  const file = path.join(dir, 'env');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { skip: `${file} absent: run scripts/testbed.sh cluster up (as root)` };
  }
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^export (\w+)='([^']*)'$/gm))
    if (m[1] && m[2] !== undefined) env[m[1]] = m[2];
  try {
    accessSync(env.SORTIE_CLUSTER_KEY ?? '', constants.R_OK);
  } catch {
    return { skip: `cluster key ${env.SORTIE_CLUSTER_KEY} not readable (run the tests as root)` };
  }
  return { env };
}

/**
 * Runs a shell command as the cluster user on its login node with the OpenSSH client (host key pinned
 * by the cluster's known_hosts). Resolves with stdout; rejects with the exit code and stderr.
 */
export function onLogin(env: Record<string, string>, command: string, timeoutMs = 60_000): Promise<string> {
  const args = [
    '-i',
    env.SORTIE_CLUSTER_KEY ?? '',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=5',
    '-o',
    `UserKnownHostsFile=${env.SORTIE_CLUSTER_KNOWN_HOSTS}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'LogLevel=ERROR',
    `${env.SORTIE_CLUSTER_USER}@${env.SORTIE_CLUSTER_LOGIN}`,
    command,
  ];
  return new Promise((resolve, reject) => {
    execFile('ssh', args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ssh login '${command}' failed (${err.code ?? err.signal}): ${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * A TCP relay from `host` (the bridge's host-side address, the only one a cluster node can reach) to the
 * embedded backend's API on 127.0.0.1, so an agent on a compute node can call it; the backend itself stays
 * on loopback. `url` is what the launch function must hand agents (SORTIE_API_URL).
 */
export function relayApi(apiUrl: string, host: string): Promise<Relay> {
  return relay(new URL(apiUrl), { host });
}
