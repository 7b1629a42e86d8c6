/**
 * Arm-ahead: the write-ahead of starts (write-ahead.ts) taken off the critical path for short units.
 *
 * A non-restartable unit may be spawned only once the control plane knows it may have started, so that a
 * sweep after the agent's death fails it instead of running it again. With the write-ahead that costs
 * every core one round trip per unit, between the end of one unit and the spawn of the next: for short
 * units the cores wait more than they run. Instead, while the units ahead of them run, the next units in
 * line are *armed*: a mark on the unit (not a state: its history says nothing until it runs) that tells
 * everyone but this agent to treat it as possibly started — no cancel in the table, no lease return, no
 * reschedule; a sweep fails it, saying it may have started (store/units.ts `unarmed`, finalize.ts). When a
 * core frees, an armed unit is spawned at once and reports EXECUTING after the spawn, usually in the same
 * write as its end.
 *
 * What it costs: if the agent dies, its armed units that never started end FAILED ("may have started")
 * instead of being rescheduled. So only a few are armed — at most `depth` units at the head of the queue —
 * and only while units are short (the last one ended ran less than {@link ARM_BELOW_MS}): for long units
 * the round trip is nothing next to their run, and an armed unit would wait out a whole run exposed. An
 * agent that stops by itself disarms the units it holds unstarted, so they are rescheduled as before.
 * The resource config's `armAhead: false` turns it off (the bench compares both in figure 9).
 */
import { armable as armableDescription } from '../core/states.ts';
import type { ArmReport, PulledUnit } from './api.ts';

/** Units are armed only while the last one to end ran shorter than this. */
export const ARM_BELOW_MS = 1000;

/** Where arms and disarms go (write-ahead.ts: they ride the start requests). */
export interface ArmChannel {
  arm(unit: ArmReport): Promise<boolean>;
  disarm(unit: ArmReport): Promise<boolean>;
}

/** True for a unit that needs a write-ahead and can be armed: not restartable, claimed SCHEDULING, leased. */
export function armable(u: PulledUnit): boolean {
  return armableDescription(u.description) && !!u.lease;
}

export class ArmAhead {
  /** Units of the queue with an arm asked ('arming') or recorded ('armed'). */
  private readonly marks = new Map<string, 'arming' | 'armed'>();
  /** Units taken to start while their arm was asked: the arm's answer decides their start (see take). */
  private readonly waiting = new Map<string, (armed: boolean | undefined) => void>();
  private readonly asking = new Set<Promise<unknown>>();
  private lastRunMs: number | undefined;
  /** Arms recorded (apart and by claims) and refused, for the agent's log and the tests. */
  armed = 0;
  armedAtClaim = 0;
  /** Held units claimed by their arms. */
  heldClaimed = 0;
  refused = 0;

  constructor(
    private readonly channel: ArmChannel,
    /** How many units at the head of the queue may be armed at once. */
    private readonly depth: number,
    /** Called for a unit whose arm was refused: it was cancelled, returned or rescheduled; never start it. */
    private readonly drop: (uid: string) => void,
    /** The resource config's `armAhead`. */
    private readonly enabled: boolean,
  ) {}

  /** A unit ended after running `ms`: arming goes on only while units are short. */
  ran(ms: number): void {
    this.lastRunMs = ms;
  }

  /** Whether units are armed now: enabled, and the last unit to end was short. */
  private get arming(): boolean {
    return this.enabled && this.lastRunMs !== undefined && this.lastRunMs < ARM_BELOW_MS;
  }

  /**
   * How many units a pull may have armed by their claim, given the `queued` units it will join: those
   * that will land within the head of the queue (an idle agent's pull: the units it spawns at once, with no
   * write-ahead round trip between their claim and their spawn).
   */
  claimRoom(queued: number): number {
    return this.arming ? Math.max(0, this.depth - queued) : 0;
  }

  /**
   * Whether a pull hands the units beyond those it arms over held, unclaimed: while units are armed. A
   * held unit is claimed by the write that arms it (one write where a claim and an arm took two) or, if
   * it comes to start unarmed, by its write-ahead start. Held units wait as the pilot's unclaimed units
   * do: if this agent dies, the sweep reschedules them (nothing could have started them unclaimed).
   */
  holds(): boolean {
    return this.arming;
  }

  /** A pulled unit its claim armed (the pull's answer says so): spawned without a write-ahead. */
  claimed(uid: string): void {
    this.marks.set(uid, 'armed');
    this.armedAtClaim++;
  }

  /**
   * The unit is about to be spawned: 'armed' when it is armed (spawn it without a write-ahead), undefined
   * when it is not (it needs one). A unit whose arm is still being asked waits for that answer instead of
   * sending a write-ahead of its own, which would cost one more write and no less time (the arm is out
   * already, a start would wait a round trip too): true, it is armed; false, refused (cancelled or taken
   * back: never start it); undefined, the arm could not be asked (start it with a write-ahead).
   */
  take(uid: string): 'armed' | Promise<boolean | undefined> | undefined {
    const mark = this.marks.get(uid);
    this.marks.delete(uid);
    if (mark === 'armed') return 'armed';
    if (mark !== 'arming') return undefined;
    return new Promise((resolve) => this.waiting.set(uid, resolve));
  }

  /** The unit left the queue without starting (cancelled, failed): forget its mark. */
  forget(uid: string): void {
    this.marks.delete(uid);
  }

  /**
   * Arms the units at the head of `queue`, in one request, once at most half of the `depth` head units
   * are armed (so that arms go out several at a time, not one per unit that ends).
   */
  top(queue: readonly PulledUnit[]): void {
    if (!this.arming) return;
    const head = queue.slice(0, this.depth);
    if (head.filter((u) => this.marks.has(u.uid)).length > this.depth / 2) return;
    for (const u of head) {
      if (this.marks.has(u.uid) || !armable(u)) continue;
      this.marks.set(u.uid, 'arming');
      const held = u.held === true;
      const asked = this.channel
        .arm({ uid: u.uid, lease: u.lease as string, ...(held ? { held } : {}) })
        .then(
          (yes) => {
            // A held unit this arm claimed is claimed whatever happens next (a start of it then goes from
            // SCHEDULING under its lease, or a disarm takes the mark off).
            if (yes && held) {
              u.held = false;
              this.heldClaimed++;
            }
            const waiter = this.waiting.get(u.uid);
            if (waiter) {
              // Taken to start meanwhile: it starts armed, or not at all.
              this.waiting.delete(u.uid);
              if (yes) this.armed++;
              else this.refused++;
              waiter(yes);
              return;
            }
            if (this.marks.get(u.uid) !== 'arming') return; // gone meanwhile (cancelled, failed)
            if (yes) {
              this.marks.set(u.uid, 'armed');
              this.armed++;
            } else {
              this.marks.delete(u.uid);
              this.refused++;
              this.drop(u.uid);
            }
          },
          () => {
            this.marks.delete(u.uid);
            const waiter = this.waiting.get(u.uid);
            this.waiting.delete(u.uid);
            waiter?.(undefined);
          },
        );
      this.asking.add(asked);
      void asked.finally(() => this.asking.delete(asked));
    }
  }

  /**
   * The agent stops: waits for the arms in flight, then takes the mark off every armed unit of `queue`
   * (none of them will start here), so the sweep reschedules them. Resolves with the uids still armed
   * (a disarm refused or not answered): those the sweep fails.
   */
  async disarm(queue: readonly PulledUnit[]): Promise<string[]> {
    await Promise.allSettled([...this.asking]);
    const held = queue.filter((u) => this.marks.get(u.uid) === 'armed');
    const answers = await Promise.all(
      held.map((u) => this.channel.disarm({ uid: u.uid, lease: u.lease as string }).catch(() => false)),
    );
    for (const u of held) this.marks.delete(u.uid);
    return held.filter((_, i) => !answers[i]).map((u) => u.uid);
  }
}
