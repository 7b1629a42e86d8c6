/**
 * The one place that sends requests to DynamoDB: it counts them per operation (for benchmarks) and turns
 * SDK failures into typed errors. Conditional-check failures are passed through as {@link ConditionFailed}
 * because callers treat them as an expected outcome, not an error.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DatabaseError } from '../core/errors.ts';
import { PK } from './keys.ts';

/** DynamoDB operations the store uses; the keys of {@link Db.requests}. */
export type Operation =
  | 'GetItem'
  | 'PutItem'
  | 'DeleteItem'
  | 'UpdateItem'
  | 'Query'
  | 'BatchGetItem'
  | 'BatchWriteItem'
  | 'CreateTable'
  | 'DescribeTable';

/** A conditional write's condition was false (the SDK's ConditionalCheckFailedException). */
export class ConditionFailed extends Error {
  constructor(options?: ErrorOptions) {
    super('conditional check failed', options);
    this.name = 'ConditionFailed';
  }
}

/** A lib-dynamodb command (GetCommand, UpdateCommand, …); typed loosely because `send` is overloaded per command. */
type Command = { readonly input: object };

/** How {@link Db.send} treats one request. */
export interface SendOptions {
  /**
   * A write that changes none of the fields a token check reads (a session's token hash and state: e.g.
   * its uid counters), so records cached for token checks stay (store/record-cache.ts).
   */
  checkedFieldsKept?: boolean;
}

/** Counted, error-mapped access to one table. */
export class Db {
  /** Requests sent so far, per operation, e.g. `{BatchWriteItem: 80, UpdateItem: 100}`. */
  readonly requests: Partial<Record<Operation, number>> = {};
  readonly doc: DynamoDBDocumentClient;

  constructor(
    readonly tableName: string,
    client: DynamoDBClient = new DynamoDBClient({}),
    /** Told the item keys of every write this Db sends (store/record-cache.ts). */
    private readonly onWrite?: (keys: readonly string[]) => void,
  ) {
    // removeUndefinedValues: optional record fields are left out instead of failing the marshaller.
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  /**
   * Send one request, counting it under `op`.
   * @throws ConditionFailed when a condition expression was false.
   * @throws DatabaseError for any other failure (after the SDK's own retries).
   */
  async send<T>(op: Operation, command: Command, opts: SendOptions = {}): Promise<T> {
    this.requests[op] = (this.requests[op] ?? 0) + 1;
    // Told before the write is sent and again when it is answered: a read that overlaps it is not cached.
    const written = this.onWrite && !opts.checkedFieldsKept ? writtenKeys(op, command.input) : undefined;
    if (written?.length) this.onWrite?.(written);
    try {
      return (await this.doc.send(command as never)) as T;
    } catch (e) {
      if (e instanceof Error && e.name === 'ConditionalCheckFailedException')
        throw new ConditionFailed({ cause: e });
      const name = e instanceof Error ? e.name : 'Error';
      const message = e instanceof Error ? e.message : String(e);
      throw new DatabaseError(`DynamoDB ${op} failed: ${name}: ${message}`, { cause: e });
    } finally {
      if (written?.length) this.onWrite?.(written);
    }
  }

  /** Reset the request counters (e.g. between benchmark phases). */
  resetRequests(): void {
    for (const k of Object.keys(this.requests)) delete this.requests[k as Operation];
  }
}

/** The partition keys a write request names (none for reads). Items are keyed by {@link PK} alone. */
export function writtenKeys(op: Operation, input: object): string[] {
  const i = input as {
    Item?: Record<string, unknown>;
    Key?: Record<string, unknown>;
    RequestItems?: Record<
      string,
      { PutRequest?: { Item?: Record<string, unknown> }; DeleteRequest?: { Key?: Record<string, unknown> } }[]
    >;
  };
  const pk = (x: Record<string, unknown> | undefined) =>
    typeof x?.[PK] === 'string' ? [x[PK] as string] : [];
  switch (op) {
    case 'PutItem':
      return pk(i.Item);
    case 'UpdateItem':
    case 'DeleteItem':
      return pk(i.Key);
    case 'BatchWriteItem':
      return Object.values(i.RequestItems ?? {}).flatMap((rs) =>
        rs.flatMap((r) => [...pk(r.PutRequest?.Item), ...pk(r.DeleteRequest?.Key)]),
      );
    default:
      return [];
  }
}
