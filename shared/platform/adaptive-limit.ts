/**
 * A concurrency limit that follows throttling, additive increase and multiplicative decrease: it starts at
 * `initial` tasks in flight, halves (not below 1) when a task's answer was throttled, and grows by one after a
 * window's worth of unthrottled answers (as many as are allowed in flight), up to `max`. A lowered limit lets the
 * tasks already running finish; new ones wait until fewer than the limit run. Pure: no timers, no I/O.
 */
export interface AdaptiveLimitOptions {
  /** Tasks in flight at first. */
  initial: number;
  /** Tasks in flight at most. */
  max: number;
}

export class AdaptiveLimit {
  private limit: number;
  private readonly max: number;
  private active = 0;
  private unthrottled = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(options: AdaptiveLimitOptions) {
    if (!Number.isInteger(options.max) || options.max < 1) throw new RangeError('max must be a whole number of at least 1');
    if (!Number.isInteger(options.initial) || options.initial < 1 || options.initial > options.max) throw new RangeError('initial must be a whole number from 1 to max');
    this.limit = options.initial;
    this.max = options.max;
  }

  /** Tasks allowed in flight now. */
  get concurrency(): number {
    return this.limit;
  }

  /** Tasks running now. */
  get running(): number {
    return this.active;
  }

  /**
   * Runs `task` once fewer than the limit are in flight; `throttled` says whether its answer was throttled (a task
   * that throws counts as not throttled: the limit follows throttling, not failures).
   */
  async run<T>(task: () => Promise<T>, throttled: (answer: T) => boolean): Promise<T> {
    await this.acquire();
    let wasThrottled = false;
    try {
      const answer = await task();
      wasThrottled = throttled(answer);
      return answer;
    } finally {
      this.answered(wasThrottled);
      this.active -= 1;
      this.next();
    }
  }

  private acquire(): Promise<void> {
    if (this.active < this.limit && this.waiting.length === 0) {
      this.active += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private next(): void {
    while (this.active < this.limit && this.waiting.length > 0) {
      this.active += 1;
      this.waiting.shift()!();
    }
  }

  private answered(throttled: boolean): void {
    if (throttled) {
      this.limit = Math.max(1, Math.floor(this.limit / 2));
      this.unthrottled = 0;
      return;
    }
    this.unthrottled += 1;
    if (this.unthrottled >= this.limit && this.limit < this.max) {
      this.limit += 1;
      this.unthrottled = 0;
    }
  }
}
