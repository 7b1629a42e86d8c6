/**
 * Faults the embedded S3 can be told to cause. Apart from local/s3.ts so that the backend's public
 * types (local/backend.ts options) do not pull in fauxqs's, and with them fastify's and Node's.
 */

/** Faults the embedded S3 injects for tests. */
export interface S3Faults {
  /** Seconds the S3 clock runs ahead of the signer's: URLs expire that much sooner. */
  clockAheadSeconds?: number;
  /** Every presigned GET sends this many bytes of the object, then drops the connection. */
  cutDownloadsAfterBytes?: number;
}
