/**
 * A TCP relay in front of the embedded backend's API: test beds expose the loopback API to agents on
 * network-namespace nodes through it (listening on the bed's bridge address), and the bench puts a
 * round trip between the agent and the API with it (`delayMs`: each chunk waits that long in each
 * direction, as on a link to a deployed control plane). Written here because it is thirty lines; with a
 * delay, order is kept because timers of one duration fire in the order they were set.
 */
import net from 'node:net';

export interface Relay {
  /** The API's URL through the relay (what agents must be handed). */
  url: string;
  close(): Promise<void>;
}

/** Starts a relay to `target` (an http://HOST:PORT URL) listening on `host` (default 127.0.0.1). */
export async function relay(target: URL, options: { host?: string; delayMs?: number } = {}): Promise<Relay> {
  const host = options.host ?? '127.0.0.1';
  const delayMs = options.delayMs ?? 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(Number(target.port), target.hostname);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    if (delayMs === 0) {
      inbound.pipe(outbound).pipe(inbound);
      return;
    }
    const later = (f: () => void) => setTimeout(f, delayMs);
    for (const [from, to] of [
      [inbound, outbound],
      [outbound, inbound],
    ] as const) {
      from.on('data', (chunk) => later(() => to.write(chunk)));
      from.on('end', () => later(() => to.end()));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
