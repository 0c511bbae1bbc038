/**
 * Options, the start check, bind errors and a clean shutdown, in this process.
 */
import assert from "node:assert/strict";
import { Server } from "../mod.ts";
import { connect, readBytes, withTimeout } from "./_helpers.ts";

Deno.test("invalid options throw TypeError or RangeError naming the option", () => {
  const cases: [Record<string, unknown>, typeof TypeError | typeof RangeError, RegExp][] = [
    [{ port: 70000 }, RangeError, /"port"/],
    [{ port: "80" }, TypeError, /"port"/],
    [{ mode: "thread" }, RangeError, /"mode"/],
    [{ workerNum: 0 }, RangeError, /"workerNum"/],
    [{ backlog: 1.5 }, TypeError, /"backlog"/],
    [{ openTcpNodelay: "yes" }, TypeError, /"openTcpNodelay"/],
    [{ maxConnection: 0 }, RangeError, /"maxConnection"/],
    [{ ringSize: 300_000 }, RangeError, /"ringSize"/],
    [{ maxWaitTime: -1 }, RangeError, /"maxWaitTime"/],
    [{ maxWaitTime: 0 }, RangeError, /"maxWaitTime" must be a number of seconds above 0/],
    [
      { dispatchMode: 0 },
      RangeError,
      /"dispatchMode" must be 1 \(round-robin\).* or 5 \(uid\), got 0/,
    ],
    [{ dispatchMode: 7 }, RangeError, /"dispatchMode" 7 is not supported/],
    [{ workerNum: 1024 }, RangeError, /"workerNum" must be from 1 to \d+ \(16 per CPU/],
    [{ taskWorkerNum: 1024 }, RangeError, /"taskWorkerNum" must be from 0 to \d+/],
    [{ logLevel: "loud" }, RangeError, /"logLevel"/],
    [{ host: "" }, TypeError, /"host"/],
    [{ workerNumber: 2 }, TypeError, /Unknown option "workerNumber"/],
    [{ packageLengthFunc: 4 }, TypeError, /"packageLengthFunc" must be a function/],
    [{ bufferHighWatermark: 10, bufferLowWatermark: 20 }, RangeError, /"bufferLowWatermark"/],
    [
      { openEofSplit: true, packageEof: "\n", packageLengthFunc: () => 0 },
      TypeError,
      /exclude each other/,
    ],
  ];
  for (const [options, type, message] of cases) {
    assert.throws(
      () => new Server(options as never),
      (e: Error) => e instanceof type && message.test(e.message),
      Deno.inspect(options),
    );
  }
});

Deno.test("maxRequestGrace: by default half of maxRequest above 10 requests, none at 10 or below (Swoole's rule)", () => {
  assert.equal(new Server({ maxRequest: 10 }).options.maxRequestGrace, 0);
  assert.equal(new Server({ maxRequest: 11 }).options.maxRequestGrace, 5);
  assert.equal(new Server({ maxRequest: 1000 }).options.maxRequestGrace, 500);
  assert.equal(new Server({ maxRequest: 10, maxRequestGrace: 3 }).options.maxRequestGrace, 3);
});

Deno.test("heartbeat settings: an idle time alone checks every half of it (Swoole's rule); a port's own settings merge over the server's", () => {
  const server = new Server({
    heartbeatIdleTime: 4,
    bufferHighWatermark: 1000,
    bufferLowWatermark: 800,
  });
  assert.equal(server.options.heartbeatCheckInterval, 2);
  const port = server.listen("127.0.0.1", 0).set({ bufferHighWatermark: 500 });
  port.set({ heartbeatIdleTime: 9 });
  const own = port.optionsOver(server.options)!;
  assert.equal(own.heartbeatIdleTime, 9);
  assert.equal(own.bufferHighWatermark, 500);
  assert.equal(own.bufferLowWatermark, 0, "not the server's 800, above the port's high mark");
  assert.equal(own.packageMaxLength, server.options.packageMaxLength, "the rest is the server's");
  assert.throws(() => port.set({ maxConnection: 5 } as never), /not a port's own/);
});

Deno.test("on() rejects unknown events and non-functions", () => {
  const server = new Server();
  assert.throws(
    () => (server.on as (e: string, cb: () => void) => void)("recieve", () => {}),
    /Unknown event "recieve"/,
  );
  assert.throws(() => server.on("receive", 42 as never), /must be a function/);
});

Deno.test("start() rejects without a receive callback, naming it", async () => {
  const server = new Server({ host: "127.0.0.1", port: 0 });
  await assert.rejects(server.start(), /needs a "receive" callback/);
});

Deno.test("start() rejects a port whose socket type lacks its callback (TCP and UDP mixed), naming it", async () => {
  // A TCP server with a UDP port: the port needs "packet", its own or the server's.
  const tcp = new Server({ host: "127.0.0.1", port: 0 });
  tcp.on("receive", () => {});
  tcp.listen("127.0.0.1", 0, "udp");
  await assert.rejects(
    tcp.start(),
    (e: Error) =>
      e instanceof TypeError &&
      /the port 127\.0\.0\.1:0 is a datagram socket \(udp\) and needs a "packet" callback/.test(
        e.message,
      ),
  );
  // A UDP server with a TCP port: the port needs "receive".
  const udp = new Server({ host: "127.0.0.1", port: 0, sockType: "udp" });
  udp.on("packet", () => {});
  udp.listen("127.0.0.1", 0, "tcp");
  await assert.rejects(udp.start(), /is a stream socket \(tcp\) and needs a "receive" callback/);
  // The port's own callback is enough.
  const mixed = new Server({ host: "127.0.0.1", port: 0 });
  mixed.on("receive", () => {});
  mixed.listen("127.0.0.1", 0, "udp").on("packet", () => {});
  mixed.on("start", (s) => s.shutdown());
  await withTimeout(mixed.start(), "the mixed server to start and stop");
});

Deno.test("start() rejects with AddrInUse when the port is taken", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  const server = new Server({ host: "127.0.0.1", port });
  server.on("receive", () => {});
  await assert.rejects(
    server.start(),
    (e: Error) =>
      e instanceof Deno.errors.AddrInUse &&
      e.message === `Cannot listen on "127.0.0.1:${port}": address already in use`,
  );
});

Deno.test("start() rejects a second start and an unparsable host", async () => {
  const bad = new Server({ host: "not an address", port: 0 });
  bad.on("receive", () => {});
  await assert.rejects(bad.start(), TypeError);
  await assert.rejects(bad.start(), Deno.errors.BadResource);
});

function reactorThreads(): number {
  let n = 0;
  for (const entry of Deno.readDirSync("/proc/self/task")) {
    const comm = Deno.readTextFileSync(`/proc/self/task/${entry.name}/comm`);
    if (comm.startsWith("zg-reactor")) n++;
  }
  return n;
}

function openFds(): string[] {
  return [...Deno.readDirSync("/proc/self/fd")].map((e) => {
    try {
      return Deno.readLinkSync(`/proc/self/fd/${e.name}`);
    } catch {
      return "";
    }
  }).filter((l) => /socket|memfd|eventfd|eventpoll/.test(l)).sort();
}

for (const inlineReactor of [true, false]) {
  Deno.test(`shutdown() resolves start() and leaves no thread or fd behind (inlineReactor: ${inlineReactor})`, async () => {
    const fdsBefore = openFds();
    const server = new Server({ host: "127.0.0.1", port: 0, inlineReactor });
    const events: string[] = [];
    server.on("workerStart", () => events.push("workerStart"));
    server.on("workerStop", () => events.push("workerStop"));
    server.on("shutdown", () => events.push("shutdown"));
    server.on("receive", (s, id, _r, data) => {
      s.send(id, data);
    });
    const started = server.start();
    assert.equal(reactorThreads(), inlineReactor ? 0 : 1);
    const conn = await connect(server.port);
    await conn.write(new TextEncoder().encode("ping"));
    assert.equal(new TextDecoder().decode(await readBytes(conn, 4)), "ping");
    assert.ok(openFds().some((l) => l.includes("memfd:ziggurat")));
    server.shutdown();
    await withTimeout(started, "start() to resolve after shutdown()");
    assert.equal(await conn.read(new Uint8Array(1)), null);
    conn.close();
    assert.deepEqual(events, ["workerStart", "workerStop", "shutdown"]);
    assert.equal(reactorThreads(), 0);
    assert.deepEqual(openFds(), fdsBefore);
    assert.equal(server.send(1, "late"), false);
    assert.equal(server.stats().acceptCount, 1, "stats() still answers after shutdown");
  });
}

Deno.test("a borrowed view kept past shutdown reads zeros instead of crashing the process", async () => {
  const server = new Server({ host: "127.0.0.1", port: 0, borrowedViews: true });
  let kept: Uint8Array | undefined;
  server.on("receive", (s, id, _r, data) => {
    kept = data;
    s.send(id, data);
  });
  const started = server.start();
  const conn = await connect(server.port);
  await conn.write(new TextEncoder().encode("held"));
  await readBytes(conn, 4);
  conn.close();
  server.shutdown();
  await withTimeout(started, "shutdown");
  assert.equal(kept?.length, 4);
  assert.deepEqual([...kept!], [0, 0, 0, 0]);
});
