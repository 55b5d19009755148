// A bounded FIFO of generation requests, served `capacity` at a time (1 in this slice: the engine runs one forward at
// a time on the calling thread, and batching several sequences into one forward is not built yet).

export class QueueFullError extends Error {
  constructor(readonly waiting: number) {
    super(`the server is busy: ${waiting} requests are already waiting; retry later`);
  }
}

export class ShuttingDownError extends Error {
  constructor() {
    super('the server is shutting down and accepts no new requests');
  }
}

export class AbortedError extends Error {
  constructor() {
    super('the request was cancelled');
  }
}

interface Waiter {
  start: () => void;
  fail: (error: Error) => void;
}

export interface QueueOptions {
  /** Sequences served at once. */
  capacity: number;
  /** Most requests that may wait; one more is refused with QueueFullError. */
  maxWaiting: number;
  /** Called whenever the waiting or running count changes (the metrics gauges). */
  onChange?: (waiting: number, running: number) => void;
}

export class RequestQueue {
  private readonly waiters: Waiter[] = [];
  private runningCount = 0;
  private closed = false;
  private readonly idleListeners: (() => void)[] = [];
  /** Aborts of the running requests, for a shutdown past its deadline. */
  private readonly running = new Set<AbortController>();
  // Mean service time of recent requests, for Retry-After.
  private meanSeconds = 1;

  constructor(private readonly options: QueueOptions) {}

  get waiting(): number {
    return this.waiters.length;
  }

  get active(): number {
    return this.runningCount;
  }

  /** Requests that run() would take now without refusing one: free places plus free room to wait. */
  room(): number {
    if (this.closed) return 0;
    const free = this.waiters.length > 0 ? 0 : Math.max(0, this.options.capacity - this.runningCount);
    return free + Math.max(0, this.options.maxWaiting - this.waiters.length);
  }

  /** Seconds a refused client should wait: the time the queue ahead of it takes at the recent mean, at least 1. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.meanSeconds * (this.waiters.length + 1) / this.options.capacity));
  }

  /**
   * Waits for a place, then runs `task` with a signal that aborts when `signal` does or at a forced shutdown. Throws
   * QueueFullError at once when too many wait, ShuttingDownError after close(), AbortedError when `signal` aborts
   * while waiting (the place is given up).
   */
  async run<T>(signal: AbortSignal, task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.closed) throw new ShuttingDownError();
    if (signal.aborted) throw new AbortedError();
    if (this.runningCount >= this.options.capacity || this.waiters.length > 0) {
      if (this.waiters.length >= this.options.maxWaiting) throw new QueueFullError(this.waiters.length);
      await new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          start: () => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          },
          fail: (error) => {
            signal.removeEventListener('abort', onAbort);
            reject(error);
          },
        };
        const onAbort = (): void => {
          const at = this.waiters.indexOf(waiter);
          if (at >= 0) this.waiters.splice(at, 1);
          this.changed();
          reject(new AbortedError());
        };
        signal.addEventListener('abort', onAbort, { once: true });
        this.waiters.push(waiter);
        this.changed();
      });
    } else {
      this.runningCount++;
      this.changed();
    }
    // runningCount was taken for us, by us above or by the request that handed its place over in finish().
    const controller = new AbortController();
    const forward = (): void => controller.abort();
    signal.addEventListener('abort', forward, { once: true });
    this.running.add(controller);
    const started = performance.now();
    try {
      return await task(controller.signal);
    } finally {
      signal.removeEventListener('abort', forward);
      this.running.delete(controller);
      this.meanSeconds = 0.8 * this.meanSeconds + 0.2 * (performance.now() - started) / 1000;
      this.finish();
    }
  }

  private finish(): void {
    const next = this.waiters.shift();
    if (next) {
      // The place passes to the next waiter directly, so no newcomer can jump the queue.
      next.start();
    } else {
      this.runningCount--;
    }
    this.changed();
    if (this.runningCount === 0 && this.waiters.length === 0) {
      for (const listener of this.idleListeners.splice(0)) listener();
    }
  }

  private changed(): void {
    this.options.onChange?.(this.waiters.length, this.runningCount);
  }

  /**
   * Refuses new requests, lets the admitted ones (running and waiting) finish for `deadlineMs`, then aborts what is
   * still running and fails what still waits. Resolves when the queue is empty.
   */
  async close(deadlineMs: number): Promise<void> {
    this.closed = true;
    if (this.runningCount === 0 && this.waiters.length === 0) return;
    const idle = new Promise<void>((resolve) => this.idleListeners.push(resolve));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), deadlineMs);
    });
    if (await Promise.race([idle, late]) === 'late') {
      for (const waiter of this.waiters.splice(0)) waiter.fail(new ShuttingDownError());
      for (const controller of this.running) controller.abort();
      this.changed();
      await idle;
    }
    clearTimeout(timer);
  }
}
