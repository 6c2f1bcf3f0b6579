/**
 * Memory a test can bound without depending on when V8 chooses to collect: the live heap, measured after a full
 * collection. A process's RSS is not that figure — with the heap limit of a large machine V8 keeps garbage for as
 * long as it likes, so the same workload's RSS peak differs by hundreds of megabytes between runs.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | undefined;

/** A full, synchronous garbage collection (`gc()` without starting Node with `--expose-gc`). */
export function collectGarbage(): void {
  if (!collect) {
    setFlagsFromString('--expose-gc');
    // A new context sees the flag; the function it exposes collects the whole isolate's heap.
    collect = runInNewContext('gc') as (() => void) | undefined;
    if (typeof collect !== 'function') throw new Error('gc() could not be exposed with --expose-gc');
  }
  collect();
}

/** Bytes of heap still reachable: `heapUsed` after a full collection. */
export function liveHeapBytes(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

export interface LiveHeapSampler {
  /** The largest live heap seen so far, in bytes (including the first sample, taken when the sampler starts). */
  readonly peakBytes: number;
  readonly samples: number;
  stop(): void;
}

/**
 * Samples the live heap every `intervalInMs` while a workload runs. Each sample is a full collection (tens of
 * milliseconds on a heap of a few hundred megabytes), so keep the interval in seconds.
 */
export function sampleLiveHeap(intervalInMs: number): LiveHeapSampler {
  let peakBytes = liveHeapBytes();
  let samples = 1;
  const timer = setInterval(() => {
    peakBytes = Math.max(peakBytes, liveHeapBytes());
    samples += 1;
  }, intervalInMs);
  return {
    get peakBytes() {
      return peakBytes;
    },
    get samples() {
      return samples;
    },
    stop: () => clearInterval(timer),
  };
}
