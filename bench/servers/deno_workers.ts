/**
 * Peer of the task benchmark: round trips of `postMessage` between the main thread and a Deno
 * `Worker` that posts each message back, measured as bench/servers/ziggurat_tasks.ts measures
 * tasks (same window, duration, samples and payload). Prints one JSON line.
 *
 *   deno run -A bench/servers/deno_workers.ts [--seconds 3] [--window 64] [--samples 2000]
 */
import { percentiles, taskOptions } from "./task_options.ts";

const { seconds, window, samples } = taskOptions();

const source = `self.onmessage = (e) => self.postMessage(e.data);`;
const worker = new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })), {
  type: "module",
});
let onReply: () => void = () => {};
worker.onmessage = () => onReply();

let completed = 0;
let inFlight = 0;
const end = performance.now() + seconds * 1000;
const started = performance.now();
await new Promise<void>((resolve) => {
  onReply = () => {
    inFlight--;
    completed++;
    if (performance.now() < end) send();
    else if (inFlight === 0) resolve();
  };
  const send = () => {
    while (inFlight < window && performance.now() < end) {
      inFlight++;
      worker.postMessage({ seq: completed, text: "hello" });
    }
  };
  send();
});
const tasksPerSec = completed / ((performance.now() - started) / 1000);

const times: number[] = [];
for (let i = 0; i < samples; i++) {
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    onReply = resolve;
    worker.postMessage({ seq: i, text: "hello" });
  });
  times.push((performance.now() - t0) * 1000);
}
console.log(JSON.stringify({ tasksPerSec, ...percentiles(times) }));
worker.terminate();
