/**
 * The table's definition, from stacks/manifest.ts (keys and indexes are declared there once).
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  type DescribeTableCommandOutput,
  type DynamoDBClient,
  ResourceInUseException,
} from '@aws-sdk/client-dynamodb';
import { DatabaseError } from '../core/errors.ts';
import { TABLE } from '../stacks/manifest.ts';

const { byParent, byPilot } = TABLE.indexes;

/**
 * Create the table with the manifest's key and GSIs (PAY_PER_REQUEST, projection ALL) and wait until it
 * is ACTIVE. Idempotent: an existing table is left as it is.
 * @throws DatabaseError
 */
export async function createTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: TABLE.partitionKey, AttributeType: 'S' },
          { AttributeName: byParent.partitionKey, AttributeType: 'S' },
          { AttributeName: byParent.sortKey, AttributeType: 'S' },
          { AttributeName: byPilot.partitionKey, AttributeType: 'S' },
        ],
        KeySchema: [{ AttributeName: TABLE.partitionKey, KeyType: 'HASH' }],
        GlobalSecondaryIndexes: [
          {
            IndexName: byParent.name,
            KeySchema: [
              { AttributeName: byParent.partitionKey, KeyType: 'HASH' },
              { AttributeName: byParent.sortKey, KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: byParent.projection },
          },
          {
            IndexName: byPilot.name,
            KeySchema: [
              { AttributeName: byPilot.partitionKey, KeyType: 'HASH' },
              // byPilot's sort key is the table's partition key, already defined above.
              { AttributeName: byPilot.sortKey, KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: byPilot.projection },
          },
        ],
      }),
    );
  } catch (e) {
    if (!(e instanceof ResourceInUseException))
      throw new DatabaseError(`CreateTable ${tableName} failed`, { cause: e });
  }
  await waitActive(client, tableName);
}

async function waitActive(client: DynamoDBClient, tableName: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const out: DescribeTableCommandOutput = await client.send(
      new DescribeTableCommand({ TableName: tableName }),
    );
    const gsisActive = (out.Table?.GlobalSecondaryIndexes ?? []).every((g) => g.IndexStatus === 'ACTIVE');
    if (out.Table?.TableStatus === 'ACTIVE' && gsisActive) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new DatabaseError(`table ${tableName} did not become ACTIVE`);
}
