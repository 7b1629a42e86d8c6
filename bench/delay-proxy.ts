/**
 * A TCP proxy on 127.0.0.1 that delays every chunk by `delayMs` in each direction: a link with the round
 * trip of a deployed control plane (API Gateway + Lambda + DynamoDB, tens of ms from a site) between the
 * agent and the embedded backend, whose own round trip is a few ms. Written here because it is twenty
 * lines; order is kept (timers of one duration fire in the order they were set).
 */
import net from 'node:net';

export interface DelayProxy {
  url: string;
  close(): Promise<void>;
}

/** Starts the proxy in front of `target` (an http://127.0.0.1:PORT URL). */
export async function delayProxy(target: URL, delayMs: number): Promise<DelayProxy> {
  const sockets = new Set<net.Socket>();
  const later = (f: () => void) => setTimeout(f, delayMs);
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk) => later(() => upstream.write(chunk)));
    upstream.on('data', (chunk) => later(() => client.write(chunk)));
    client.on('end', () => later(() => upstream.end()));
    upstream.on('end', () => later(() => client.end()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
