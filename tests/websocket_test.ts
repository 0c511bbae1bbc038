/**
 * WebSocket (RFC 6455) on the core: Deno's own `WebSocket` client in every tree mode, with the
 * core's handshake and with `handshake` callbacks; raw sockets for every refusal, close code,
 * fragmentation at every cut, interleaved control frames; push from a task worker and from
 * another BASE worker.
 */
import assert from "node:assert/strict";
import * as zlib from "node:zlib";
import { startFixture, treeModes, until, withTimeout, workersStarted } from "./_helpers.ts";
import type { Fixture } from "./_helpers.ts";
import { ResponseReader, writeAll } from "./_http.ts";
import { client, frame, rawClient, upgradeRequest } from "./_websocket.ts";

const script = new URL("./fixtures/ws_server.ts", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

for (const [mode, options] of treeModes) {
  for (const handshake of [undefined, "short"]) {
    Deno.test(`websocket (${mode}, ${handshake ?? "core"} handshake): Deno's WebSocket exchanges text, binary and fragmented messages and closes with its code`, async () => {
      await using server = await startFixture(options, {
        script,
        extra: handshake ? { handshake } : {},
      });
      await workersStarted(server, (options as { workerNum?: number }).workerNum ?? 1);
      const c = await client(server.port, "/greet?x=1", ["chat"]);
      assert.equal(c.ws.protocol, handshake ? "chat" : "");
      assert.equal(await c.next(), "hello");
      const open = await server.waitFor((e) => e.event === "open", "open");
      assert.equal(open.path, "/greet");
      assert.deepEqual(open.query, { x: "1" });
      c.ws.send("héllo wörld");
      assert.equal(await c.next(), "héllo wörld");
      c.ws.send(new Uint8Array([0, 1, 2, 255]));
      assert.deepEqual(await c.next(), new Uint8Array([0, 1, 2, 255]));
      const big = "x".repeat(200_000);
      c.ws.send(big);
      assert.equal(await c.next(), big);
      c.ws.send("frag:one,two,three");
      assert.equal(await c.next(), "onetwothree");
      c.ws.send("info");
      const info = JSON.parse(await c.next() as string);
      assert.equal(info.isEstablished, true);
      assert.equal(info.websocketStatus, 3);
      c.ws.close(4000, "bye");
      const closed = await withTimeout(c.closed, "close");
      assert.equal(closed.code, 4000);
      await server.waitFor((e) => e.event === "close" && e.fd === open.fd, "the close event");
      // Plain HTTP on the same port.
      const plain = await fetch(`http://127.0.0.1:${server.port}/plain`);
      assert.equal(await plain.text(), "plain HTTP on the same port");
    });
  }
}

Deno.test("websocket: a handshake written as Swoole's manual shows, and an async one, complete; a refusing one refuses", async () => {
  for (const handshake of ["swoole", "async"]) {
    await using server = await startFixture({}, { script, extra: { handshake } });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await writeAll(conn, upgradeRequest("Sec-WebSocket-Protocol: chat\r\n"));
    const response = await withTimeout(new ResponseReader(conn).next(), "101");
    assert.equal(response.status, 101);
    assert.equal(response.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    // Each header once (res.header replaces; the library adds only what is missing).
    assert.equal(response.headers.get("upgrade"), "websocket");
    assert.equal(response.headers.get("connection"), "Upgrade");
    assert.equal(response.headers.has("content-length"), false);
    if (handshake === "async") assert.equal(response.headers.get("x-handshake"), "async");
    conn.close();
    const c = await client(server.port, "/greet");
    assert.equal(await c.next(), "hello");
    c.ws.close();
    await c.closed;
  }
  await using server = await startFixture({}, { script, extra: { handshake: "refuse" } });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await writeAll(conn, upgradeRequest());
  const refused = await withTimeout(new ResponseReader(conn).next(), "403");
  assert.equal(refused.status, 403);
  assert.equal(refused.text, "not you");
  conn.close();
  await using denied = await startFixture({}, { script, extra: { handshake: "short" } });
  const ws = new WebSocket(`ws://127.0.0.1:${denied.port}/?deny=1`);
  const failed = await withTimeout(
    new Promise<string>((resolve) => {
      ws.onopen = () => resolve("open");
      ws.onerror = () => resolve("error");
    }),
    "refusal",
  );
  assert.equal(failed, "error");
});

Deno.test("websocket: bad upgrades get 426 or 400 from the core", async () => {
  await using server = await startFixture({}, { script, extra: { request: false } });
  const ask = async (text: string) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await writeAll(conn, text);
    const response = await withTimeout(new ResponseReader(conn).next(), "an answer");
    conn.close();
    return response;
  };
  const noVersion = await ask(upgradeRequest().replace("Sec-WebSocket-Version: 13\r\n", ""));
  assert.equal(noVersion.status, 426);
  assert.equal(noVersion.headers.get("sec-websocket-version"), "13");
  assert.equal((await ask(upgradeRequest().replace("Version: 13", "Version: 8"))).status, 426);
  assert.equal(
    (await ask(upgradeRequest().replace("dGhlIHNhbXBsZSBub25jZQ==", "short"))).status,
    400,
  );
  assert.equal((await ask(upgradeRequest().replace("GET", "POST"))).status, 400);
  assert.equal((await ask(upgradeRequest().replace("HTTP/1.1", "HTTP/1.0"))).status, 400);
  // No `request` callback: a plain request is told to upgrade.
  const plain = await fetch(`http://127.0.0.1:${server.port}/`);
  assert.equal(plain.status, 426);
  await plain.body?.cancel();
  const stats = await statsOf(server);
  assert.ok(stats.protocolErrorCount >= 5);
});

async function statsOf(server: Fixture) {
  const c = await client(server.port);
  c.ws.send("stats");
  const stats = JSON.parse(await c.next() as string);
  c.ws.close();
  await c.closed;
  return stats;
}

Deno.test("websocket: frames the protocol forbids close with their code (1002, 1007, 1009)", async () => {
  await using server = await startFixture({ websocketMaxMessageSize: 1000 }, { script });
  const cases: [string, Uint8Array[], number][] = [
    ["an unmasked frame", [frame(1, "hi", true, false)], 1002],
    ["a reserved bit", [frame(1, "hi", true, true, 0x40)], 1002],
    ["a reserved opcode", [frame(3, "hi")], 1002],
    ["a fragmented ping", [frame(9, "p", false)], 1002],
    ["a ping over 125 bytes", [frame(9, "p".repeat(126))], 1002],
    ["a continuation with nothing begun", [frame(0, "x")], 1002],
    ["a new message inside a fragmented one", [frame(1, "a", false), frame(1, "b")], 1002],
    ["a 1-byte close", [frame(8, new Uint8Array([3]))], 1002],
    ["a close code no one may send", [frame(8, new Uint8Array([0x03, 0xed]))], 1002],
    ["a close reason that is not UTF-8", [frame(8, new Uint8Array([0x03, 0xe8, 0xff]))], 1007],
    ["text that is not UTF-8", [frame(1, new Uint8Array([0x68, 0xc3]))], 1007],
    [
      "bad UTF-8 split across fragments",
      [frame(1, new Uint8Array([0x68, 0xe2, 0x82]), false), frame(0, new Uint8Array([0x28]))],
      1007,
    ],
    ["a message over websocketMaxMessageSize", [frame(2, new Uint8Array(1001))], 1009],
    [
      "empty fragments and pings without end inside a message",
      [
        frame(1, "a", false),
        ...Array.from({ length: 400 }, (_, i) => i % 2 ? frame(9, "") : frame(0, "", false)),
      ],
      1009,
    ],
    [
      "fragments over websocketMaxMessageSize",
      [frame(2, new Uint8Array(600), false), frame(0, new Uint8Array(600))],
      1009,
    ],
  ];
  for (const [what, frames, code] of cases) {
    const raw = await rawClient(server.port);
    for (const f of frames) await writeAll(raw.conn, f);
    assert.equal(await raw.closeCode(), code, what);
    raw.conn.close();
  }
  // Other connections carry on, and the refusals are counted.
  const stats = await statsOf(server);
  assert.ok(stats.protocolErrorCount >= cases.length);
  assert.match(server.stderr(), /closing with 1002: an unmasked frame/);
});

Deno.test("websocket: a message cut at every byte and between fragments, pings among them, arrives whole; pings are answered; a Close is echoed", async () => {
  await using server = await startFixture({}, { script });
  const raw = await rawClient(server.port);
  const text = "fragmented ✓ message";
  const bytes = encoder.encode(text);
  // Three fragments with a ping between the first two, written one byte at a time.
  const wire = new Uint8Array([
    ...frame(1, bytes.subarray(0, 5), false),
    ...frame(9, "mid"),
    ...frame(0, bytes.subarray(5, 13), false),
    ...frame(0, bytes.subarray(13)),
  ]);
  for (let i = 0; i < wire.length; i++) await writeAll(raw.conn, wire.subarray(i, i + 1));
  const pong = await raw.read();
  assert.equal(pong?.opcode, 10);
  assert.equal(decoder.decode(pong!.payload), "mid");
  const echo = await raw.read();
  assert.equal(echo?.opcode, 1);
  assert.equal(decoder.decode(echo!.payload), text);
  // Every cut of one frame into two writes.
  const one = frame(1, "cut me anywhere");
  for (let cut = 1; cut < one.length; cut++) {
    await writeAll(raw.conn, one.subarray(0, cut));
    await writeAll(raw.conn, one.subarray(cut));
    assert.equal(decoder.decode((await raw.read())!.payload), "cut me anywhere", `cut at ${cut}`);
  }
  // A binary message over 64 KiB (64-bit length); its echo comes in two fragments, 64 KiB
  // and the rest.
  const large = new Uint8Array(70_000).map((_, i) => i % 251);
  await writeAll(raw.conn, frame(2, large));
  const head = await raw.read();
  assert.equal(head?.opcode, 2);
  assert.equal(head?.fin, false);
  const tail = await raw.read();
  assert.equal(tail?.opcode, 0);
  assert.equal(tail?.fin, true);
  assert.deepEqual(new Uint8Array([...head!.payload, ...tail!.payload]), large);
  // The server's own ping.
  await writeAll(raw.conn, frame(1, "ping:are you there"));
  const ping = await raw.read();
  assert.equal(ping?.opcode, 9);
  assert.equal(decoder.decode(ping!.payload), "are you there");
  await writeAll(raw.conn, frame(8, new Uint8Array([0x0f, 0xa0, 0x62])));
  assert.equal(await raw.closeCode(), 4000);
  raw.conn.close();
});

Deno.test("websocket: disconnect() sends its code and reason", async () => {
  await using server = await startFixture({}, { script });
  const c = await client(server.port);
  c.ws.send("close:4001:going now");
  const closed = await withTimeout(c.closed, "close");
  assert.equal(closed.code, 4001);
  assert.equal(closed.reason, "going now");
});

for (
  const [mode, options] of [
    ["two BASE workers", { workerNum: 2, taskWorkerNum: 1 }],
    ["PROCESS mode", { mode: "process", workerNum: 2, reactorNum: 1, taskWorkerNum: 1 }],
  ] as const
) {
  Deno.test(`websocket (${mode}): push reaches a connection from a task worker and from another worker`, async () => {
    await using server = await startFixture(options, { script });
    await workersStarted(server, 2);
    const a = await client(server.port);
    const b = await client(server.port);
    a.ws.send("fd");
    const fdA = Number(await a.next());
    b.ws.send("fd");
    const fdB = Number(await b.next());
    // (In BASE mode sessions 1 and 2 live in different workers.)
    a.ws.send(`to:${fdB}:across`);
    assert.equal(await b.next(), "across");
    assert.equal(await a.next(), "true");
    b.ws.send("task:t1");
    assert.equal(await b.next(), "from task t1");
    a.ws.send(`to:${fdA + fdB + 1000}:nobody`);
    assert.equal(await a.next(), "false");
    a.ws.close();
    b.ws.close();
    await Promise.all([a.closed, b.closed]);
  });
}

Deno.test("websocket: a 16 MiB message, with the limits raised", async () => {
  const size = 16 * 1024 * 1024;
  await using server = await startFixture({
    websocketMaxMessageSize: size + 16,
    socketBufferSize: 2 * size,
  }, { script });
  const c = await client(server.port);
  const payload = new Uint8Array(size).map((_, i) => i % 253);
  c.ws.send(payload);
  const back = await c.next() as Uint8Array;
  assert.equal(back.length, size);
  assert.deepEqual(back, payload);
  c.ws.close();
  await c.closed;
});

Deno.test("websocket: pongs the core writes while a long push is on its way land between frames, never inside one", async () => {
  // A small ring: the push crosses it in many records, with reads of pings in between.
  await using server = await startFixture({ ringSize: 256 * 1024, socketBufferSize: 32 << 20 }, {
    script,
  });
  const raw = await rawClient(server.port);
  const size = 8 * 1024 * 1024;
  await writeAll(raw.conn, frame(1, `bigpush:${size}`));
  for (let i = 0; i < 64; i++) await writeAll(raw.conn, frame(9, `p${i}`));
  let message = new Uint8Array(0);
  let pongs = 0;
  let fin = false;
  while (!fin || pongs < 64) {
    const f = await raw.read();
    assert.ok(f, "EOF in the middle of the push");
    if (f.opcode === 10) {
      assert.equal(decoder.decode(f.payload), `p${pongs}`, "a pong, whole");
      pongs++;
      continue;
    }
    assert.ok(!fin, "nothing after the message but pongs");
    assert.equal(f.opcode, message.length === 0 ? 2 : 0, "binary, then continuations");
    const joined = new Uint8Array(message.length + f.payload.length);
    joined.set(message);
    joined.set(f.payload, message.length);
    message = joined;
    fin = f.fin;
  }
  assert.equal(message.length, size);
  for (let i = 0; i < size; i += 4099) assert.equal(message[i], i & 0xff, `byte ${i}`);
  raw.conn.close();
});

Deno.test("websocket: websocketPingInterval pings quiet connections; one that never answers is closed with 1001 after the idle time, one that pongs stays", async () => {
  await using server = await startFixture({ websocketPingInterval: 0.3 }, { script });
  // Deno's client answers pings.
  const answering = await client(server.port);
  const silent = await rawClient(server.port);
  const first = await silent.read();
  assert.equal(first?.opcode, 9, "a ping");
  assert.equal(first?.payload.length, 0);
  const started = Date.now();
  assert.equal(await silent.closeCode(), 1001);
  // Twice the interval (the default idle time), on the core's 250 ms timer pass.
  assert.ok(Date.now() - started >= 250, "not closed before its idle time");
  // Well past its own idle time by now: still open, as it answered every ping.
  answering.ws.send("fd");
  assert.match(await answering.next() as string, /^\d+$/);
  answering.ws.send("stats");
  const stats = JSON.parse(await answering.next() as string);
  assert.ok(stats.heartbeatCloseCount >= 1, "counted");
  answering.ws.close();
  await answering.closed;
});

Deno.test("websocket: a peer that pings and never reads gets no more pongs than its output buffer holds", async () => {
  await using server = await startFixture({
    socketBufferSize: 64 * 1024,
    kernelSocketSendBufferSize: 16 * 1024,
  }, { script });
  const raw = await rawClient(server.port);
  const ping = frame(9, "p".repeat(125));
  const burst = new Uint8Array(ping.length * 1000);
  for (let i = 0; i < 1000; i++) burst.set(ping, i * ping.length);
  // 4 MiB of pongs asked for; the client reads none of them.
  for (let i = 0; i < 32; i++) await writeAll(raw.conn, burst);
  const watcher = await client(server.port);
  let stats: Record<string, number> = {};
  await until("pongs dropped", async () => {
    watcher.ws.send("stats");
    stats = JSON.parse(await watcher.next() as string);
    return stats.sendDroppedCount > 0;
  });
  assert.ok(stats.sendQueuedBytes <= 64 * 1024 + 131, `queued ${stats.sendQueuedBytes}`);
  watcher.ws.close();
  await watcher.closed;
  raw.conn.close();
});

Deno.test("websocket: a listen() port with HTTP settings of its own speaks WebSocket as the server's socket does", async () => {
  await using server = await startFixture({}, { script, extra: { ownPort: true } });
  const start = await server.waitFor((e) => e.event === "start", "start");
  const c = await client(start.ownPort as number, "/greet");
  assert.equal(await c.next(), "hello");
  c.ws.send("echo me");
  assert.equal(await c.next(), "echo me");
  c.ws.close();
  await c.closed;
});

Deno.test("websocket: a port that speaks no HTTP starts on a WebSocket server and keeps its own framing", async () => {
  await using server = await startFixture({}, { script, extra: { eofPort: true } });
  const start = await server.waitFor((e) => e.event === "start", "start");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: start.eofPort as number });
  await writeAll(conn, encoder.encode("a line\n"));
  const buffer = new Uint8Array(64);
  const n = await withTimeout(conn.read(buffer), "the echoed line");
  assert.equal(decoder.decode(buffer.subarray(0, n!)), "a line\n");
  conn.close();
  const c = await client(server.port, "/greet");
  assert.equal(await c.next(), "hello");
  c.ws.close();
  await c.closed;
});

const offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
const deflateAnswer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
const flush = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
/** A message's payload as a permessage-deflate sender writes it (the flush's tail cut). */
const deflated = (bytes: Uint8Array) => {
  const out = zlib.deflateRawSync(bytes, flush);
  return new Uint8Array(out.subarray(0, out.length - 4));
};
const inflated = (bytes: Uint8Array) =>
  new Uint8Array(zlib.inflateRawSync(new Uint8Array([...bytes, 0, 0, 0xff, 0xff]), flush));

for (const handshake of [undefined, "short"]) {
  Deno.test(`websocket (${handshake ?? "core"} handshake): websocketCompression negotiates permessage-deflate and compresses both ways; bad compressed data closes with 1007, a bomb with 1009`, async () => {
    await using server = await startFixture({
      websocketCompression: true,
      websocketMaxMessageSize: 100_000,
    }, { script, extra: handshake ? { handshake } : {} });
    const raw = await rawClient(server.port, "/", offer);
    assert.match(raw.head, new RegExp(`\r\nsec-websocket-extensions: ${deflateAnswer}\r\n`, "i"));
    // A compressed text, echoed compressed.
    const text = "the same words again and again, ".repeat(20);
    await writeAll(raw.conn, frame(1, deflated(encoder.encode(text)), true, true, 0x40));
    const echo = await raw.read();
    assert.deepEqual([echo?.opcode, echo?.rsv1], [1, true]);
    assert.equal(decoder.decode(inflated(echo!.payload)), text);
    // An uncompressed short one, echoed as it is; a compressed binary one, in two fragments.
    await writeAll(raw.conn, frame(1, "short"));
    const short = await raw.read();
    assert.deepEqual([short?.rsv1, decoder.decode(short!.payload)], [false, "short"]);
    const bin = deflated(new Uint8Array(5000).map((_, i) => i % 7));
    await writeAll(raw.conn, frame(2, bin.subarray(0, 10), false, true, 0x40));
    await writeAll(raw.conn, frame(0, bin.subarray(10)));
    const binEcho = await raw.read();
    assert.deepEqual([binEcho?.opcode, binEcho?.rsv1], [2, true]);
    assert.deepEqual(inflated(binEcho!.payload), new Uint8Array(5000).map((_, i) => i % 7));
    // Compressed text that is not UTF-8.
    await writeAll(raw.conn, frame(1, deflated(new Uint8Array([0xc3, 0x28])), true, true, 0x40));
    assert.equal(await raw.closeCode(), 1007);
    raw.conn.close();

    // Data that does not inflate; what follows it in the same write is not handed on.
    const garbage = await rawClient(server.port, "/", offer);
    await writeAll(
      garbage.conn,
      new Uint8Array([
        ...frame(2, new Uint8Array([0xff, 0xff, 0xff, 0xff]), true, true, 0x40),
        ...frame(1, "after the bad one"),
      ]),
    );
    assert.equal(await garbage.closeCode(), 1007);
    garbage.conn.close();
    assert.equal(
      server.events.filter((e) => e.event === "message" && e.length === 17).length,
      0,
      "nothing after the refused message reached the callback",
    );
    const bomb = await rawClient(server.port, "/", offer);
    await writeAll(bomb.conn, frame(2, deflated(new Uint8Array(1_000_000)), true, true, 0x40));
    assert.equal(await bomb.closeCode(), 1009);
    bomb.conn.close();
    // RSV1 on a continuation frame.
    const cont = await rawClient(server.port, "/", offer);
    await writeAll(cont.conn, frame(1, "a", false));
    await writeAll(cont.conn, frame(0, "b", true, true, 0x40));
    assert.equal(await cont.closeCode(), 1002);
    cont.conn.close();
    await server.waitFor((e) => e.event === "message", "a message");
  });
}

Deno.test("websocket: without websocketCompression a permessage-deflate offer is not taken, and a compressed frame is refused (1002)", async () => {
  await using server = await startFixture({}, { script });
  const raw = await rawClient(server.port, "/", offer);
  assert.doesNotMatch(raw.head, /sec-websocket-extensions/i);
  await writeAll(raw.conn, frame(1, deflated(encoder.encode("x".repeat(100))), true, true, 0x40));
  assert.equal(await raw.closeCode(), 1002);
  raw.conn.close();
});

for (const [mode, options] of treeModes.slice(1)) {
  Deno.test(`websocket (${mode}): a push from another worker while the handshake is in a worker's hands goes out after the 101`, async () => {
    await using server = await startFixture(options, { script, extra: { handshake: "slow" } });
    await workersStarted(server, 2);
    const b = await client(server.port, "/?wait=0");
    const bOpen = await server.waitFor((e) => e.event === "handshake", "b's handshake");
    // a's handshake takes a while; b pushes to a meanwhile.
    const a = rawClient(server.port, "/?wait=500");
    const aHandshake = await server.waitFor(
      (e) => e.event === "handshake" && e.fd !== bOpen.fd,
      "a's handshake",
    );
    b.ws.send(`to:${aHandshake.fd}:early`);
    assert.equal(await b.next(), "true");
    const raw = await a; // (its bytes begin with the 101, or this throws)
    const early = await raw.read();
    assert.equal(decoder.decode(early!.payload), "early");
    raw.conn.close();
    b.ws.close();
    await b.closed;
  });
}

Deno.test("websocket: a binary message's buffer is its own: transferred away and pushed back whole, it holds that message and nothing else", async () => {
  await using server = await startFixture({}, { script, extra: { transfer: true } });
  const c = await client(server.port);
  for (const size of [1, 64, 4096, 4097, 70_000, 8]) {
    const payload = new Uint8Array(size).map((_, i) => (i * 7 + size) % 256);
    c.ws.send(payload);
    assert.deepEqual(await c.next(), payload, `a ${size}-byte message`);
  }
  c.ws.close();
  await c.closed;
});

Deno.test("websocket: with borrowedViews binary messages still echo whole (the view is used within the callback)", async () => {
  await using server = await startFixture({ borrowedViews: true }, { script });
  const c = await client(server.port);
  for (const size of [1, 1000, 300_000]) {
    const payload = new Uint8Array(size).map((_, i) => (i * 7) % 256);
    c.ws.send(payload);
    assert.deepEqual(await c.next(), payload);
  }
  c.ws.close();
  await c.closed;
});

Deno.test("websocket: a session slot a WebSocket had serves plain HTTP when its next connection gets it", async () => {
  // (Two slots: the connections after the WebSocket's get its slot again.)
  await using server = await startFixture({ maxConnection: 2 }, { script });
  const c = await client(server.port);
  c.ws.close();
  await c.closed;
  await server.waitFor((e) => e.event === "close", "the close event");
  for (let i = 0; i < 4; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await writeAll(conn, "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const response = await withTimeout(new ResponseReader(conn).next(), `plain request ${i}`);
    assert.equal(response.text, "plain HTTP on the same port");
    conn.close();
  }
});
