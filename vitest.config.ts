import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Suites start real engines (DynamoDB, SQS, Step Functions, sshd, SLURM) on loopback ports;
    // two cores cannot run many of them at once without starving timers.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
