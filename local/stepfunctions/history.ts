/**
 * Execution history in the shape of GetExecutionHistory: numbered events with AWS's type names and
 * `<type>EventDetails` objects. Task events come from this server; state transitions are translated from
 * aws-local-stepfunctions' event log.
 */

import type { StateMachine } from 'aws-local-stepfunctions';
import type { Json } from './json.ts';

/** One event of aws-local-stepfunctions' log (the library does not export the type itself). */
export type LibraryEvent =
  ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

/** A history event as GetExecutionHistory returns it (timestamps in epoch milliseconds until serialised). */
export interface HistoryEvent {
  id: number;
  previousEventId: number;
  timestamp: number;
  type: string;
  details?: { key: string; value: { [field: string]: Json } };
}

/** Serialises a value as AWS records inputs and outputs in history: a JSON string. */
function text(value: unknown): string {
  return JSON.stringify(value ?? null);
}

const DATA_FIELDS = new Set(['input', 'output', 'parameters']);

/** The history of one execution. */
export class History {
  readonly events: HistoryEvent[] = [];
  private closed = false;

  /**
   * Appends an event. `details` become `<lowerCamelType>EventDetails` (or `detailsKey` when AWS names it
   * differently, as for the `stateEnteredEventDetails` shared by every `*StateEntered`). Ignored once the
   * execution has ended, so that stragglers of an aborted run cannot follow `ExecutionAborted`.
   */
  add(type: string, details?: { [field: string]: Json | undefined }, detailsKey?: string): void {
    if (this.closed) return;
    const id = this.events.length + 1;
    const event: HistoryEvent = { id, previousEventId: id - 1, timestamp: Date.now(), type };
    if (details) {
      const value: { [field: string]: Json } = {};
      for (const [field, v] of Object.entries(details)) if (v !== undefined) value[field] = v;
      for (const field of ['input', 'output']) {
        if (typeof value[field] === 'string') value[`${field}Details`] = { truncated: false };
      }
      event.details = { key: detailsKey ?? `${type[0]?.toLowerCase()}${type.slice(1)}EventDetails`, value };
    }
    this.events.push(event);
  }

  /** Appends the execution's final event and refuses all later ones. */
  close(type: string, details?: { [field: string]: Json | undefined }): void {
    this.add(type, details);
    this.closed = true;
  }

  /**
   * Translates a library event. Execution-level events are recorded by the server itself (it knows about
   * stops and timeouts), StateFailed/Retried/Caught have no AWS counterpart (AWS shows TaskFailed followed by
   * a new TaskScheduled or the next state), and branch events of Parallel have none either.
   */
  addLibraryEvent(event: LibraryEvent): void {
    switch (event.type) {
      case 'StateEntered':
        this.add(
          `${event.state.type}StateEntered`,
          { name: event.state.name, input: text(event.state.input) },
          'stateEnteredEventDetails',
        );
        break;
      case 'StateExited':
        this.add(
          `${event.state.type}StateExited`,
          { name: event.state.name, output: text(event.state.output) },
          'stateExitedEventDetails',
        );
        break;
      case 'MapIterationStarted':
      case 'MapIterationSucceeded':
      case 'MapIterationFailed':
        this.add(event.type, { name: event.parentState.name, index: event.index });
        break;
      default:
        break;
    }
  }
}

/** The event as the SDK expects it: epoch-second timestamps, details under their own key. */
export function serialiseEvent(event: HistoryEvent, includeData: boolean): { [field: string]: Json } {
  const out: { [field: string]: Json } = {
    id: event.id,
    previousEventId: event.previousEventId,
    timestamp: event.timestamp / 1000,
    type: event.type,
  };
  if (event.details) {
    const value = includeData
      ? event.details.value
      : Object.fromEntries(Object.entries(event.details.value).filter(([field]) => !DATA_FIELDS.has(field)));
    out[event.details.key] = value;
  }
  return out;
}
