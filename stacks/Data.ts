/**
 * State that outlives every deploy: the single table, the units DLQ and the app's secret key.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, ProjectionType, Table } from 'aws-cdk-lib/aws-dynamodb';
import { BlockPublicAccess, Bucket, BucketEncryption } from 'aws-cdk-lib/aws-s3';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { StackContext } from 'sst/constructs';
import { BUCKET, QUEUES, TABLE } from './manifest.ts';
import { physicalName, type SortieData } from './support.ts';

const ATTRIBUTE_TYPES = { S: AttributeType.STRING, N: AttributeType.NUMBER } as const;

/** A key attribute of `TABLE` with the type the manifest gives it. */
function key(name: keyof typeof TABLE.attributeTypes): { name: string; type: AttributeType } {
  return { name, type: ATTRIBUTE_TYPES[TABLE.attributeTypes[name]] };
}

/** The Data stack: table (`TABLE`), the DLQs (`QUEUES.unitsDlq`, `QUEUES.submissionsDlq`), the TRANSFER bucket (`BUCKET`) and the `SORTIE_SECRET_KEY` secret. */
export function Data({ stack, app }: StackContext): SortieData {
  // Only prod keeps its data when the stack is removed; dev and test stages clean up after themselves.
  const removalPolicy = app.stage === 'prod' ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

  const { byParent, byPilot } = TABLE.indexes;
  // The physical name is left to CloudFormation (functions get it from SORTIE_TABLE), so a replacement
  // never collides with the old table.
  const table = new Table(stack, 'Table', {
    partitionKey: key(TABLE.partitionKey),
    billingMode: BillingMode.PAY_PER_REQUEST,
    timeToLiveAttribute: TABLE.timeToLive,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    removalPolicy,
  });
  table.addGlobalSecondaryIndex({
    indexName: byParent.name,
    partitionKey: key(byParent.partitionKey),
    sortKey: key(byParent.sortKey),
    projectionType: ProjectionType[byParent.projection],
  });
  table.addGlobalSecondaryIndex({
    indexName: byPilot.name,
    partitionKey: key(byPilot.partitionKey),
    sortKey: key(byPilot.sortKey),
    projectionType: ProjectionType[byPilot.projection],
  });

  // 14 days is SQS's maximum: dead letters are kept as long as possible for post-mortems.
  const unitsDlq = new Queue(stack, 'UnitsDlq', {
    queueName: physicalName(stack, QUEUES.unitsDlq.name),
    retentionPeriod: Duration.days(14),
    encryption: QueueEncryption.SQS_MANAGED,
  });

  // Refused submissions are parked here by the handler (with the reason); failing ones by the redrive.
  const submissionsDlq = new Queue(stack, 'SubmissionsDlq', {
    queueName: physicalName(stack, QUEUES.submissionsDlq.name),
    retentionPeriod: Duration.days(14),
    encryption: QueueEncryption.SQS_MANAGED,
  });

  // TRANSFER files: private, reached only through presigned URLs (the SDK and agents hold no AWS rights),
  // and expired by a lifecycle rule, so a session closed without cleanup (or never closed) costs nothing
  // for ever. Unfinished multipart uploads (a cut transfer) are aborted after a day.
  const bucket = new Bucket(stack, 'Transfers', {
    blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
    encryption: BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    lifecycleRules: [
      {
        id: 'expire-transfers',
        expiration: Duration.days(BUCKET.expireDays),
        abortIncompleteMultipartUploadAfter: Duration.days(1),
      },
    ],
    removalPolicy,
  });

  // SORTIE_SECRET_KEY: a Secrets Manager secret generated at first deploy (nobody ever types or sees it),
  // handed to the functions as a CloudFormation dynamic reference that is resolved at deploy time.
  // Why not an ARN the handlers fetch: the handlers then read the key the same way in AWS and in the
  // local backend (one env var holding the value), and need neither a Secrets Manager client nor a
  // cold-start call. Why not SSM SecureString: Lambda environment variables do not accept `ssm-secure`
  // dynamic references. Cost: the value is visible to whoever may call lambda:GetFunctionConfiguration,
  // and rotating it takes a redeploy. Never rotate it casually: functions/lib/secrets.ts seals stored
  // credentials under it, and those become unreadable. Hence RETAIN in prod, like the table.
  const secretKey = new Secret(stack, 'SecretKey', {
    description: `Sortie ${app.stage}: key that seals stored credentials (SORTIE_SECRET_KEY)`,
    generateSecretString: { passwordLength: 64, excludePunctuation: true },
    removalPolicy,
  });

  stack.addOutputs({ TableName: table.tableName, BucketName: bucket.bucketName });
  return { table, unitsDlq, submissionsDlq, bucket, secretKeyValue: secretKey.secretValue.unsafeUnwrap() };
}
