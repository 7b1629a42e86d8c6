/**
 * A small TCP proxy of the tests' own on 127.0.0.1: it passes requests through to `target` and loses the
 * answer of the first request matching each rule (it closes both connections when the answer comes back),
 * so the caller sees a network error after the API did the work. With `when`, a rule fires only on an answer
 * whose body satisfies it (such answers are held whole until then; others pass unchanged). With `hold`,
 * requests matching it are not passed on until `release()` (the caller's request waits, as on a slow network).
 */
import net from 'node:net';

/** One request to lose the answer of. */
export interface DropRule {
  /** Matched against `METHOD path`. */
  request: RegExp;
  /** Only an answer whose body satisfies this is lost (default: the first answer). */
  when?: (body: string) => boolean;
}

/** Starts the proxy; `dropped` lists the requests whose answers were lost. */
export async function dropProxy(target: URL, rules: (RegExp | DropRule)[], options: { hold?: RegExp } = {}) {
  const pending = new Set(rules.map((r) => (r instanceof RegExp ? { request: r } : r)));
  let holding = options.hold;
  /** Connections whose request is held: their chunks, in order, to pass on at release. */
  const held = new Map<net.Socket, Buffer[]>();
  const dropped: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let armed: { rule: DropRule; request: string } | undefined;
    let answer = Buffer.alloc(0);
    client.on('data', (chunk) => {
      // undici sends one request at a time per connection: a request line starts a chunk.
      const line = /^(GET|POST) (\S+) HTTP\/1\.1/.exec(chunk.toString('latin1'));
      if (line) {
        const request = `${line[1]} ${line[2]}`;
        const rule = [...pending].find((r) => r.request.test(request));
        armed = rule ? { rule, request } : undefined;
        answer = Buffer.alloc(0);
        if (holding?.test(request)) held.set(upstream, []);
      }
      const queue = held.get(upstream);
      if (queue) queue.push(chunk);
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!armed) {
        client.write(chunk);
        return;
      }
      answer = Buffer.concat([answer, chunk]);
      const text = answer.toString('latin1');
      const head = text.indexOf('\r\n\r\n');
      const length = Number(/content-length: *(\d+)/i.exec(text)?.[1] ?? Number.NaN);
      // Hold until the whole answer is here (the API answers with a content-length).
      if (head < 0 || (!Number.isNaN(length) && answer.length < head + 4 + length)) return;
      const body = answer.subarray(head + 4).toString('utf8');
      const { rule, request } = armed;
      armed = undefined;
      if (!rule.when || rule.when(body)) {
        // The API has done the work and is answering: the answer is lost on the way back.
        pending.delete(rule);
        dropped.push(request);
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(answer);
      answer = Buffer.alloc(0);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    dropped,
    /** Requests held so far (waiting for {@link release}). */
    get holding(): number {
      return held.size;
    },
    /** Holds the requests matching `request` from now on (until {@link release}). */
    hold(request: RegExp) {
      holding = request;
    },
    /** Passes on the held requests and holds no more. */
    release() {
      holding = undefined;
      for (const [upstream, chunks] of held) for (const c of chunks) upstream.write(c);
      held.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
