/**
 * In and out of a load balancer's rotation: the admin listener's `/health` fails as soon as
 * `drain()`, `ziggurat drain` or a SIGTERM says so, while the server goes on serving; a SIGTERM
 * stops it only after `shutdownDelay`.
 */
import assert from "node:assert/strict";
import {
  command,
  connect,
  readLine,
  startFixture,
  treeModes,
  until,
  withTimeout,
  workersStarted,
} from "./_helpers.ts";
import { runCli } from "./_cli.ts";

const encoder = new TextEncoder();

/** `GET /health` on the admin port: status, body, and its `Connection` header. */
async function health(port: number) {
  const conn = await connect(port);
  try {
    await conn.write(encoder.encode("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    let text = "";
    const buffer = new Uint8Array(4096);
    while (!/\r\n\r\n[^]*\}/.test(text)) {
      const n = await withTimeout(conn.read(buffer), "the health answer");
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return {
      status: Number(text.split(" ")[1]),
      body: JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)),
      connection: /\r\nconnection: (\S+)/i.exec(text)?.[1].toLowerCase(),
    };
  } finally {
    conn.close();
  }
}

for (const [name, mode] of treeModes) {
  Deno.test(`rotation (${name}): drain() and ziggurat drain fail the health check while serving goes on; SIGTERM fails it at once and stops only after shutdownDelay`, async () => {
    await using server = await startFixture({
      ...mode,
      adminServer: "127.0.0.1:0",
      shutdownDelay: 2,
    });
    const admin = server.events.find((e) => e.event === "start")!.adminPort as number;
    assert.deepEqual(await health(admin), {
      status: 200,
      body: { status: "ok" },
      connection: undefined,
    });

    // drain() from a worker: every process's /health says so; the service goes on.
    const conn = await connect(server.port);
    assert.deepEqual(await command(conn, "!drain"), { ok: true, health: "draining" });
    assert.equal((await health(admin)).status, 503);
    assert.deepEqual((await health(admin)).body, { status: "draining" });
    const fresh = await connect(server.port);
    await fresh.write(encoder.encode("still here\n"));
    assert.equal(await withTimeout(readLine(fresh), "an echo while drained"), "still here");
    fresh.close();
    assert.deepEqual(await command(conn, "!undrain"), { ok: true, health: "ok" });
    assert.equal((await health(admin)).status, 200);

    // The CLI, by signal to the master.
    const who = await command(conn, "!whoami");
    const master = (who.managerPid as number) > 0 ? who.managerPid as number : server.pid;
    const drained = await runCli(["drain", "--pid", String(master)]);
    assert.equal(drained.code, 0, drained.err);
    await until("the CLI's drain", async () => (await health(admin)).status === 503);
    await server.waitForStderr(/drained: the health check fails/);
    const undone = await runCli(["drain", "--undo", "--pid", String(master)]);
    assert.equal(undone.code, 0, undone.err);
    await until("the CLI's undo", async () => (await health(admin)).status === 200);

    // SIGTERM: out of rotation at once, serving for shutdownDelay, then the stop.
    const sent = performance.now();
    Deno.kill(master, "SIGTERM");
    await until(
      "the SIGTERM's health",
      async () => (await health(admin)).body.status === "stopping",
    );
    const during = await health(admin);
    assert.equal(during.status, 503);
    assert.equal(during.connection, "close", "HTTP connections end after their response meanwhile");
    const late = await connect(server.port);
    await late.write(encoder.encode("during the delay\n"));
    assert.equal(await withTimeout(readLine(late), "an echo during the delay"), "during the delay");
    assert.deepEqual(await command(conn, "!undrain"), { ok: false, health: "stopping" });
    const status = await server.exited();
    const took = performance.now() - sent;
    assert.equal(status.code, 0);
    assert.ok(took >= 1900, `stopped ${took.toFixed(0)} ms after SIGTERM, before its 2 s delay`);
    assert.match(server.stderr(), /shutting down in 2 s/);
    late.close();
    conn.close();
  });
}

Deno.test("rotation (two BASE workers): a SIGTERM to the whole process group, as systemd sends it, waits out shutdownDelay too: the workers serve on, none is replaced", async () => {
  await using server = await startFixture({
    workerNum: 2,
    adminServer: "127.0.0.1:0",
    shutdownDelay: 2,
  });
  await workersStarted(server, 2);
  const conn = await connect(server.port);
  const who = await command(conn, "!whoami");
  const { pids } = await command(conn, "!pids") as { pids: number[] };
  const master = who.managerPid as number;
  const sent = performance.now();
  for (const pid of [master, ...pids]) Deno.kill(pid, "SIGTERM");
  const admin = server.events.find((e) => e.event === "start")!.adminPort as number;
  await until("the SIGTERM's health", async () => (await health(admin)).status === 503);
  // The connection a worker holds is served on, by the same worker.
  const again = await command(conn, "!whoami");
  assert.equal(again.pid, who.pid);
  assert.equal((await server.exited()).code, 0);
  assert.ok(performance.now() - sent >= 1900);
  assert.equal(
    server.events.filter((e) => e.event === "workerStart").length,
    2,
    "no worker was replaced",
  );
  assert.match(server.stderr(), /SIGTERM while the server waits out its shutdownDelay/);
  conn.close();
});

Deno.test("rotation (two BASE workers): a SIGTERM while a reload is on its way abandons the reload; no worker is killed, the stop comes after the delay", async () => {
  await using server = await startFixture({ workerNum: 2, shutdownDelay: 2, maxWaitTime: 1 });
  await workersStarted(server, 2);
  const conn = await connect(server.port);
  const master = (await command(conn, "!whoami")).managerPid as number;
  // A callback in hand keeps its worker from leaving at once.
  await conn.write(new TextEncoder().encode("!async 800\n"));
  await server.waitFor((e) => e.event === "async", "the async callback");
  Deno.kill(master, "SIGUSR1");
  await server.waitForStderr(/reloading 2 worker\(s\)/);
  Deno.kill(master, "SIGTERM");
  assert.equal(JSON.parse(await withTimeout(readLine(conn), "the async reply")).asyncDone, 800);
  assert.equal((await server.exited()).code, 0);
  assert.match(server.stderr(), /reload abandoned/);
  assert.doesNotMatch(server.stderr(), /SIGKILL/);
  conn.close();
});

Deno.test("rotation: a second SIGTERM during shutdownDelay stops at once; without adminServer there is no delay", async () => {
  {
    await using server = await startFixture({ adminServer: "127.0.0.1:0", shutdownDelay: 600 });
    const admin = server.events.find((e) => e.event === "start")!.adminPort as number;
    Deno.kill(server.pid, "SIGTERM");
    await until("the SIGTERM's health", async () => (await health(admin)).status === 503);
    Deno.kill(server.pid, "SIGTERM");
    assert.equal((await server.exited()).code, 0);
  }
  {
    await using server = await startFixture({});
    Deno.kill(server.pid, "SIGTERM");
    assert.equal((await server.exited()).code, 0);
    assert.doesNotMatch(server.stderr(), /shutdownDelay/);
  }
});

Deno.test("rotation: shutdownDelay is checked", async () => {
  const { Server } = await import("../mod.ts");
  assert.throws(() => new Server({ shutdownDelay: -1 }), /"shutdownDelay" must be seconds/);
  assert.equal(new Server({ adminServer: "127.0.0.1:0" }).options.shutdownDelay, 5);
  assert.equal(new Server({}).options.shutdownDelay, 0);
  const idle = new Server({});
  assert.equal(idle.drain(), false, "a server that does not run cannot be drained");
  assert.equal(idle.health, "stopping");
});
