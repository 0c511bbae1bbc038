/**
 * Several servers behind a real load balancer: the deployment example (examples/load-balancer)
 * as it is, HAProxy from Debian's package in front of three Ziggurat servers (HTTP and TCP, the
 * PROXY protocol, health checks on the admin listener). Under load through the balancer (wrk
 * for HTTP, echo_load for TCP), the example's rolling-restart.sh restarts all three: no request
 * and no connection fails. The servers see the clients' own addresses. A server killed with
 * SIGKILL is out of rotation within the check interval; what its clients lose is reported.
 */
import assert from "node:assert/strict";
import { until, withTimeout } from "./_helpers.ts";
import { buildLoadGenerators, echoLoad } from "./_load.ts";

const root = new URL("..", import.meta.url).pathname;
const example = `${root}examples/load-balancer`;
const decoder = new TextDecoder();

/** Ports free now, all different (bound to port 0, then let go). */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

interface Setup {
  env: Record<string, string>;
  runDir: string;
  balancer: Deno.ChildProcess;
  balancerLog: () => string;
}

async function bash(env: Record<string, string>, script: string, what: string) {
  const out = await withTimeout(
    new Deno.Command("bash", { args: ["-c", script], env, stdout: "piped", stderr: "piped" })
      .output(),
    what,
    120_000,
  );
  const text = decoder.decode(out.stdout) + decoder.decode(out.stderr);
  assert.ok(out.success, `${what}:\n${text}`);
  return text;
}

/** HAProxy's view of each server: name → its status in each backend ("UP", "DOWN" …). */
async function backendStatus(env: Record<string, string>): Promise<Map<string, string[]>> {
  const response = await fetch(`http://127.0.0.1:${env.LB_STATS_PORT}/stats;csv`);
  const text = await response.text();
  const status = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const fields = line.split(",");
    if (!/^s\d$/.test(fields[1] ?? "")) continue;
    status.set(fields[1], [...(status.get(fields[1]) ?? []), fields[17]]);
  }
  return status;
}

/** Sessions open now between HAProxy's `backend` and server `name`. */
async function sessions(env: Record<string, string>, backend: string, name: string) {
  const response = await fetch(`http://127.0.0.1:${env.LB_STATS_PORT}/stats;csv`);
  for (const line of (await response.text()).split("\n")) {
    const fields = line.split(",");
    if (fields[0] === backend && fields[1] === name) return Number(fields[4]);
  }
  return 0;
}

async function allUp(env: Record<string, string>): Promise<boolean> {
  try {
    const status = await backendStatus(env);
    return ["s1", "s2", "s3"].every((s) => status.get(s)?.join(" ") === "UP UP");
  } catch {
    return false;
  }
}

/** The example's three servers, started as env.sh does (daemonized, pid files in a temp dir). */
async function startServers(): Promise<{ env: Record<string, string>; runDir: string }> {
  const [lbHttp, lbTcp, lbStats, ...servers] = freePorts(12);
  const runDir = await Deno.makeTempDir({ prefix: "zg-lb-" });
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    DENO: Deno.execPath(),
    RUN_DIR: runDir,
    SHUTDOWN_DELAY: "2",
    WORKERS: "2",
    LB_HOST: "127.0.0.1",
    LB_HTTP_PORT: String(lbHttp),
    LB_TCP_PORT: String(lbTcp),
    LB_STATS_PORT: String(lbStats),
  };
  const lib = Deno.env.get("ZIGGURAT_LIB");
  if (lib) env.ZIGGURAT_LIB = lib.startsWith("/") ? lib : `${Deno.cwd()}/${lib}`;
  for (let i = 1; i <= 3; i++) {
    env[`S${i}_HOST`] = "127.0.0.1";
    env[`S${i}_HTTP`] = String(servers[(i - 1) * 3]);
    env[`S${i}_TCP`] = String(servers[(i - 1) * 3 + 1]);
    env[`S${i}_ADMIN`] = String(servers[(i - 1) * 3 + 2]);
  }
  await bash(
    env,
    `source ${example}/env.sh && for i in 1 2 3; do start_server $i; done`,
    "the three servers to start",
  );
  return { env, runDir };
}

/** A balancer in the foreground, its output kept. */
function spawnBalancer(command: string, args: string[], env: Record<string, string>) {
  const child = new Deno.Command(command, { args, env, stdout: "piped", stderr: "piped" }).spawn();
  let log = "";
  for (const stream of [child.stdout, child.stderr]) {
    (async () => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) log += chunk;
    })();
  }
  return { child, log: () => log };
}

async function setUp(): Promise<Setup> {
  const { env, runDir } = await startServers();
  const haproxy = spawnBalancer("haproxy", ["-f", `${example}/haproxy.cfg`, "-db"], env);
  await until("HAProxy to have every server UP", () => allUp(env));
  return { env, runDir, balancer: haproxy.child, balancerLog: haproxy.log };
}

async function tearDown(setup: Setup) {
  try {
    setup.balancer.kill("SIGKILL");
  } catch { /* gone */ }
  await setup.balancer.status;
  for (let i = 1; i <= 3; i++) {
    try {
      const pid = Number(Deno.readTextFileSync(`${setup.runDir}/s${i}.pid`));
      Deno.kill(-pid, "SIGKILL");
    } catch {
      try {
        Deno.kill(Number(Deno.readTextFileSync(`${setup.runDir}/s${i}.pid`)), "SIGKILL");
      } catch { /* gone */ }
    }
  }
  await Deno.remove(setup.runDir, { recursive: true }).catch(() => {});
}

/** wrk and echo_load through the balancer until `stop()`; their counts. */
function startLoad(env: Record<string, string>, connections: number) {
  const wrk = new Deno.Command("wrk", {
    args: ["-t1", `-c${connections}`, "-d120s", `http://127.0.0.1:${env.LB_HTTP_PORT}/`],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tcp = new Deno.Command(echoLoad, {
    args: [
      ...["--host", "127.0.0.1", "--port", env.LB_TCP_PORT, "--connections", String(connections)],
      ...["--size", "64", "--duration", "120", "--warmup", "0", "--reconnect", "50"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return {
    async stop() {
      wrk.kill("SIGINT");
      tcp.kill("SIGTERM");
      const [w, t] = await Promise.all([wrk.output(), tcp.output()]);
      const wrkText = decoder.decode(w.stdout);
      const requests = Number(/(\d+) requests in/.exec(wrkText)?.[1] ?? 0);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(wrkText)?.[1] ?? 0);
      const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
        .exec(wrkText)?.slice(1).map(Number) ?? [0, 0, 0, 0];
      const echo = JSON.parse(decoder.decode(t.stdout).trim().split("\n").at(-1) ?? "{}");
      return {
        requests,
        httpErrors: non2xx + socket.reduce((a, b) => a + b, 0),
        messages: echo.messages as number,
        connections: echo.connections as number,
        tcpErrors: echo.errors as number,
        detail: `${wrkText}\n${decoder.decode(t.stderr).slice(0, 2000)}`,
      };
    },
  };
}

/**
 * Through the balancer, the servers see the client's own address, not the balancer's: curl from
 * 127.0.0.2 over HTTP, and a TCP client's own port over TCP.
 */
async function clientAddresses(env: Record<string, string>) {
  const curl = await new Deno.Command("curl", {
    args: ["-sS", "--interface", "127.0.0.2", `http://127.0.0.1:${env.LB_HTTP_PORT}/`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(curl.success, decoder.decode(curl.stderr));
  const seen = JSON.parse(decoder.decode(curl.stdout));
  assert.match(seen.client, /^127\.0\.0\.2:\d+$/);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(env.LB_TCP_PORT) });
  await conn.write(new TextEncoder().encode("who\n"));
  const buffer = new Uint8Array(256);
  const n = await withTimeout(conn.read(buffer), "the TCP server's answer");
  const [name, ip, port] = decoder.decode(buffer.subarray(0, n ?? 0)).trim().split(" ");
  assert.match(name, /^s\d$/);
  assert.equal(ip, "127.0.0.1");
  assert.equal(Number(port), (conn.localAddr as Deno.NetAddr).port);
  conn.close();
}

Deno.test("load balancer (HAProxy, three servers): client addresses through the PROXY protocol; a rolling restart under load fails no request and no connection; a SIGKILL-ed server leaves rotation within the check interval", async () => {
  await buildLoadGenerators();
  const setup = await setUp();
  const { env } = setup;
  try {
    await clientAddresses(env);

    // A rolling restart under load: every request and connection succeeds.
    const load = startLoad(env, 8);
    const restart = await bash(
      env,
      `${example}/rolling-restart.sh`,
      "rolling-restart.sh",
    );
    const rolled = await load.stop();
    console.log(
      `rolling restart: ${rolled.requests} HTTP requests, ${rolled.httpErrors} failed; ` +
        `${rolled.messages} TCP echoes over ${rolled.connections} connections, ${rolled.tcpErrors} failed`,
    );
    assert.match(restart, /s3: back in rotation/);
    assert.ok(rolled.requests > 0 && rolled.messages > 0, rolled.detail);
    assert.equal(rolled.httpErrors, 0, rolled.detail);
    assert.equal(rolled.tcpErrors, 0, rolled.detail);

    // SIGKILL to one server's whole tree: out of rotation within the check interval (500 ms,
    // one failure), what its clients lose bounded by the connections it had.
    const killed = startLoad(env, 4);
    await until("TCP load on s2", async () => (await sessions(env, "ziggurat_tcp", "s2")) > 0);
    const pid = Number(Deno.readTextFileSync(`${setup.runDir}/s2.pid`));
    const at = performance.now();
    Deno.kill(pid, "SIGKILL");
    await until("HAProxy to take s2 out", async () => {
      const s = await backendStatus(env);
      return s.get("s2")?.every((status) => status.startsWith("DOWN")) ?? false;
    });
    const outAfter = performance.now() - at;
    const lost = await killed.stop();
    console.log(
      `SIGKILL: s2 out of rotation after ${
        outAfter.toFixed(0)
      } ms; ${lost.httpErrors} of ${lost.requests} ` +
        `HTTP requests and ${lost.tcpErrors} of ${lost.connections} TCP connections failed`,
    );
    // (500 ms between checks and a 1 s check timeout; a loaded machine may add a little.)
    assert.ok(outAfter < 5000, `s2 still in rotation ${outAfter.toFixed(0)} ms after its SIGKILL`);
    assert.ok(lost.httpErrors <= 4, lost.detail);
    assert.ok(lost.tcpErrors <= 4, lost.detail);
  } catch (error) {
    throw new Error(`${(error as Error).message}\nHAProxy:\n${setup.balancerLog()}`);
  } finally {
    await tearDown(setup);
  }
});

Deno.test("load balancer (nginx stream, the example's second option): client addresses through the PROXY protocol; a stopped server's share goes to the others", async () => {
  const { env, runDir } = await startServers();
  // The example's nginx.conf with this run's ports (it names the defaults of env.sh).
  let config = await Deno.readTextFile(`${example}/nginx.conf`);
  const ports: [string, string][] = [["8080", env.LB_HTTP_PORT], ["9080", env.LB_TCP_PORT]];
  for (let i = 1; i <= 3; i++) {
    ports.push([`808${i}`, env[`S${i}_HTTP`]], [`908${i}`, env[`S${i}_TCP`]]);
  }
  for (const [from, to] of ports) {
    config = config.replace(new RegExp(`127\\.0\\.0\\.1:${from}\\b`, "g"), `127.0.0.1:${to}`);
  }
  config = config.replace(/^pid .*$/m, `pid ${runDir}/nginx.pid;`);
  await Deno.writeTextFile(`${runDir}/nginx.conf`, config);
  const nginx = spawnBalancer("nginx", ["-c", `${runDir}/nginx.conf`, "-g", "daemon off;"], env);
  const setup = { env, runDir, balancer: nginx.child, balancerLog: nginx.log };
  try {
    await until("nginx to listen", async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: Number(env.LB_HTTP_PORT) })).close();
        return true;
      } catch {
        return false;
      }
    });
    await clientAddresses(env);
    // s1 stopped (after its shutdownDelay): nginx finds it gone and passes its connections on.
    await bash(
      env,
      `source ${example}/env.sh && ziggurat stop --pid-file $RUN_DIR/s1.pid`,
      "s1 to stop",
    );
    const served = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const response = await fetch(`http://127.0.0.1:${env.LB_HTTP_PORT}/`);
      assert.equal(response.status, 200);
      served.add((await response.json()).server);
    }
    assert.ok(!served.has("s1"), [...served].join(" "));
  } catch (error) {
    throw new Error(`${(error as Error).message}\nnginx:\n${nginx.log()}`);
  } finally {
    await tearDown(setup);
  }
});
