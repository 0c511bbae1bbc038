/**
 * Data integrity and limits: kept payloads, a slow reader, session ids, maxConnection, IPv6,
 * SO_REUSEPORT. Real fixture processes and sockets, in both reactor drive modes.
 */
import assert from "node:assert/strict";
import { Server } from "../mod.ts";
import {
  command,
  connect,
  reactorModes,
  readBytes,
  readLine,
  startFixture,
  treeModes,
  withTimeout,
  writeAll,
} from "./_helpers.ts";
import type { Fixture } from "./_helpers.ts";

const encoder = new TextEncoder();

for (const [name, mode] of reactorModes) {
  Deno.test(`${name}: received data stays valid after the callback returns`, async () => {
    // 4 MiB through a 256 KiB ring: the ring wraps many times under the kept payloads. With
    // borrowedViews the same check finds views overwritten, so it does see reuse.
    for (const borrowedViews of [false, true]) {
      const server = new Server({
        host: "127.0.0.1",
        port: 0,
        ringSize: 256 * 1024,
        borrowedViews,
        ...mode,
      });
      const kept: Uint8Array[] = [];
      const copies: Uint8Array[] = [];
      server.on("receive", (s, sessionId, _reactorId, data) => {
        kept.push(data);
        copies.push(data.slice());
        s.send(sessionId, data);
      });
      const done = server.start();
      const conn = await connect(server.port);
      const payload = new Uint8Array(4 * 1024 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 13 + (i >> 9)) & 0xff;
      const reading = withTimeout(readBytes(conn, payload.length), "the echo");
      await writeAll(conn, payload);
      assert.deepEqual(await reading, payload);
      conn.close();
      server.shutdown();
      await done;
      const changed = kept.filter((k, i) => k.some((b, j) => b !== copies[i][j])).length;
      if (borrowedViews) assert.ok(changed > 0, "borrowed views are reused (the check sees reuse)");
      else assert.equal(changed, 0, `${changed} of ${kept.length} kept payloads changed`);
    }
  });

  Deno.test(`${name}: a slow reader makes send() refuse past socketBufferSize (1009); all it took arrives`, async () => {
    await using server = await startFixture({ ...mode, socketBufferSize: 1024 * 1024 });
    await using conn = await connect(server.port);
    await conn.write(encoder.encode("!flood 268435456\n"));
    const flood = await server.waitFor((e) => e.event === "flood", "the flood to stop");
    const accepted = flood.accepted as number;
    assert.equal(flood.lastError, 1009);
    // The bound holds with the sends still in the ring counted: the limit plus one send.
    assert.ok(
      accepted >= 1024 * 1024 && accepted <= 1024 * 1024 + 64 * 1024,
      `accepted ${accepted} bytes`,
    );
    const data = await withTimeout(readBytes(conn, accepted), "the flooded bytes");
    assert.equal(data.length, accepted);
    for (let i = 0; i < data.length; i++) {
      if (data[i] !== i % 253) assert.fail(`byte ${i} is ${data[i]}, expected ${i % 253}`);
    }
    await conn.write(encoder.encode("ping"));
    assert.equal(new TextDecoder().decode(await readBytes(conn, 4)), "ping");
  });

  Deno.test(`${name}: startSessionId 1000: the first session is 1001, the next 1002`, async () => {
    await using server = await startFixture({ ...mode, startSessionId: 1000 });
    for (const expected of [1001, 1002]) {
      await using conn = await connect(server.port);
      assert.equal((await command(conn, "!info")).sessionId, expected);
    }
  });

  Deno.test(`${name}: session ids grow and are never reused while fds are`, async () => {
    await using server = await startFixture(mode);
    for (let i = 0; i < 50; i++) {
      const conn = await connect(server.port);
      await conn.write(encoder.encode("x"));
      await readBytes(conn, 1);
      conn.close();
      await server.waitFor(
        (e) => e.event === "close" && e.sessionId === i + 1,
        `close of session ${i + 1}`,
      );
    }
    const ids = server.events.filter((e) => e.event === "connect").map((e) =>
      e.sessionId as number
    );
    assert.deepEqual(ids, Array.from({ length: 50 }, (_, i) => i + 1));
  });

  Deno.test(`${name}: maxConnection refuses the connection beyond it, logs and counts it`, async () => {
    await using server = await startFixture({ ...mode, maxConnection: 2 });
    await using a = await connect(server.port);
    await using b = await connect(server.port);
    await server.waitFor((e) => e.event === "connect" && e.sessionId === 2, "two connects");
    const refused = await connect(server.port);
    assert.equal(
      await withTimeout(
        refused.read(new Uint8Array(1)).catch(() => null),
        "the refused connection to close",
      ),
      null,
    );
    refused.close();
    await server.waitForStderr(/connection refused: max_connection \(2\)/);
    const stats = await command(a, "!stats");
    assert.equal(stats.refusedCount, 1);
    assert.equal(stats.connectionNum, 2);
    await b.write(encoder.encode("ok"));
    assert.equal(new TextDecoder().decode(await readBytes(b, 2)), "ok");
  });

  Deno.test(`${name}: IPv6 listen, echo and client info`, async () => {
    await using server = await startFixture({ ...mode, host: "::1" });
    await using conn = await Deno.connect({ hostname: "::1", port: server.port });
    await conn.write(encoder.encode("v6"));
    assert.equal(new TextDecoder().decode(await readBytes(conn, 2)), "v6");
    const info = await command(conn, "!info");
    assert.equal(info.remoteIp, "::1");
    assert.equal(info.socketType, "tcp6");
    assert.equal(info.remotePort, (conn.localAddr as Deno.NetAddr).port);
  });
}

for (const inlineReactor of [true, false]) {
  Deno.test(`sends larger than half the smallest ring are split to fit, and shutdown still completes (inlineReactor: ${inlineReactor})`, async () => {
    const server = new Server({ host: "127.0.0.1", port: 0, ringSize: 256 * 1024, inlineReactor });
    const payload = new Uint8Array(300_000);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 241;
    server.on("connect", (s, sessionId) => {
      s.send(sessionId, payload);
      s.close(sessionId);
    });
    server.on("receive", () => {});
    const done = server.start();
    const conn = await connect(server.port);
    const got = await withTimeout(readBytes(conn, payload.length + 1), "the 300 KB send");
    conn.close();
    assert.deepEqual(got, payload);
    server.shutdown();
    await withTimeout(done, "shutdown after a large send");
  });

  Deno.test(`sessions closed and replaced in one turn never overflow the reactor's lists (inlineReactor: ${inlineReactor})`, async () => {
    // maxConnection 1: each client is reset by the server as soon as it speaks, and the next
    // one takes the same slot, often while the first is still listed as readable.
    const server = new Server({ host: "127.0.0.1", port: 0, maxConnection: 1, inlineReactor });
    server.on("receive", (s, sessionId) => {
      s.close(sessionId, true);
    });
    const done = server.start();
    for (let i = 0; i < 40; i++) {
      const conn = await connect(server.port);
      await conn.write(new Uint8Array(32 * 1024)).catch(() => 0);
      await withTimeout(conn.read(new Uint8Array(16)).catch(() => null), "the reset");
      conn.close();
    }
    const stats = server.stats();
    server.shutdown();
    await withTimeout(done, "shutdown");
    assert.equal(stats.acceptCount + stats.refusedCount, 40);
  });
}

Deno.test("out of fds, accept pauses instead of spinning, and resumes when fds free up", async () => {
  await using server = await startFixture({}, { fdLimit: 40 });
  const clients: Deno.Conn[] = [];
  for (let i = 0; i < 60; i++) clients.push(await connect(server.port));
  await server.waitForStderr(/accept paused for 1000 ms: MFILE/);
  for (const c of clients.splice(0)) c.close();
  await using late = await connect(server.port);
  await late.write(encoder.encode("back"));
  assert.equal(
    new TextDecoder().decode(await withTimeout(readBytes(late, 4), "service after the pause")),
    "back",
  );
  const pauses = server.stderr().match(/accept paused/g)?.length ?? 0;
  assert.ok(pauses <= 10, `accept paused ${pauses} times: it must not spin`);
});

Deno.test("enableReusePort lets two servers listen on one port; without it the second gets AddrInUse", async () => {
  const first = new Server({ host: "127.0.0.1", port: 0, enableReusePort: true });
  first.on("receive", () => {});
  const firstDone = first.start();
  const second = new Server({ host: "127.0.0.1", port: first.port, enableReusePort: true });
  second.on("receive", () => {});
  const secondDone = second.start();
  assert.equal(second.port, first.port);
  const third = new Server({ host: "127.0.0.1", port: first.port });
  third.on("receive", () => {});
  await assert.rejects(third.start(), Deno.errors.AddrInUse);
  first.shutdown();
  second.shutdown();
  await Promise.all([firstDone, secondDone]);
});

for (const inlineReactor of [true, false]) {
  Deno.test(`an async callback that sends later, from a timer, is delivered while the server idles (inlineReactor: ${inlineReactor})`, async () => {
    const server = new Server({ host: "127.0.0.1", port: 0, inlineReactor });
    server.on("receive", async (s, sessionId, _reactorId, data) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      s.send(sessionId, data);
      await new Promise((resolve) => setTimeout(resolve, 50));
      s.close(sessionId);
    });
    const done = server.start();
    const conn = await connect(server.port);
    await conn.write(encoder.encode("later"));
    const got = await withTimeout(readBytes(conn, 6), "the delayed reply and close");
    conn.close();
    assert.equal(new TextDecoder().decode(got), "later", "the reply, then EOF");
    server.shutdown();
    await withTimeout(done, "shutdown");
  });
}

Deno.test("10,000 connections held open at once, each still served", async () => {
  await using server = await startFixture({ maxConnection: 10_100 }, { fdLimit: 20_000 });
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 10_000; i++) conns.push(await connect(server.port));
    const probe = await connect(server.port);
    const stats = await withTimeout(command(probe, "!stats"), "stats");
    assert.equal(stats.connectionNum, 10_001);
    assert.equal(stats.refusedCount, 0);
    probe.close();
    // The first and the last still echo.
    for (const conn of [conns[0], conns[9_999]]) {
      await conn.write(new TextEncoder().encode("ping"));
      assert.equal(new TextDecoder().decode(await readBytes(conn, 4)), "ping");
    }
  } finally {
    for (const c of conns) c.close();
  }
});

Deno.test("socket options: keepalive on accepted sockets; defer accept until data comes", async () => {
  await using server = await startFixture({
    openTcpKeepalive: true,
    tcpKeepidle: 60,
    tcpKeepinterval: 5,
    tcpKeepcount: 3,
    tcpUserTimeout: 10_000,
    tcpDeferAccept: 5,
    kernelSocketSendBufferSize: 32 * 1024,
  });
  const conn = await connect(server.port);
  // Deferred: the kernel holds the connection back until data comes (up to 5 s).
  const early = new Promise((r) => setTimeout(r, 300)); // the absence of an event, on purpose
  await early;
  assert.equal(server.events.filter((e) => e.event === "connect").length, 0);
  await conn.write(new TextEncoder().encode("ping"));
  assert.equal(new TextDecoder().decode(await readBytes(conn, 4)), "ping");
  await server.waitFor((e) => e.event === "connect", "the connect once data came");
  // The server's end of the connection runs a keepalive timer: in /proc/net/tcp, its line
  // (local port = the server's, state 01 established) shows timer 2 (keepalive).
  const port = server.port.toString(16).toUpperCase().padStart(4, "0");
  const lines = Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1);
  const mine = lines.map((l) => l.trim().split(/\s+/)).filter((f) =>
    f[1]?.endsWith(`:${port}`) && f[3] === "01"
  );
  assert.equal(mine.length, 1, "the server's end of the connection");
  assert.equal(mine[0][5].split(":")[0], "02", `timer field ${mine[0][5]}`);
  conn.close();
});

const hasSs = ["/usr/bin/ss", "/bin/ss"].some((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

Deno.test({
  name:
    "socket options: kernelSocketRecvBufferSize/SendBufferSize size the accepted socket's buffers, a port's its own",
  ignore: !hasSs, // (iproute2's ss reads the server's socket memory)
  fn: async () => {
    const recv = 96 * 1024;
    const send = 160 * 1024;
    await using server = await startFixture({
      kernelSocketRecvBufferSize: recv,
      kernelSocketSendBufferSize: send,
    }, { extra: { secondPort: { kernelSocketRecvBufferSize: 2 * recv } } });
    const secondPort = server.events.find((e) => e.event === "start")!.secondPort as number;
    /** The server's end of a connection to `port`: Linux doubles what SO_RCVBUF/SO_SNDBUF ask. */
    const buffers = async (port: number) => {
      const { stdout } = await new Deno.Command("ss", {
        args: ["-tmnH", "state", "established", "sport", "=", `:${port}`],
      }).output();
      const text = new TextDecoder().decode(stdout);
      const skmem = /skmem:\(([^)]*)\)/.exec(text)?.[1] ?? "";
      const field = (name: string) => Number(new RegExp(`\\b${name}(\\d+)`).exec(skmem)?.[1]);
      return { rb: field("rb"), tb: field("tb"), text };
    };
    const conn = await connect(server.port);
    await conn.write(new TextEncoder().encode("ping"));
    assert.equal(new TextDecoder().decode(await readBytes(conn, 4)), "ping");
    const main = await buffers(server.port);
    assert.equal(main.rb, 2 * recv, `receive buffer in ${main.text}`);
    assert.equal(main.tb, 2 * send, `send buffer in ${main.text}`);
    // The port set its own receive buffer and takes the server's send buffer.
    const other = await connect(secondPort);
    await other.write(new Uint8Array([0, 0, 0, 0]));
    assert.equal(await readLine(other), "p2 4 1");
    const port = await buffers(secondPort);
    assert.equal(port.rb, 4 * recv, `receive buffer in ${port.text}`);
    assert.equal(port.tb, 2 * send, `send buffer in ${port.text}`);
    conn.close();
    other.close();
  },
});

for (const [name, options] of treeModes) {
  Deno.test(`unix stream socket (${name}): echo, client info, and the file goes with the server`, async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/z.sock`;
    try {
      const server = await startFixture({ ...options, sockType: "unix", host: path });
      const conn = await Deno.connect({ transport: "unix", path });
      await conn.write(new TextEncoder().encode("hello"));
      assert.equal(new TextDecoder().decode(await readBytes(conn, 5)), "hello");
      const info = await command(conn, "!info");
      assert.equal(info.socketType, "unix");
      assert.equal(info.remoteIp, "");
      conn.close();
      await stopRemovesSocketFile(server, path);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** SIGTERM: the server exits cleanly and takes its Unix socket's file with it. */
async function stopRemovesSocketFile(server: Fixture, path: string) {
  server.child.kill("SIGTERM");
  assert.equal((await server.exited()).code, 0);
  await server[Symbol.asyncDispose]();
  assert.throws(() => Deno.lstatSync(path), "the socket file is removed");
}

for (
  const [name, options] of [
    ["one worker", {}],
    ["PROCESS mode", { mode: "process", workerNum: 2, reactorNum: 1 }],
  ] as const
) {
  Deno.test(`unix datagram socket (${name}): packet gets each datagram with its sender's path; sendto answers it`, async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/server.sock`;
    const clientPath = `${dir}/client.sock`;
    try {
      const server = await startFixture({ ...options, sockType: "unixDgram", host: path });
      const client = Deno.listenDatagram({ transport: "unixpacket", path: clientPath });
      try {
        for (const text of ["ping", "y".repeat(150_000)]) {
          await client.send(new TextEncoder().encode(text), { transport: "unixpacket", path });
          const [echoed, from] = await withTimeout(
            client.receive(new Uint8Array(256 * 1024)),
            "the datagram back",
          );
          assert.equal(echoed.length, text.length);
          assert.ok(new TextDecoder().decode(echoed) === text, "the same bytes");
          assert.equal((from as Deno.UnixAddr).path, path, "it came from the server's socket");
          const seen = await server.waitFor(
            (e) => e.event === "packet" && e.size === text.length,
            "the packet event",
          );
          assert.equal(seen.address, clientPath);
          assert.equal(seen.port, 0);
        }
      } finally {
        client.close();
      }
      await stopRemovesSocketFile(server, path);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`udp (${name}): packet gets each datagram with its sender; sendto answers it, over IPv4 and IPv6`, async () => {
    for (const [host, type] of [["127.0.0.1", "udp4"], ["::1", "udp6"]] as const) {
      await udpRoundTrip(options, host, type);
    }
  });
}

async function udpRoundTrip(
  options: Record<string, unknown>,
  host: string,
  type: "udp4" | "udp6",
) {
  await using server = await startFixture({ ...options, sockType: "udp", host });
  const { default: dgram } = await import("node:dgram");
  const socket = dgram.createSocket(type);
  await new Promise<void>((resolve) => socket.bind(0, host, () => resolve()));
  const local = socket.address().port;
  try {
    for (const text of ["ping", "x".repeat(8000)]) {
      const answer = new Promise<Uint8Array>((resolve) =>
        socket.once("message", (message: Uint8Array) => resolve(message))
      );
      socket.send(new TextEncoder().encode(text), server.port, host);
      const echoed = await withTimeout(answer, "the datagram back");
      assert.equal(new TextDecoder().decode(echoed), text);
      const seen = await server.waitFor(
        (e) => e.event === "packet" && e.size === text.length,
        "the packet event",
      );
      assert.equal(seen.address, host);
      assert.equal(seen.port, local);
    }
  } finally {
    socket.close();
  }
}

for (
  const [name, options] of [
    ["one worker", {}],
    ["a tree", { workerNum: 2 }],
    ["PROCESS mode", { mode: "process", workerNum: 2, reactorNum: 1 }],
  ] as const
) {
  Deno.test(`unix socket (${name}): a path another server listens on is in use; that server keeps its file and its clients`, async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/taken.sock`;
    try {
      using other = Deno.listen({ transport: "unix", path });
      const fixture = new URL("./fixtures/server.ts", import.meta.url).pathname;
      const second = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", fixture, JSON.stringify({ ...options, sockType: "unix", host: path })],
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.notEqual(second.code, 0, "the second server does not start");
      assert.match(new TextDecoder().decode(second.stderr), /AddrInUse|address already in use/);
      assert.ok(Deno.lstatSync(path).isSocket, "the first server's socket file stays");
      // The second server's probe that found the socket live was one empty connection to it.
      const probe = await other.accept();
      assert.equal((await readBytes(probe, 1)).length, 0, "the probe sent nothing");
      probe.close();
      const client = await Deno.connect({ transport: "unix", path });
      const accepted = await other.accept();
      await client.write(encoder.encode("still mine"));
      assert.equal(new TextDecoder().decode(await readBytes(accepted, 10)), "still mine");
      client.close();
      accepted.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
