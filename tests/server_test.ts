/**
 * The BASE-mode server end to end: a real fixture process, real sockets on 127.0.0.1.
 */
import assert from "node:assert/strict";
import net from "node:net";
import {
  command,
  connect,
  reactorModes,
  readBytes,
  readToEnd,
  startFixture,
  until,
  withTimeout,
  writeAll,
} from "./_helpers.ts";

const encoder = new TextEncoder();

async function echoClients(port: number, clients: number, messages: number) {
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const conn = await connect(port);
    try {
      for (let m = 0; m < messages; m++) {
        const message = encoder.encode(`client ${c} message ${m} ${"x".repeat(c % 97)}`);
        await conn.write(message);
        const echoed = await readBytes(conn, message.length);
        assert.deepEqual(echoed, message, `client ${c} message ${m} came back changed`);
      }
    } finally {
      conn.close();
    }
  }));
}

// Every behaviour holds whether the JS thread drives the reactor or a reactor thread does.
for (const [name, mode] of reactorModes) {
  for (const clients of [1, 100, 1000]) {
    Deno.test(`${name}: echo: ${clients} concurrent client(s) each get their own bytes back`, async () => {
      await using server = await startFixture(mode);
      await withTimeout(echoClients(server.port, clients, 5), `${clients} echo clients`);
      await using conn = await connect(server.port);
      const stats = await command(conn, "!stats");
      assert.equal(stats.acceptCount, clients + 1);
      assert.ok((stats.requestCount as number) >= clients * 5);
    });
  }

  Deno.test(`${name}: echo: a 1 MiB message makes the round trip intact`, async () => {
    await using server = await startFixture(mode);
    await using conn = await connect(server.port);
    const message = new Uint8Array(1024 * 1024);
    for (let i = 0; i < message.length; i++) message[i] = (i * 7 + (i >> 11)) & 0xff;
    const [, echoed] = await Promise.all([
      writeAll(conn, message),
      withTimeout(readBytes(conn, message.length), "the 1 MiB echo"),
    ]);
    assert.equal(echoed.length, message.length);
    assert.deepEqual(echoed, message);
  });

  Deno.test(`${name}: a received buffer transferred away (detached) leaves later receives whole`, async () => {
    await using server = await startFixture(mode);
    await using conn = await connect(server.port);
    // A small receive shares a pooled buffer, which the transfer detaches.
    const { bufferBytes } = await command(conn, "!detach");
    assert.ok((bufferBytes as number) >= 8);
    for (const size of [10, 3000, 5000]) {
      const message = new Uint8Array(size).map((_, i) => (i * 13) & 0xff);
      await conn.write(message);
      assert.deepEqual(await withTimeout(readBytes(conn, size), "the echo"), message);
    }
    assert.deepEqual(await command(conn, "!detach"), { bufferBytes });
  });

  Deno.test(`${name}: peer half-close: data sent before the FIN is echoed, then the server closes`, async () => {
    await using server = await startFixture(mode);
    const conn = await connect(server.port);
    await conn.write(encoder.encode("last words"));
    await conn.closeWrite();
    const rest = await withTimeout(readToEnd(conn), "echo and EOF after half-close");
    assert.equal(new TextDecoder().decode(rest), "last words");
    conn.close();
    const connectEvent = await server.waitFor((e) => e.event === "connect", "connect");
    const close = await server.waitFor((e) => e.event === "close", "close after half-close");
    assert.equal(close.sessionId, connectEvent.sessionId);
    assert.equal(close.reactorId, 0, "a close the peer started carries the reactor id");
  });

  Deno.test(`${name}: peer reset: the session closes, is counted as aborted, and others carry on`, async () => {
    await using server = await startFixture(mode);
    await using other = await connect(server.port);
    // node:net's resetAndDestroy() closes with SO_LINGER 0: the server reads ECONNRESET.
    const victim = net.connect(server.port, "127.0.0.1");
    await new Promise((resolve) => victim.once("connect", resolve));
    victim.write("abc");
    await new Promise((resolve) => victim.once("data", resolve));
    victim.resetAndDestroy();
    const close = await server.waitFor(
      (e) => e.event === "close" && e.sessionId === 2,
      "close of the reset session",
    );
    assert.equal(close.reactorId, 0);
    await other.write(encoder.encode("still here"));
    assert.equal(new TextDecoder().decode(await readBytes(other, 10)), "still here");
    const stats = await command(other, "!stats");
    assert.equal(stats.abortCount, 1);
    assert.equal(stats.connectionNum, 1);
    // A peer's reset is logged at debug level only (log_test.ts sees it there).
    assert.doesNotMatch(server.stderr(), /ECONNRESET/);
  });

  Deno.test(`${name}: server close: graceful delivers queued output then FIN; reset drops it with RST`, async () => {
    await using server = await startFixture(mode);
    const graceful = await connect(server.port);
    await graceful.write(encoder.encode("!big 4000000\n"));
    const all = await withTimeout(readToEnd(graceful), "graceful close output");
    graceful.close();
    assert.equal(all.length, 4_000_000);
    for (let i = 0; i < all.length; i += 4099) assert.equal(all[i], i % 251);
    const close = await server.waitFor((e) => e.event === "close", "close after graceful close");
    assert.equal(close.reactorId, -1, "a server-side close reports reactor id -1");

    const reset = await connect(server.port);
    await reset.write(encoder.encode("!reset\n"));
    let received = 0;
    let error: unknown = null;
    try {
      received = (await withTimeout(readToEnd(reset), "reset close")).length;
    } catch (e) {
      error = e;
    }
    reset.close();
    assert.ok(
      error instanceof Deno.errors.ConnectionReset || received < 8 * 1024 * 1024,
      `a reset close must not deliver all 8 MiB (got ${received} bytes, error ${error})`,
    );
  });

  Deno.test(`${name}: send to a closed session returns false with sessionNotExist`, async () => {
    await using server = await startFixture(mode);
    const gone = await connect(server.port);
    await gone.write(encoder.encode("hi"));
    await readBytes(gone, 2);
    gone.close();
    const closed = await server.waitFor((e) => e.event === "close", "close of the first session");
    await using conn = await connect(server.port);
    const result = await command(conn, `!send ${closed.sessionId}\n`);
    assert.deepEqual(result, { ok: false, lastError: 1005 });
    assert.deepEqual(await command(conn, `!exists ${closed.sessionId}`), { exists: false });
    const own = await server.waitFor(
      (e) => e.event === "connect" && e.sessionId !== closed.sessionId,
      "second connect",
    );
    assert.deepEqual(await command(conn, `!exists ${own.sessionId}`), { exists: true });
  });

  Deno.test(`${name}: a throwing callback is logged with its session and the server carries on`, async () => {
    await using server = await startFixture(mode);
    await using conn = await connect(server.port);
    await conn.write(encoder.encode("!throw\n"));
    await server.waitForStderr(/deliberate failure/);
    await conn.write(encoder.encode("!reject\n"));
    await server.waitForStderr(/deliberate rejection/);
    const stats = await command(conn, "!stats");
    assert.equal(stats.callbackErrorCount, 2);
    await conn.write(encoder.encode("after"));
    assert.equal(new TextDecoder().decode(await readBytes(conn, 5)), "after");
    assert.match(server.stderr(), /"receive" callback threw for session 1.*deliberate failure/s);
    assert.match(server.stderr(), /deliberate rejection/);
  });

  Deno.test(`${name}: a callback that throws on every message is logged in full once, then counted once a second`, async () => {
    await using server = await startFixture(mode, { extra: { echoThenThrow: true } });
    await using conn = await connect(server.port);
    const one = new Uint8Array([7]);
    let rounds = 0;
    const end = performance.now() + 2500;
    while (performance.now() < end && rounds < 100_000) {
      await conn.write(one);
      await readBytes(conn, 1);
      rounds++;
    }
    // Every error is counted: the one logged in full and the repeats the summaries add up.
    const summaries = () =>
      [...server.stderr().matchAll(/thrown after every echo: (\d+) more in the last second/g)]
        .reduce((sum, m) => sum + Number(m[1]), 0);
    await until("the summaries to count every repeat", () => summaries() === rounds - 1);
    const full = server.stderr().match(/callback threw for session 1; the server carries on/g);
    assert.equal(full?.length, 1, "one error in full");
    assert.ok(
      server.stderr().length < 16 * 1024,
      `${server.stderr().length} bytes of log for ${rounds} errors`,
    );
    assert.ok(rounds > 200, `only ${rounds} round trips in 2.5 s`);
  });

  Deno.test(`${name}: getClientInfo reports the peer's address and the session's counters`, async () => {
    await using server = await startFixture(mode);
    await using conn = await connect(server.port);
    await conn.write(encoder.encode("12345"));
    await readBytes(conn, 5);
    const info = await command(conn, "!info");
    const local = conn.localAddr as Deno.NetAddr;
    assert.equal(info.remoteIp, "127.0.0.1");
    assert.equal(info.remotePort, local.port);
    assert.equal(info.serverPort, server.port);
    assert.equal(info.socketType, "tcp");
    assert.equal(info.reactorId, 0);
    assert.ok((info.connectTime as number) > 1_700_000_000);
    assert.ok((info.lastRecvTime as number) >= (info.connectTime as number));
  });

  Deno.test(`${name}: getClientList pages through the open sessions in id order`, async () => {
    await using server = await startFixture(mode);
    const conns = await Promise.all(Array.from({ length: 5 }, () => connect(server.port)));
    try {
      const ids: number[] = [];
      for (const c of conns) ids.push((await command(c, "!info")).sessionId as number);
      const sorted = [...ids].sort((a, b) => a - b);
      assert.deepEqual((await command(conns[0], "!list 0 3")).ids, sorted.slice(0, 3));
      assert.deepEqual((await command(conns[0], `!list ${sorted[2]} 3`)).ids, sorted.slice(3));
      assert.deepEqual((await command(conns[0], `!list ${sorted[4]} 3`)).ids, []);
    } finally {
      for (const c of conns) c.close();
    }
  });

  Deno.test(`${name}: SIGTERM shuts down gracefully: workerStop, shutdown, exit code 0`, async () => {
    await using server = await startFixture(mode);
    await using conn = await connect(server.port);
    await conn.write(encoder.encode("ping"));
    await readBytes(conn, 4);
    server.child.kill("SIGTERM");
    const status = await server.exited();
    assert.equal(status.code, 0, server.stderr());
    const names = server.events.map((e) => e.event);
    const order = ["start", "beforeShutdown", "workerStop", "shutdown", "exit"].map((n) =>
      names.indexOf(n)
    );
    assert.ok(
      order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1])),
      `event order: ${names}`,
    );
    assert.ok(names.includes("close"), "open sessions are closed (and reported) on shutdown");
    assert.equal(await conn.read(new Uint8Array(1)), null, "the client sees EOF");
  });

  Deno.test(`${name}: shutdown() from a callback resolves start()`, async () => {
    await using server = await startFixture(mode);
    const conn = await connect(server.port);
    await conn.write(encoder.encode("!shutdown\n"));
    const status = await server.exited();
    conn.close();
    assert.equal(status.code, 0);
    assert.equal(server.events.at(-1)?.event, "exit");
  });
}
