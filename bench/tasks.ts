/**
 * Task benchmark: small-task round trips (`task` → `finish`) per second in a Ziggurat tree of
 * 2 event and 2 task workers, and `taskwait` latency, against `postMessage` round trips between
 * the main thread and one Deno `Worker`, in the same run and with the same payload, window and
 * sample count. Both use every CPU (nothing is pinned: there is no load generator to keep
 * apart).
 *
 *   deno run -A bench/tasks.ts [--seconds 3] [--window 64] [--samples 2000]
 * @module
 */
import { taskOptions } from "./servers/task_options.ts";

const options = taskOptions();
const root = new URL("..", import.meta.url).pathname;
const args = Object.entries(options).flatMap(([name, value]) => [`--${name}`, String(value)]);

interface Result {
  tasksPerSec: number;
  p50Us: number;
  p99Us: number;
}

async function run(script: string): Promise<Result[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}bench/servers/${script}`, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`${script} failed (${out.code})`);
  return new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l));
}

const ziggurat = await run("ziggurat_tasks.ts");
const workers = await run("deno_workers.ts");
const total = ziggurat.reduce((n, r) => n + r.tasksPerSec, 0);
const p50 = Math.max(...ziggurat.map((r) => r.p50Us));
const p99 = Math.max(...ziggurat.map((r) => r.p99Us));
const peer = workers[0];
const row = (name: string, rate: number, a: number, b: number, ratio: string) =>
  `| ${name} | ${Math.round(rate).toLocaleString("en-US")} | ${a.toFixed(0)} | ${
    b.toFixed(0)
  } | ${ratio} |`;
console.log(
  `### Task round trips (window ${options.window}, ${options.seconds} s; ${options.samples} sequential waits)\n`,
);
console.log("| setup | round trips/s | p50 µs | p99 µs | ziggurat/peer |");
console.log("| ----- | -----------: | -----: | -----: | ------------: |");
console.log(
  row("ziggurat: 2 event × 2 task workers, task→finish; taskwait", total, p50, p99, "1.00"),
);
console.log(
  row(
    "Deno Worker: postMessage round trip",
    peer.tasksPerSec,
    peer.p50Us,
    peer.p99Us,
    (total / peer.tasksPerSec).toFixed(2),
  ),
);
console.log(
  `\nper event worker: ${
    ziggurat.map((r) => Math.round(r.tasksPerSec).toLocaleString("en-US")).join(", ")
  } round trips/s; p50 and p99 are the worse of the two workers.`,
);
