/**
 * HTTP/1.1 benchmark: Ziggurat's `HttpServer` and `serve()` against `Deno.serve`, `Bun.serve`,
 * Node's `http` and nginx, with `wrk` as the load generator.
 *
 *   deno run -A bench/http.ts [--duration 5] [--warmup 1] [--connections 64]
 *                             [--scenarios hello,pipelined,post64k,static1m] [--only a,b]
 *                             [--json out.json]
 *
 * Each server runs pinned to CPU 0 and `wrk` (one thread) to CPU 1. The server's whole process
 * tree's CPU time is read from /proc inside wrk's run; µs per request are that over the
 * requests wrk counted. Scenarios: `hello` (GET, keep-alive), `pipelined` (16 GETs in flight
 * per connection), `post64k` (a 64 KiB body per request), `static1m` (GET of a 1 MiB file:
 * Ziggurat's reactor static handler, nginx's `root` with sendfile, the others' own file
 * responses). `wrk` and nginx come from Debian's packages (installed when missing).
 * @module
 */
import { parseArgs } from "node:util";
import { loadCpu, root, ServerProcess, sleep, treeCpu } from "./_proc.ts";
import type { ServerSpec } from "./_proc.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    connections: { type: "string", default: "64" },
    scenarios: { type: "string", default: "hello,pipelined,post64k,static1m" },
    only: { type: "string" },
    json: { type: "string" },
  },
});
const duration = Number(flags.duration);
const warmup = Number(flags.warmup);
const connections = Number(flags.connections);

const deno = Deno.execPath();
const scripts = await Deno.makeTempDir({ prefix: "bench-http-" });
// The static1m scenario's file, under the document root every server is given.
await Deno.mkdir(`${scripts}/www/static`, { recursive: true });
await Deno.writeFile(
  `${scripts}/www/static/1m.bin`,
  new Uint8Array(1 << 20).map((_, i) => i % 251),
);
// (Readable by nginx's workers, which run as another user.)
for (const dir of [scripts, `${scripts}/www`, `${scripts}/www/static`]) {
  await Deno.chmod(dir, 0o755);
}
await Deno.chmod(`${scripts}/www/static/1m.bin`, 0o644);
const rootArgs = ["--root", `${scripts}/www`];
const servers: ServerSpec[] = [
  { name: "ziggurat_http", command: [deno, "run", "-A", "bench/servers/ziggurat_http.ts"] },
  {
    name: "ziggurat_serve",
    command: [deno, "run", "-A", "bench/servers/ziggurat_http.ts", "--tier", "serve"],
  },
  {
    name: "ziggurat_process",
    command: [
      deno,
      "run",
      "-A",
      "bench/servers/ziggurat_http.ts",
      ...["--mode", "process", "--workers", "2", "--reactors", "1"],
    ],
  },
  {
    name: "deno_serve",
    command: [deno, "run", "--allow-net", "--allow-read", "bench/servers/deno_serve.ts"],
  },
  { name: "bun_serve", command: [`${root}scripts/bun`, "bench/servers/bun_serve.ts"] },
  { name: "node_http", command: ["node", "bench/servers/node_http.mjs"] },
  { name: "nginx", command: [deno, "run", "-A", "bench/servers/nginx.ts"] },
].filter((s) => !flags.only || flags.only.split(",").includes(s.name))
  .map((s) => ({ ...s, command: [...s.command, ...rootArgs] }));

/** Installs what is missing from Debian's packages. */
async function ensure(command: string, pkg: string) {
  const found = await new Deno.Command("sh", { args: ["-c", `command -v ${command}`] }).output();
  if (found.success) return;
  console.error(`installing ${pkg} (Debian package) for the benchmark`);
  const install = await new Deno.Command("bash", {
    args: [
      "-c",
      `${Deno.uid() === 0 ? "" : "sudo "}apt-get update -qq && DEBIAN_FRONTEND=noninteractive ` +
      `${Deno.uid() === 0 ? "" : "sudo "}apt-get install -y -qq --no-install-recommends ${pkg}`,
    ],
  }).output();
  if (!install.success) throw new Error(`cannot install ${pkg}`);
}
await ensure("wrk", "wrk");
await ensure("nginx", "nginx-light");

await Deno.writeTextFile(
  `${scripts}/pipelined.lua`,
  `init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format("GET", "/") end
  req = table.concat(r)
end
request = function() return req end
`,
);
await Deno.writeTextFile(
  `${scripts}/post64k.lua`,
  `wrk.method = "POST"
wrk.body = string.rep("x", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
`,
);

interface WrkResult {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

function ms(text: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
}

function parseWrk(out: string): WrkResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? "");
  const p99 = ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? "");
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (socket ? socket.slice(1).reduce((n, v) => n + Number(v), 0) : 0);
  return { requestsPerSec: rps, p50Ms: p50, p99Ms: p99, errors };
}

interface Row {
  server: string;
  scenario: string;
  status: "ok" | "failed";
  reason?: string;
  wrk?: WrkResult;
  userUsPerReq?: number;
  sysUsPerReq?: number;
}

async function measure(spec: ServerSpec, scenario: string): Promise<Row> {
  const server = new ServerProcess(spec);
  try {
    const port = await server.port;
    const script = scenario === "hello" || scenario === "static1m"
      ? []
      : ["-s", `${scripts}/${scenario}.lua`];
    const path = scenario === "static1m" ? "/static/1m.bin" : "/";
    const total = warmup + duration;
    const wrk = new Deno.Command("taskset", {
      args: [
        "-c",
        loadCpu,
        "wrk",
        "-t1",
        `-c${connections}`,
        `-d${total}s`,
        "--latency",
        ...script,
        `http://127.0.0.1:${port}${path}`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const started = performance.now();
    await sleep(warmup * 1000);
    const pids = server.tree();
    const before = { cpu: treeCpu(pids), at: performance.now() };
    await sleep(Math.max(0, started + (total - 0.2) * 1000 - performance.now()));
    const after = { cpu: treeCpu(pids), at: performance.now() };
    const out = await wrk;
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
    const result = parseWrk(text);
    const window = (after.at - before.at) / 1000;
    // Pipelined: wrk counts each 16-request batch's responses as requests.
    const perReq = (s: number) => s / window / result.requestsPerSec * 1e6;
    return {
      server: spec.name,
      scenario,
      status: "ok",
      wrk: result,
      userUsPerReq: perReq(after.cpu.user - before.cpu.user),
      sysUsPerReq: perReq(after.cpu.system - before.cpu.system),
    };
  } catch (error) {
    return { server: spec.name, scenario, status: "failed", reason: (error as Error).message };
  } finally {
    await server.stop();
  }
}

const rows: Row[] = [];
for (const scenario of flags.scenarios.split(",")) {
  for (const spec of servers) {
    console.error(`${spec.name}, ${scenario}: running`);
    const row = await measure(spec, scenario);
    rows.push(row);
    console.error(
      row.status === "ok"
        ? `${spec.name}, ${scenario}: ${Math.round(row.wrk!.requestsPerSec)} req/s, ` +
          `${row.userUsPerReq!.toFixed(2)} + ${row.sysUsPerReq!.toFixed(2)} µs/req, ` +
          `${row.wrk!.errors} errors`
        : `${spec.name}, ${scenario}: failed: ${row.reason}`,
    );
  }
}
await Deno.remove(scripts, { recursive: true });

for (const scenario of flags.scenarios.split(",")) {
  const these = rows.filter((r) => r.scenario === scenario);
  const first = these.find((r) => r.server === "ziggurat_http" && r.status === "ok");
  console.log(`\n### ${scenario}, ${connections} connections\n`);
  console.log(
    "| server | req/s | p50 ms | p99 ms | user µs/req | sys µs/req | errors | ziggurat_http/peer |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of these) {
    if (r.status !== "ok") {
      console.log(`| ${r.server} | failed: ${r.reason} | | | | | | |`);
      continue;
    }
    const ratio = first ? (first.wrk!.requestsPerSec / r.wrk!.requestsPerSec).toFixed(2) : "";
    console.log(
      `| ${r.server} | ${Math.round(r.wrk!.requestsPerSec).toLocaleString("en-US")} | ` +
        `${r.wrk!.p50Ms.toFixed(2)} | ${r.wrk!.p99Ms.toFixed(2)} | ${
          r.userUsPerReq!.toFixed(2)
        } | ` +
        `${r.sysUsPerReq!.toFixed(2)} | ${r.wrk!.errors} | ${ratio} |`,
    );
  }
}
if (flags.json) await Deno.writeTextFile(flags.json, JSON.stringify(rows, null, 2));
if (rows.some((r) => r.status !== "ok" || (r.wrk && r.wrk.errors > 0))) Deno.exitCode = 1;
