/**
 * Task round trips in a Ziggurat tree: 2 event workers and 2 task workers. Each event worker,
 * once every task worker is up, runs the same two measurements and prints one JSON line:
 * - throughput: `task()` with a finish callback, `--window` tasks in flight, for `--seconds`;
 * - latency: `--samples` sequential `taskwait()` round trips, p50/p99 in microseconds.
 * Payloads are small objects ({seq, text}); the task handler returns them.
 *
 *   deno run -A bench/servers/ziggurat_tasks.ts [--seconds 3] [--window 64] [--samples 2000]
 *
 * Worker 0 calls shutdown() once both have printed.
 */
import { percentiles, taskOptions } from "./task_options.ts";
import { Server } from "../../mod.ts";

const { seconds, window, samples } = taskOptions();

const server = new Server({
  host: "127.0.0.1",
  port: 0,
  workerNum: 2,
  taskWorkerNum: 2,
  logLevel: "warning",
});
server.on("receive", () => {});
server.on("task", (_s, _id, _src, data) => data);
server.on("pipeMessage", (s) => {
  // Worker 1 is done: worker 0 stops the tree once it is done too.
  done.then(() => s.shutdown());
});
let markDone!: () => void;
const done = new Promise<void>((resolve) => markDone = resolve);

server.on("workerStart", async (s, workerId) => {
  if (workerId >= 2) return;
  // Wait for both task workers (their status turns idle once they run).
  while (s.getWorkerStatus(2) !== 2 || s.getWorkerStatus(3) !== 2) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const result = { workerId, ...(await throughput(s)), ...(await latency(s)) };
  console.log(JSON.stringify(result));
  markDone();
  if (workerId === 1) s.sendMessage("done", 0);
});

async function throughput(s: Server) {
  let completed = 0;
  let inFlight = 0;
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const send = () => {
      while (inFlight < window && performance.now() < end) {
        inFlight++;
        s.task({ seq: completed, text: "hello" }, -1, () => {
          inFlight--;
          completed++;
          if (performance.now() < end) send();
          else if (inFlight === 0) resolve();
        });
      }
    };
    send();
  });
  return { tasksPerSec: completed / ((performance.now() - started) / 1000) };
}

async function latency(s: Server) {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    await s.taskwait({ seq: i, text: "hello" }, { timeout: 5 });
    times.push((performance.now() - t0) * 1000);
  }
  return percentiles(times);
}

await server.start();
