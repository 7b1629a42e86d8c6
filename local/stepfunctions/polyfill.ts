/**
 * aws-local-stepfunctions 3.0.0 declares Node >= 22 and calls `Promise.withResolvers` (ES2024) in every Task
 * state. On Node 20 that is a TypeError, and the handler's pending promise then becomes an unhandled rejection
 * that kills the process. This module adds the method once, and only where it is missing, so Node 22 keeps its
 * native implementation.
 */

interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}

/** Installs `Promise.withResolvers` when the runtime lacks it. Safe to call any number of times. */
export function installPromiseWithResolvers(): void {
  // The project's TS lib is ES2023, which does not know the method; look it up structurally.
  const ctor = Promise as unknown as { withResolvers?: unknown };
  if (typeof ctor.withResolvers === 'function') return;
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T>(): Resolvers<T> {
      let resolve!: Resolvers<T>['resolve'];
      let reject!: Resolvers<T>['reject'];
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

installPromiseWithResolvers();
