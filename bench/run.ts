/**
 * Echo-server benchmark: Ziggurat against Deno, Node, Bun and a plain epoll server.
 *
 *   deno run -A bench/run.ts [--duration 5] [--warmup 1] [--sizes 64,4096] [--connections 64]
 *                            [--only ziggurat,native] [--no-syscalls] [--syscall-duration 2]
 *                            [--json out.json]
 *
 * For every server and message size it starts the server pinned to CPU 0, runs `echo_load`
 * pinned to CPU 1 and reads the server's CPU time from /proc around the measured window. A
 * second, shorter pass with `strace -c` attached counts the server's syscalls per message.
 * See bench/README.md for what the columns mean and their caveats.
 * @module
 */
import { parseArgs } from "node:util";

import {
  host,
  loadCpu,
  machineCpu,
  readLines,
  root,
  run,
  serverCpu,
  ServerProcess,
  sleep,
  treeCpu,
} from "./_proc.ts";
import type { ServerSpec } from "./_proc.ts";

const binDir = `${root}bench/native/zig-out/bin`;
/** CPU share (of one CPU) other processes may use during a window before it is flagged. */
const foreignLimit = 0.05;

const servers: ServerSpec[] = [
  { name: "ziggurat", command: [Deno.execPath(), "run", "-A", "bench/servers/ziggurat_echo.ts"] },
  {
    name: "ziggurat_base2",
    command: [Deno.execPath(), "run", "-A", "bench/servers/ziggurat_echo.ts", "--workers", "2"],
  },
  {
    name: "ziggurat_thread",
    command: [
      Deno.execPath(),
      "run",
      "-A",
      "bench/servers/ziggurat_echo.ts",
      "--reactor",
      "thread",
    ],
  },
  {
    name: "deno_listen",
    command: [Deno.execPath(), "run", "--allow-net", "bench/servers/deno_listen.ts"],
  },
  { name: "node_net", command: ["node", "bench/servers/node_net.mjs"] },
  {
    name: "ziggurat_process",
    command: [
      Deno.execPath(),
      "run",
      "-A",
      "bench/servers/ziggurat_echo.ts",
      "--mode",
      "process",
      "--reactors",
      "1",
      "--workers",
      "2",
    ],
  },
  { name: "bun_listen", command: [`${root}scripts/bun`, "bench/servers/bun_listen.ts"] },
  {
    name: "bun_listen2",
    command: [`${root}scripts/bun`, "bench/servers/bun_listen.ts", "--workers", "2"],
  },
  { name: "native", command: [`${binDir}/echo_native`] },
];

/** What `echo_load` prints. */
interface LoadResult {
  messages: number;
  seconds: number;
  msgs_per_sec: number;
  mb_per_sec: number;
  p50_us: number;
  p99_us: number;
  errors: number;
  verified_bytes: number;
}

interface SyscallResult {
  /** Syscalls of the whole server process tree while strace was attached. */
  calls: number;
  /** Messages echo_load completed while strace was attached (a slower rate: not reported). */
  messages: number;
  perMessage: number;
  top: { name: string; calls: number }[];
}

interface RunResult {
  server: string;
  size: number;
  status: "ok" | "skipped" | "failed";
  reason?: string;
  load?: LoadResult;
  /** Server process tree CPU time per message over the measured window, in microseconds. */
  userUsPerMsg?: number;
  sysUsPerMsg?: number;
  /**
   * Softirq time on the server's CPU per message: loopback TCP delivery, mostly already part of
   * the server's system time (see machineCpu), reported to show how much of it is the stack's.
   */
  cpu0SoftirqUsPerMsg?: number;
  /** echo_load's own CPU time per message (user + system). */
  loadUsPerMsg?: number;
  /** CPUs' worth of time other processes used during the window (0.05 = 5% of one CPU). */
  foreignCpu?: number;
  serverPids?: number[];
  syscalls?: SyscallResult | { error: string };
}

// --- options ------------------------------------------------------------------------------

const { values: flags } = parseArgs({
  args: Deno.args,
  allowNegative: true,
  options: {
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    connections: { type: "string", default: "64" },
    sizes: { type: "string", default: "64,4096" },
    only: { type: "string" },
    syscalls: { type: "boolean", default: true },
    "syscall-duration": { type: "string", default: "2" },
    json: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (flags.help) {
  console.log(
    "usage: deno run -A bench/run.ts [--duration S] [--warmup S] [--sizes 64,4096] " +
      "[--connections N] [--only a,b] [--no-syscalls] [--syscall-duration S] [--json FILE]\n" +
      `servers: ${servers.map((s) => s.name).join(", ")}`,
  );
  Deno.exit(0);
}

function positive(name: string, text: string, integer = false): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    die(`--${name}: expected a positive ${integer ? "integer" : "number"}, got '${text}'`);
  }
  return value;
}

function die(message: string, code = 2): never {
  console.error(`error: ${message}`);
  Deno.exit(code);
}

const duration = positive("duration", flags.duration);
const warmup = Number(flags.warmup);
if (!(warmup >= 0)) die(`--warmup: expected a non-negative number, got '${flags.warmup}'`);
const connections = positive("connections", flags.connections, true);
const syscallDuration = positive("syscall-duration", flags["syscall-duration"]);
const sizes = flags.sizes.split(",").map((s) => positive("sizes", s.trim(), true));
const selected = flags.only === undefined ? servers : flags.only.split(",").map((name) => {
  const spec = servers.find((s) => s.name === name.trim());
  if (!spec) {
    die(`--only: unknown server '${name}' (known: ${servers.map((s) => s.name).join(", ")})`);
  }
  return spec;
});

// --- load ---------------------------------------------------------------------------------

/** Starts echo_load pinned to the load CPU; `result` rejects if it reports any error. */
function startLoad(port: number, size: number, seconds: number, warmupSeconds: number) {
  const child = new Deno.Command("taskset", {
    args: [
      "-c",
      loadCpu,
      `${binDir}/echo_load`,
      ...["--host", host, "--port", String(port), "--connections", String(connections)],
      ...["--size", String(size), "--duration", String(seconds), "--warmup", String(warmupSeconds)],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const result = child.output().then((out) => {
    const stdout = new TextDecoder().decode(out.stdout).trim();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    let result: LoadResult;
    try {
      result = JSON.parse(stdout);
    } catch {
      throw new Error(`echo_load exited with ${out.code} and no result: ${stderr || stdout}`);
    }
    if (!out.success) {
      const first = stderr.split("\n").slice(0, 3).join(" | ");
      throw new Error(`echo_load: ${result.errors} error(s): ${first}`);
    }
    return result;
  });
  return { pid: child.pid, result };
}

/** The measured pass: echo_load's window, with the server's CPU time read around it. */
async function measure(server: ServerProcess, port: number, size: number): Promise<RunResult> {
  const spawned = performance.now();
  const load = startLoad(port, size, duration, warmup);
  // Sample the CPU counters just inside echo_load's window: it opens `warmup` seconds after
  // echo_load has connected (a few ms after the spawn) and closes `duration` later. The margin
  // keeps both samples inside it even if a timer fires late; the figures are rates over the
  // sampled span, so a slightly shorter span changes nothing in steady state.
  const margin = Math.min(0.1, duration / 5) * 1000;
  const until = (ms: number) => sleep(Math.max(0, spawned + ms - performance.now()));
  const ended = load.result.then(() => true, () => true);
  if (await Promise.race([ended, until(warmup * 1000 + margin).then(() => false)])) {
    await load.result; // throws echo_load's own error
    throw new Error("echo_load ended before its measured window");
  }
  const pids = server.tree();
  const sample = () => ({
    server: treeCpu(pids),
    load: treeCpu([load.pid]),
    machine: machineCpu(),
    at: performance.now(),
  });
  const before = sample();
  await Promise.race([ended, until((warmup + duration) * 1000 - margin)]);
  const after = sample();
  const result = await load.result;
  const window = (after.at - before.at) / 1000;
  const perMessageUs = (seconds: number) => seconds / window / result.msgs_per_sec * 1e6;
  const delta = (f: (s: typeof before) => number) => f(after) - f(before);
  // CPU charged to anything but the server and echo_load: another job on this machine skews
  // the figures (both CPUs are in use), so say so.
  const foreign = (delta((s) => s.machine.busy) -
    delta((s) => s.server.user + s.server.system) -
    delta((s) => s.load.user + s.load.system)) / window;
  if (foreign > foreignLimit) {
    console.error(
      `  warning: other processes used ${(foreign * 100).toFixed(0)}% of a CPU during the ` +
        `window; figures are unreliable`,
    );
  }
  return {
    server: server.spec.name,
    size,
    status: "ok",
    load: result,
    userUsPerMsg: perMessageUs(delta((s) => s.server.user)),
    sysUsPerMsg: perMessageUs(delta((s) => s.server.system)),
    cpu0SoftirqUsPerMsg: perMessageUs(delta((s) => s.machine.softirq)),
    loadUsPerMsg: perMessageUs(delta((s) => s.load.user + s.load.system)),
    foreignCpu: foreign,
    serverPids: pids,
  };
}

/**
 * Waits (at most 2 s) until the server has used no CPU for 100 ms, so that it has finished
 * closing the previous pass's connections before the next pass starts.
 */
async function settle(server: ServerProcess): Promise<void> {
  const cpu = () => {
    const t = treeCpu(server.tree());
    return t.user + t.system;
  };
  const deadline = performance.now() + 2000;
  let last = cpu();
  while (performance.now() < deadline) {
    await sleep(100);
    const now = cpu();
    if (now === last) return;
    last = now;
  }
}

let straceAvailable: boolean | undefined;

/**
 * The syscall pass. strace is attached before echo_load starts (no warm-up: the server is warm
 * from the measured pass) and detached after it exits, so every message echo_load counts was
 * served under strace. The calls around the messages (accepting, setting up and closing the
 * connections: a few hundred) add about 1% at the traced rates seen.
 */
async function countSyscalls(
  server: ServerProcess,
  port: number,
  size: number,
): Promise<SyscallResult | { error: string }> {
  if (straceAvailable === undefined) {
    straceAvailable = await run("strace", ["-V"]).then(() => true, () => false);
  }
  if (!straceAvailable) return { error: "strace not found" };
  await settle(server);
  const pids = server.tree();
  const output = await Deno.makeTempFile({ prefix: "bench-strace-" });
  try {
    const strace = new Deno.Command("strace", {
      args: ["-f", "-c", "-o", output, ...pids.flatMap((pid) => ["-p", String(pid)])],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // strace says "Process N attached" once per -p; only then is the whole tree traced.
    let attached = 0;
    const stderr: string[] = [];
    let onAttached: () => void;
    const allAttached = new Promise<void>((resolve) => onAttached = resolve);
    const reading = readLines(strace.stderr, (line) => {
      stderr.push(line);
      if (/attached/.test(line) && ++attached === pids.length) onAttached();
    });
    const ready = await Promise.race([
      allAttached.then(() => true),
      strace.status.then(() => false),
      sleep(10_000).then(() => false),
    ]);
    if (!ready) {
      try {
        strace.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await strace.status;
      return { error: `strace did not attach: ${stderr.slice(-2).join(" | ")}` };
    }
    let load: LoadResult;
    try {
      load = await startLoad(port, size, syscallDuration, 0).result;
    } finally {
      strace.kill("SIGINT"); // detaches and writes the summary
      await strace.status;
      await reading;
    }
    const { calls, top } = parseStraceSummary(await Deno.readTextFile(output));
    if (load.messages === 0) return { error: "no message was echoed while strace was attached" };
    return { calls, messages: load.messages, perMessage: calls / load.messages, top };
  } finally {
    await Deno.remove(output).catch(() => {});
  }
}

/**
 * Sums the per-syscall rows of `strace -c` (columns: % time, seconds, usecs/call, calls,
 * [errors,] syscall); the total row is skipped because older strace versions lay it out
 * differently.
 */
function parseStraceSummary(text: string): { calls: number; top: SyscallResult["top"] } {
  const rows: SyscallResult["top"] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5 || !/^\d/.test(fields[0])) continue;
    const name = fields[fields.length - 1];
    if (name === "total") continue;
    rows.push({ name, calls: Number(fields[3]) });
  }
  rows.sort((a, b) => b.calls - a.calls);
  return { calls: rows.reduce((sum, r) => sum + r.calls, 0), top: rows.slice(0, 6) };
}

// --- main ---------------------------------------------------------------------------------

async function benchmark(spec: ServerSpec, size: number): Promise<RunResult> {
  const server = new ServerProcess(spec);
  try {
    let port;
    try {
      port = await server.port;
    } catch (error) {
      return { server: spec.name, size, status: "skipped", reason: (error as Error).message };
    }
    let result: RunResult;
    try {
      result = await measure(server, port, size);
    } catch (error) {
      // A crashed server shows up in echo_load as resets; its own last words say more.
      const reason = await server.death() ?? (error as Error).message;
      return { server: spec.name, size, status: "failed", reason };
    }
    if (flags.syscalls) {
      result.syscalls = await countSyscalls(server, port, size).catch((error) => ({
        error: (error as Error).message,
      }));
    }
    return result;
  } finally {
    await server.stop();
  }
}

function describe(r: RunResult): string {
  if (r.status !== "ok" || !r.load) return `${r.status}: ${r.reason}`;
  const sc = r.syscalls && "perMessage" in r.syscalls
    ? `${r.syscalls.perMessage.toFixed(2)} syscalls/msg`
    : `syscalls: ${r.syscalls?.error ?? "not counted"}`;
  return `${Math.round(r.load.msgs_per_sec)} msg/s, p99 ${r.load.p99_us.toFixed(0)} µs, ` +
    `${r.userUsPerMsg!.toFixed(2)} + ${r.sysUsPerMsg!.toFixed(2)} µs/msg CPU, ${sc}`;
}

/** A Markdown table (so it can be pasted into the README as it is) of one message size. */
function table(size: number, rows: RunResult[]): string {
  const zig = rows.find((r) => r.server === "ziggurat" && r.status === "ok");
  const header = [
    "server",
    "msgs/s",
    "MB/s",
    "p50 µs",
    "p99 µs",
    "user µs/msg",
    "sys µs/msg",
    "syscalls/msg",
    "ziggurat/peer",
  ];
  const measured = rows.filter((r) => r.status === "ok" && r.load).map((r) => {
    const l = r.load!;
    const syscalls = r.syscalls && "perMessage" in r.syscalls
      ? r.syscalls.perMessage.toFixed(2)
      : "-";
    return [
      r.server,
      Math.round(l.msgs_per_sec).toLocaleString("en-US"),
      l.mb_per_sec.toFixed(1),
      l.p50_us.toFixed(0),
      l.p99_us.toFixed(0),
      r.userUsPerMsg!.toFixed(2),
      r.sysUsPerMsg!.toFixed(2),
      syscalls,
      zig ? (zig.load!.msgs_per_sec / l.msgs_per_sec).toFixed(2) : "-",
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...measured.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(" | ")} |`;
  const notes = rows.filter((r) => r.status !== "ok").map((r) =>
    `- ${r.server}: ${r.status}: ${r.reason}`
  );
  for (const r of rows) {
    if (r.status !== "ok" || !r.load) continue;
    const loadCpuShare = r.loadUsPerMsg! * r.load.msgs_per_sec / 1e6;
    if (loadCpuShare >= 0.9) {
      notes.push(
        `- ${r.server}: echo_load kept CPU ${loadCpu} ${(loadCpuShare * 100).toFixed(0)}% busy, ` +
          "so msgs/s is partly the load generator's limit; compare CPU µs/msg",
      );
    }
    if (r.foreignCpu! > foreignLimit) {
      notes.push(
        `- ${r.server}: other processes used ${(r.foreignCpu! * 100).toFixed(0)}% of a CPU ` +
          "during the window: figures unreliable",
      );
    }
  }
  return [
    `### ${size}-byte messages, ${connections} connections`,
    "",
    line(header),
    `| ${widths.map((w, i) => i === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`).join(" | ")} |`,
    ...measured.map(line),
    ...(notes.length ? ["", ...notes] : []),
  ].join("\n");
}

const zigBuild = ["build", "--build-file", "bench/native/build.zig", "-Doptimize=ReleaseFast"];
console.error(`building bench/native (scripts/zig ${zigBuild.join(" ")})`);
// Incremental: a no-op when nothing changed.
await run(`${root}scripts/zig`, zigBuild).catch((error) => die((error as Error).message, 1));

const results: RunResult[] = [];
for (const size of sizes) {
  for (const spec of selected) {
    console.error(`${spec.name}, ${size} B: running`);
    const result = await benchmark(spec, size);
    results.push(result);
    console.error(`${spec.name}, ${size} B: ${describe(result)}`);
  }
}

console.log();
for (const size of sizes) {
  console.log(table(size, results.filter((r) => r.size === size)));
  console.log();
}

if (flags.json) {
  const meta = {
    date: new Date().toISOString(),
    duration,
    warmup,
    connections,
    syscallDuration: flags.syscalls ? syscallDuration : null,
    serverCpu: Number(serverCpu),
    loadCpu: Number(loadCpu),
    cpuModel: Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? null,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
  };
  await Deno.writeTextFile(flags.json, JSON.stringify({ meta, results }, null, 2) + "\n");
  console.error(`wrote ${flags.json}`);
}

// Wrong bytes (or a dead connection) from any server make the run fail; a skip does not.
Deno.exit(results.some((r) => r.status === "failed") ? 1 : 0);
