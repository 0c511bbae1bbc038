/**
 * Draining (Swoole's reload_async): a worker told to go takes no new events, reports itself
 * exiting (status 3) in `workerExit`, lets its async callbacks settle (at most maxWaitTime),
 * then runs `workerStop` and exits. Reload, shutdown, BASE and PROCESS mode. Real processes,
 * real sockets, real signals.
 */
import assert from "node:assert/strict";
import {
  command,
  connect,
  readLineOnly,
  readToEnd,
  startFixture,
  treeModes,
  withTimeout,
  workersStarted,
} from "./_helpers.ts";
import type { Fixture } from "./_helpers.ts";

const encoder = new TextEncoder();

/** Starts an async receive on `conn` and waits until the worker runs it; returns its pid. */
async function startAsync(server: Fixture, conn: Deno.Conn, ms: number): Promise<number> {
  const before = server.events.filter((e) => e.event === "async").length;
  await conn.write(encoder.encode(`!async ${ms}\n`));
  await server.waitFor(
    () => server.events.filter((e) => e.event === "async").length > before,
    "the async receive to start",
  );
  return server.events.filter((e) => e.event === "async").at(-1)!.pid as number;
}

function eventsOf(server: Fixture, pid: number): string[] {
  return server.events.filter((e) => e.pid === pid).map((e) => e.event as string);
}

for (const mode of ["base", "process"]) {
  Deno.test(`${mode} mode: a reload lets an async receive send its reply before the old worker exits; workerExit sees status 3`, async () => {
    await using server = await startFixture({ mode, workerNum: 2, maxWaitTime: 20 });
    const started = await workersStarted(server, 2);
    await using conn = await connect(server.port);
    const pid = await startAsync(server, conn, 700);
    Deno.kill(server.child.pid, "SIGUSR1");
    // The reply comes, although the reload began while the callback was still waiting.
    assert.deepEqual(
      JSON.parse(await withTimeout(readLineOnly(conn), "the async reply")),
      { asyncDone: 700 },
    );
    await server.waitFor((e) => e.event === "afterReload", "afterReload");
    for (const id of [0, 1]) {
      await server.waitFor(
        (e) => e.event === "workerStart" && e.workerId === id && e.pid !== started[id].pid,
        `the successor of worker ${id}`,
      );
    }
    const exit = server.events.find((e) => e.event === "workerExit" && e.pid === pid)!;
    assert.equal(exit.status, 3, "getWorkerStatus() in workerExit");
    const order = eventsOf(server, pid);
    assert.ok(order.indexOf("workerExit") < order.indexOf("workerStop"), `${order}`);
    assert.equal(server.events.filter((e) => e.event === "workerError").length, 0);
    if (mode === "process") {
      // The connection lives on under the successor.
      assert.equal((await command(conn, "!whoami")).workerId !== undefined, true);
    }
  });
}

for (const [name, options] of treeModes) {
  Deno.test(`${name}: shutdown lets an async receive send its reply before the connection closes`, async () => {
    const server = await startFixture({ ...options, maxWaitTime: 20 });
    const workers = (options as { workerNum?: number }).workerNum ?? 1;
    await workersStarted(server, workers);
    const conn = await connect(server.port);
    await startAsync(server, conn, 700);
    Deno.kill(server.child.pid, "SIGTERM");
    const rest = new TextDecoder().decode(await withTimeout(readToEnd(conn), "the close"));
    assert.deepEqual(JSON.parse(rest), { asyncDone: 700 });
    conn.close();
    assert.equal((await withTimeout(server.exited(), "the server to stop")).code, 0);
    const exits = server.events.filter((e) => e.event === "workerExit");
    assert.equal(exits.length, workers, "each worker drains once");
    assert.ok(exits.every((e) => e.status === 3));
    await server[Symbol.asyncDispose]();
  });
}

Deno.test("process mode: while a worker drains, the others see it exiting (status 3) with its pid", async () => {
  await using server = await startFixture({
    mode: "process",
    workerNum: 2,
    reactorNum: 1,
    maxWaitTime: 20,
  });
  const started = await workersStarted(server, 2);
  // Two connections on different workers (dispatch by fd): one drains, one asks.
  const conns: Deno.TcpConn[] = [];
  const owners = new Map<number, Deno.TcpConn>();
  while (owners.size < 2) {
    assert.ok(conns.length < 32, "both workers get a connection among the first 32");
    const conn = await connect(server.port);
    conns.push(conn);
    const id = (await command(conn, "!whoami")).workerId as number;
    if (!owners.has(id)) owners.set(id, conn);
  }
  try {
    const draining = owners.get(0)!;
    const pid = await startAsync(server, draining, 3000);
    Deno.kill(server.child.pid, "SIGUSR1");
    await server.waitFor(
      (e) => e.event === "workerStart" && e.workerId === 1 && e.pid !== started[1].pid,
      "worker 1's successor",
    );
    const seen = await command(owners.get(1)!, "!pids");
    assert.equal((seen.statuses as number[])[0], 3, JSON.stringify(seen));
    assert.equal((seen.pids as number[])[0], pid, "a draining worker keeps its pid");
    assert.deepEqual(
      JSON.parse(await withTimeout(readLineOnly(draining), "the async reply")),
      { asyncDone: 3000 },
    );
  } finally {
    for (const conn of conns) conn.close();
  }
});

Deno.test("process mode: an async receive that never settles holds a reload no longer than maxWaitTime", async () => {
  await using server = await startFixture({ mode: "process", workerNum: 1, maxWaitTime: 1 });
  const [worker] = await workersStarted(server, 1);
  await using conn = await connect(server.port);
  await startAsync(server, conn, 600_000);
  const began = performance.now();
  Deno.kill(server.child.pid, "SIGUSR1");
  await server.waitFor(
    (e) => e.event === "workerStart" && e.workerId === 0 && e.pid !== worker.pid,
    "the successor",
  );
  const took = performance.now() - began;
  assert.ok(took < 10_000, `the reload took ${Math.round(took)} ms`);
  await server.waitForStderr(/maxWaitTime \(1 s\) ran out with 1 async callback/);
  // The successor serves the same connection.
  assert.equal((await command(conn, "!whoami")).workerId, 0);
});

Deno.test("base mode: start runs once per server, not again in a respawned worker 0", async () => {
  await using server = await startFixture({ mode: "base", workerNum: 2 });
  const [first] = await workersStarted(server, 2);
  assert.equal(server.events.filter((e) => e.event === "start").length, 1);
  Deno.kill(first.pid as number, "SIGKILL");
  const second = await server.waitFor(
    (e) => e.event === "workerStart" && e.workerId === 0 && e.pid !== first.pid,
    "worker 0 respawned",
  );
  Deno.kill(server.child.pid, "SIGUSR1");
  await server.waitFor(
    (e) =>
      e.event === "workerStart" && e.workerId === 0 && e.pid !== first.pid &&
      e.pid !== second.pid,
    "worker 0 reloaded",
  );
  await using conn = await connect(server.port);
  assert.equal((await command(conn, "!whoami")).workerId !== undefined, true);
  assert.equal(server.events.filter((e) => e.event === "start").length, 1);
});
