/**
 * The admin listener (`adminServer`): `/metrics` scraped with curl and checked by Prometheus's
 * own `promtool check metrics` (Debian's prometheus package, installed by the test set-up),
 * with per-worker and per-port series; `/health` for load balancers. Real fixture processes.
 */
import assert from "node:assert/strict";
import { connect, readBytes, startFixture, withTimeout, workersStarted } from "./_helpers.ts";
import type { Fixture } from "./_helpers.ts";

async function curl(url: string): Promise<{ code: number; status: number; body: string }> {
  const out = await withTimeout(
    new Deno.Command("curl", {
      args: ["-sS", "-o", "-", "-w", "\n%{http_code}", url],
      stdout: "piped",
      stderr: "piped",
    }).output(),
    `curl ${url}`,
  );
  const text = new TextDecoder().decode(out.stdout);
  const at = text.lastIndexOf("\n");
  return { code: out.code, status: Number(text.slice(at + 1)), body: text.slice(0, at) };
}

async function promtool(text: string): Promise<{ code: number; out: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await withTimeout(child.output(), "promtool");
  return {
    code: out.code,
    out: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
  };
}

async function echoOnce(server: Fixture) {
  const conn = await connect(server.port);
  await conn.write(new TextEncoder().encode("ping"));
  assert.equal(new TextDecoder().decode(await readBytes(conn, 4)), "ping");
  conn.close();
}

for (
  const [name, options] of [["one worker", {}], ["two BASE workers", { workerNum: 2 }]] as const
) {
  Deno.test(`admin (${name}): /metrics passes promtool with worker and port labels; /health says 200`, async () => {
    await using server = await startFixture({ ...options, adminServer: "127.0.0.1:0" });
    if ("workerNum" in options) await workersStarted(server, 2);
    const start = server.events.find((e) => e.event === "start")!;
    const admin = `http://127.0.0.1:${start.adminPort}`;
    await echoOnce(server);
    const metrics = await curl(`${admin}/metrics`);
    assert.equal(metrics.status, 200, metrics.body);
    const lint = await promtool(metrics.body);
    assert.equal(lint.code, 0, lint.out + metrics.body);
    assert.match(metrics.body, /^# TYPE ziggurat_accepted_total counter$/m);
    const port = server.port;
    const accepted = new RegExp(`^ziggurat_accepted_total\\{port="${port}"\\} (\\d+)$`, "m")
      .exec(metrics.body);
    assert.ok(accepted && Number(accepted[1]) >= 1, metrics.body);
    assert.match(metrics.body, /^ziggurat_worker_requests_total\{worker="0",type="event"\} \d+$/m);
    assert.match(
      metrics.body,
      /^ziggurat_worker_status\{worker="0",type="event",status="(idle|busy)"\} 1$/m,
    );
    if ("workerNum" in options) {
      assert.match(metrics.body, /^ziggurat_worker_requests_total\{worker="1",type="event"\}/m);
      assert.match(metrics.body, /^ziggurat_workers 2$/m);
    }
    const health = await curl(`${admin}/health`);
    assert.deepEqual([health.status, JSON.parse(health.body)], [200, { status: "ok" }]);
    const missing = await curl(`${admin}/nope`);
    assert.equal(missing.status, 404);
  });
}

Deno.test("admin: an adminServer that is not host:port is refused with the option's name", async () => {
  const { Server } = await import("../mod.ts");
  assert.throws(() => new Server({ adminServer: "9502" }), /"adminServer" must be "host:port"/);
  assert.throws(() => new Server({ adminServer: "h:99999" }), /"adminServer"/);
});

Deno.test("admin: an HTTP server (no receive callback) starts with its admin listener, which answers /health", async () => {
  const script = new URL("./fixtures/http_server.ts", import.meta.url).pathname;
  await using server = await startFixture({ adminServer: "127.0.0.1:0" }, { script });
  const start = server.events.find((e) => e.event === "start")!;
  const health = await fetch(`http://127.0.0.1:${start.adminPort}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: "ok" });
});
