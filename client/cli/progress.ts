/**
 * The live progress of a set of units: a bar with units per state, rate and ETA on a terminal
 * (cli-progress), and plain lines otherwise (logs, CI, pipes), one when the counts changed, at most one
 * every `everyMs`.
 */
import { Presets, SingleBar } from 'cli-progress';
import { formatSeconds, rateAndEta, type Tally } from './tally.ts';

/** A progress view over a {@link Tally}; `update()` after every change, `stop()` at the end. */
export interface ProgressView {
  update(): void;
  /** Prints a line above the bar (or plainly). */
  log(line: string): void;
  stop(): void;
}

/** `42/200 units | Executing 2 · Done 40 | 12.3 units/s | ETA 13s`. */
export function progressLine(tally: Tally, total: number, startMs: number, nowMs: number): string {
  const { rate, etaSeconds } = rateAndEta(tally.finished, total, nowMs - startMs);
  return `${tally.finished}/${total} units | ${tally.line()} | ${rate.toFixed(1)} units/s | ETA ${formatSeconds(etaSeconds)}`;
}

/** The view for this process's stdout: a bar on a TTY, plain lines otherwise. */
export function progressView(
  tally: Tally,
  total: number,
  opts: { tty?: boolean; everyMs?: number } = {},
): ProgressView {
  const start = Date.now();
  const tty = opts.tty ?? process.stdout.isTTY === true;
  if (tty) {
    const bar = new SingleBar(
      {
        // `left`, not `eta`: cli-progress fills `{eta}` itself (bare seconds), over any payload of that name.
        format: '{bar} {value}/{total} units | {states} | {rate} units/s | ETA {left}',
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
        // The bar goes where the tables go (cli-progress writes to stderr unless told).
        stream: process.stdout,
      },
      Presets.shades_classic,
    );
    const payload = () => {
      const { rate, etaSeconds } = rateAndEta(tally.finished, total, Date.now() - start);
      return { states: tally.line(), rate: rate.toFixed(1), left: formatSeconds(etaSeconds) };
    };
    bar.start(total, 0, payload());
    // Rate and ETA move with time even when no unit changes state.
    const timer = setInterval(() => bar.update(tally.finished, payload()), 500);
    let stopped = false;
    return {
      update: () => {
        if (!stopped) bar.update(tally.finished, payload());
      },
      log: (line) => {
        if (stopped) {
          process.stdout.write(`${line}\n`);
          return;
        }
        bar.stop();
        process.stdout.write(`${line}\n`);
        bar.start(total, tally.finished, payload());
      },
      stop: () => {
        if (stopped) return;
        stopped = true;
        clearInterval(timer);
        bar.update(tally.finished, payload());
        bar.stop();
      },
    };
  }
  const everyMs = opts.everyMs ?? 2_000;
  let last = '';
  let lastAt = 0;
  const print = (force: boolean) => {
    const states = tally.line();
    if (states === last || (!force && Date.now() - lastAt < everyMs)) return;
    last = states;
    lastAt = Date.now();
    process.stdout.write(`${progressLine(tally, total, start, Date.now())}\n`);
  };
  const timer = setInterval(() => print(false), everyMs);
  return {
    update: () => print(false),
    log: (line) => process.stdout.write(`${line}\n`),
    stop: () => {
      clearInterval(timer);
      print(true);
    },
  };
}
