// node:perf_hooks for the browser bundle: the engine times its steps with the global performance clock.
export const performance = globalThis.performance;
