/**
 * How sessions end, as Swoole defines it: a graceful close writes the queued output, then FIN
 * (also for the heartbeat and protocol errors); a reset ends even a session that is closing;
 * the heartbeat ends a closing session whose peer takes nothing; `heartbeat()` leaves protected
 * sessions alone. Real processes and sockets, in every tree mode.
 */
import assert from "node:assert/strict";
import {
  command,
  connect,
  readToEnd,
  startFixture,
  treeModes,
  until,
  waitMs,
  withTimeout,
} from "./_helpers.ts";

/** The session id of `conn`, as the server sees it. */
async function idOf(conn: Deno.Conn): Promise<number> {
  return (await command(conn, "!info")).sessionId as number;
}

/** Polls the server's stats (the state of another connection has no event), bounded. */
async function untilStats(
  conn: Deno.Conn,
  what: string,
  check: (stats: Record<string, number>) => boolean,
): Promise<Record<string, number>> {
  const deadline = Date.now() + waitMs;
  while (true) {
    const stats = await command(conn, "!stats") as Record<string, number>;
    if (check(stats)) return stats;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(stats)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A protected control connection, and a victim that asked for 32 MiB and reads none of it:
 * most of it waits in the victim session's output.
 */
async function peerThatNeverReads(port: number) {
  const control = await connect(port);
  assert.deepEqual(await command(control, "!protect"), { ok: true });
  const victim = await connect(port);
  const id = await idOf(victim);
  await victim.write(new TextEncoder().encode("!blast 33554432\n"));
  await untilStats(control, "output queued", (s) => s.sendQueuedBytes > 1024 * 1024);
  return { control, victim, id };
}

for (const [name, options] of treeModes) {
  Deno.test(`closing (${name}): the heartbeat ends an idle session with FIN, not a reset`, async () => {
    await using server = await startFixture({
      ...options,
      heartbeatCheckInterval: 0.2,
      heartbeatIdleTime: 0.5,
    });
    const idle = await connect(server.port);
    // No catch: a reset would throw ConnectionReset here.
    const end = await withTimeout(idle.read(new Uint8Array(16)), "the heartbeat's close");
    assert.equal(end, null);
    const probe = await connect(server.port);
    assert.deepEqual(await command(probe, "!protect"), { ok: true });
    const stats = await command(probe, "!stats");
    assert.equal(stats.heartbeatCloseCount, 1);
    assert.equal(stats.abortCount, 0, "an orderly close is no abort");
    idle.close();
    probe.close();
  });

  Deno.test(`closing (${name}): a second graceful close is refused (1004); a reset ends a session whose peer never reads`, async () => {
    await using server = await startFixture(options);
    const { control, victim, id } = await peerThatNeverReads(server.port);
    assert.deepEqual(await command(control, `!closeof ${id}`), { ok: true, lastError: 0 });
    // (With two BASE workers the close may travel to the session's owner first.)
    await until(
      "the session to be closing",
      async () => (await command(control, `!exists ${id}`)).exists === false,
    );
    assert.deepEqual(await command(control, `!closeof ${id}`), { ok: false, lastError: 1004 });
    // Still there: closing, its output waiting for a peer that does not read.
    const closing = await command(control, "!stats");
    assert.equal(closing.connectionNum, 2);
    assert.deepEqual(await command(control, `!closeof ${id} reset`), { ok: true, lastError: 0 });
    const after = await untilStats(control, "the reset", (s) => s.connectionNum === 1);
    assert.equal(after.sendQueuedBytes, 0, "its queued output is dropped");
    assert.equal(after.abortCount, 1);
    victim.close();
    control.close();
  });

  Deno.test(`closing (${name}): the heartbeat resets a closing session whose output makes no progress`, async () => {
    await using server = await startFixture({
      ...options,
      heartbeatCheckInterval: 0.2,
      heartbeatIdleTime: 0.6,
    });
    const { control, victim, id } = await peerThatNeverReads(server.port);
    assert.equal((await command(control, `!closeof ${id}`)).ok, true);
    const after = await untilStats(control, "the heartbeat's reset", (s) => s.connectionNum === 1);
    assert.equal(after.sendQueuedBytes, 0);
    await server.waitForStderr(/none of its output was taken for \d+ ms; reset by the heartbeat/);
    victim.close();
    control.close();
  });
}

for (const [name, options] of treeModes) {
  Deno.test(`closing (${name}): getClientInfo answers inside close, after a server close as after a peer close`, async () => {
    await using server = await startFixture(options);
    for (const by of ["server", "peer"]) {
      const conn = await connect(server.port);
      const id = await idOf(conn);
      if (by === "server") {
        await conn.write(new TextEncoder().encode("!close\n"));
        assert.equal(await withTimeout(readToEnd(conn), "bye").then((b) => b.length), 3);
      } else {
        conn.close();
      }
      const closed = await server.waitFor(
        (e) => e.event === "close" && e.sessionId === id,
        `the close of session ${id}`,
      );
      const info = closed.info as Record<string, unknown> | null;
      assert.ok(info, `getClientInfo inside close after a ${by} close`);
      assert.equal(info.sessionId, id);
      assert.equal(info.remoteIp, "127.0.0.1");
      assert.equal(info.closeErrno, 0);
      if (by === "server") conn.close();
    }
  });
}

Deno.test("closing: heartbeat() lists idle sessions but not protected ones; false without a heartbeat; an empty send is 550", async () => {
  {
    await using server = await startFixture({ heartbeatIdleTime: 0.3, heartbeatCheckInterval: 60 });
    const asker = await connect(server.port);
    const kept = await connect(server.port);
    const idle = await connect(server.port);
    const [askerId, keptId, idleId] = [await idOf(asker), await idOf(kept), await idOf(idle)];
    assert.deepEqual(await command(kept, "!protect"), { ok: true });
    // Idle time passing, on purpose: heartbeat() compares with the clock.
    await new Promise((r) => setTimeout(r, 400));
    const { idle: ids } = await command(asker, "!heartbeat");
    assert.ok(Array.isArray(ids));
    assert.ok((ids as number[]).includes(idleId), `${ids} lists the idle session`);
    assert.ok(!(ids as number[]).includes(keptId), "not the protected one");
    assert.ok(!(ids as number[]).includes(askerId), "not the one that just spoke");
    assert.deepEqual(await command(asker, "!sendempty"), { ok: false, lastError: 550 });
    for (const c of [asker, kept, idle]) c.close();
  }
  {
    await using server = await startFixture({});
    const conn = await connect(server.port);
    assert.deepEqual(await command(conn, "!heartbeat"), { idle: false });
    conn.close();
  }
});
