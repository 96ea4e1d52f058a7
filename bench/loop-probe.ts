// Preloaded into meshd by the benchmark (node --import): records every stretch of at least
// BENCH_LOOP_PROBE_MIN_MS during which meshd's event loop could not run a timer, as JSON
// lines {at, ms} (at = when the stall ended, ms since epoch) appended to BENCH_LOOP_PROBE_FILE.
// Nothing is recorded while the loop is free, so the probe costs a timer tick every 5 ms.
import { appendFileSync } from 'node:fs';

const file = process.env.BENCH_LOOP_PROBE_FILE;
const minMs = Number(process.env.BENCH_LOOP_PROBE_MIN_MS ?? 20);
const TICK_MS = 5;

if (file) {
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const stalled = now - last - TICK_MS;
    last = now;
    if (stalled >= minMs) {
      try {
        appendFileSync(file, `${JSON.stringify({ at: Date.now(), ms: Math.round(stalled) })}\n`);
      } catch {
        /* the benchmark went away */
      }
    }
  }, TICK_MS);
  timer.unref();
}
