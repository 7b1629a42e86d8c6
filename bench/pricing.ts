/** The bench prices what it meters with the one pricing module (core/pricing.ts, shared with `sortie report`). */
export * from '../core/pricing.ts';
