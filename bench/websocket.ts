/**
 * WebSocket benchmark: Ziggurat's `WebSocketServer` against `Deno.upgradeWebSocket` on
 * `Deno.serve`, `Bun.serve`'s websocket (with its publish) and Node with the npm `ws` package,
 * with bench/native's `ws_load` as the load generator.
 *
 *   deno run -A bench/websocket.ts [--duration 5] [--warmup 1] [--connections 64]
 *                                  [--sizes 64,4096] [--subscribers 10000] [--rounds 20]
 *                                  [--scenarios echo,fanout] [--only a,b] [--json out.json]
 *
 * Each server runs pinned to CPU 0 and `ws_load` to CPU 1. echo: every connection keeps one
 * binary message in flight and checks its echo (msg/s, and the server tree's CPU µs per
 * message from /proc over the measured window). fanout: `subscribers` connections subscribe
 * to one topic, and each round one publish reaches all of them: the time until the last has
 * it (median and worst of the rounds), and CPU µs per delivered message. `ws` is installed
 * from npm (pinned) into .tools/ on first use.
 * @module
 */
import { parseArgs } from "node:util";
import { loadCpu, root, run, ServerProcess, sleep, treeCpu } from "./_proc.ts";
import type { ServerSpec } from "./_proc.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    connections: { type: "string", default: "64" },
    sizes: { type: "string", default: "64,4096" },
    subscribers: { type: "string", default: "10000" },
    rounds: { type: "string", default: "20" },
    scenarios: { type: "string", default: "echo,fanout" },
    only: { type: "string" },
    json: { type: "string" },
  },
});
const duration = Number(flags.duration);
const warmup = Number(flags.warmup);

const wsVersion = "8.18.3";
const wsDir = `${root}.tools/ws-${wsVersion}`;
try {
  await Deno.stat(`${wsDir}/node_modules/ws/package.json`);
} catch {
  console.error(`installing ws ${wsVersion} into .tools/ (first use)`);
  await run("npm", [
    "install",
    "--silent",
    "--no-audit",
    "--no-fund",
    "--prefix",
    wsDir,
    `ws@${wsVersion}`,
  ]);
}
const zigBuild = ["build", "--build-file", "bench/native/build.zig", "-Doptimize=ReleaseFast"];
await run(`${root}scripts/zig`, zigBuild);
const wsLoad = `${root}bench/native/zig-out/bin/ws_load`;

const deno = Deno.execPath();
const servers: ServerSpec[] = [
  { name: "ziggurat", command: [deno, "run", "-A", "bench/servers/ziggurat_ws.ts"] },
  {
    name: "ziggurat_base2",
    command: [deno, "run", "-A", "bench/servers/ziggurat_ws.ts", "--workers", "2"],
  },
  {
    name: "ziggurat_process",
    command: [
      deno,
      "run",
      "-A",
      "bench/servers/ziggurat_ws.ts",
      ...["--mode", "process", "--workers", "2", "--reactors", "1"],
    ],
  },
  { name: "deno", command: [deno, "run", "--allow-net", "bench/servers/deno_ws.ts"] },
  { name: "bun", command: [`${root}scripts/bun`, "bench/servers/bun_ws.ts"] },
  { name: "node_ws", command: ["node", "bench/servers/node_ws.mjs", "--ws", wsDir] },
].filter((s) => !flags.only || flags.only.split(",").includes(s.name));

interface Row {
  server: string;
  scenario: string;
  status: "ok" | "failed";
  reason?: string;
  /** echo: msg/s and latency; fanout: the rounds' times. */
  result?: Record<string, number>;
  userUsPerMsg?: number;
  sysUsPerMsg?: number;
}

async function measure(spec: ServerSpec, scenario: string, args: string[]): Promise<Row> {
  const server = new ServerProcess(spec);
  try {
    const port = await server.port;
    const load = new Deno.Command("taskset", {
      args: ["-c", loadCpu, wsLoad, "--port", String(port), ...args],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = load.output();
    let before = { cpu: treeCpu(server.tree()), at: performance.now() };
    let after = before;
    if (scenario.startsWith("echo")) {
      await sleep(warmup * 1000);
      const pids = server.tree();
      before = { cpu: treeCpu(pids), at: performance.now() };
      await sleep((duration - 0.2) * 1000);
      after = { cpu: treeCpu(pids), at: performance.now() };
    }
    const done = await out;
    if (!scenario.startsWith("echo")) {
      after = { cpu: treeCpu(server.tree()), at: performance.now() };
    }
    const text = new TextDecoder().decode(done.stdout).trim();
    if (!done.success) {
      throw new Error(
        `ws_load failed: ${
          new TextDecoder().decode(done.stderr).trim().split("\n").slice(-2).join(" ")
        }` +
          ((await server.death()) ?? ""),
      );
    }
    const result = JSON.parse(text) as Record<string, number>;
    // echo: the messages in the CPU window; fanout: every delivered message (the whole run,
    // the subscribers' connects too).
    const messages = scenario.startsWith("echo")
      ? result.msgs_per_sec * (after.at - before.at) / 1000
      : result.delivered;
    return {
      server: spec.name,
      scenario,
      status: "ok",
      result,
      userUsPerMsg: (after.cpu.user - before.cpu.user) / messages * 1e6,
      sysUsPerMsg: (after.cpu.system - before.cpu.system) / messages * 1e6,
    };
  } catch (error) {
    return { server: spec.name, scenario, status: "failed", reason: (error as Error).message };
  } finally {
    await server.stop();
  }
}

const rows: Row[] = [];
const scenarios: { name: string; args: string[] }[] = [];
for (const scenario of flags.scenarios.split(",")) {
  if (scenario === "echo") {
    for (const size of flags.sizes.split(",")) {
      scenarios.push({
        name: `echo${size}`,
        args: [
          ...["--mode", "echo", "--connections", flags.connections, "--size", size],
          ...["--duration", String(duration), "--warmup", String(warmup)],
        ],
      });
    }
  } else if (scenario === "fanout") {
    scenarios.push({
      name: "fanout",
      args: [
        ...["--mode", "fanout", "--subscribers", flags.subscribers, "--rounds", flags.rounds],
        ...["--size", "64"],
      ],
    });
  } else throw new Error(`unknown scenario ${scenario}`);
}
for (const { name, args } of scenarios) {
  for (const spec of servers) {
    console.error(`${spec.name}, ${name}: running`);
    const row = await measure(spec, name, args);
    rows.push(row);
    const r = row.result;
    console.error(
      row.status !== "ok"
        ? `${spec.name}, ${name}: failed: ${row.reason}`
        : name === "fanout"
        ? `${spec.name}, fanout: median ${r!.p50_ms.toFixed(2)} ms, worst ${
          r!.max_ms.toFixed(2)
        } ms`
        : `${spec.name}, ${name}: ${Math.round(r!.msgs_per_sec)} msg/s, ` +
          `${row.userUsPerMsg!.toFixed(2)} + ${row.sysUsPerMsg!.toFixed(2)} µs/msg`,
    );
  }
}

const fmt = (n: number, digits = 2) => n.toFixed(digits);
for (const { name } of scenarios) {
  const these = rows.filter((r) => r.scenario === name);
  const zig = these.find((r) => r.server === "ziggurat" && r.status === "ok");
  if (name === "fanout") {
    console.log(
      `\n### fan-out: one publish to ${flags.subscribers} subscribers, ${flags.rounds} rounds\n`,
    );
    console.log(
      "| server | median ms | worst ms | user µs/msg | sys µs/msg | peer/ziggurat (median) |",
    );
    console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  } else {
    console.log(`\n### echo, ${name.slice(4)}-byte messages, ${flags.connections} connections\n`);
    console.log(
      "| server | msg/s | p50 µs | p99 µs | user µs/msg | sys µs/msg | ziggurat/peer |",
    );
    console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  }
  for (const r of these) {
    if (r.status !== "ok") {
      console.log(`| ${r.server} | failed: ${r.reason} | | | | | |`);
      continue;
    }
    const x = r.result!;
    if (name === "fanout") {
      const ratio = zig ? fmt(x.p50_ms / zig.result!.p50_ms) : "";
      console.log(
        `| ${r.server} | ${fmt(x.p50_ms)} | ${fmt(x.max_ms)} | ${fmt(r.userUsPerMsg!)} | ` +
          `${fmt(r.sysUsPerMsg!)} | ${ratio} |`,
      );
    } else {
      const ratio = zig ? fmt(zig.result!.msgs_per_sec / x.msgs_per_sec) : "";
      console.log(
        `| ${r.server} | ${Math.round(x.msgs_per_sec).toLocaleString("en-US")} | ${
          fmt(x.p50_us)
        } | ` +
          `${fmt(x.p99_us)} | ${fmt(r.userUsPerMsg!)} | ${fmt(r.sysUsPerMsg!)} | ${ratio} |`,
      );
    }
  }
}
if (flags.json) await Deno.writeTextFile(flags.json, JSON.stringify(rows, null, 2));
if (rows.some((r) => r.status !== "ok")) Deno.exitCode = 1;
