/**
 * The options both sides of the task benchmark take (bench/tasks.ts passes them on):
 * `--seconds` of the throughput phase, `--window` tasks in flight, `--samples` sequential waits.
 * @module
 */
import { parseArgs } from "node:util";

export function taskOptions(args: string[] = Deno.args) {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: "string", default: "3" },
      window: { type: "string", default: "64" },
      samples: { type: "string", default: "2000" },
    },
  });
  return {
    seconds: Number(values.seconds),
    window: Number(values.window),
    samples: Number(values.samples),
  };
}

/** p50 and p99 of latencies in microseconds (sorts `times`). */
export function percentiles(times: number[]): { p50Us: number; p99Us: number } {
  times.sort((a, b) => a - b);
  return {
    p50Us: times[Math.floor(times.length / 2)],
    p99Us: times[Math.floor(times.length * 0.99)],
  };
}
