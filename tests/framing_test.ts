/**
 * Framing in the core: the protocols Swoole defines turn a byte stream into one `receive` per
 * message, whatever the pieces the stream arrives in; an oversize or malformed message closes
 * only its own connection.
 */
import assert from "node:assert/strict";
import { concatBytes } from "../src/bytes.ts";
import { TextLineStream } from "./_lines.ts";
import {
  command,
  connect,
  readBytes,
  readLine,
  startFixture,
  treeModes,
  withTimeout,
  writeAll,
} from "./_helpers.ts";

const encoder = new TextEncoder();

/** A seeded pseudo-random generator (xorshift32): the same pieces on every run. */
function random(seed: number) {
  let x = seed;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/** Writes `stream` in random pieces (1 to 700 bytes). */
async function writeInPieces(conn: Deno.Conn, stream: Uint8Array, next: (n: number) => number) {
  for (let at = 0; at < stream.length;) {
    const n = 1 + next(700);
    await writeAll(conn, stream.subarray(at, at + n));
    at += n;
  }
}

/** Reads `count` "<length> <byte>" report lines. */
async function reports(conn: Deno.Conn, count: number): Promise<[number, number][]> {
  const out: [number, number][] = [];
  let text = "";
  const buffer = new Uint8Array(65536);
  while (out.length < count) {
    const n = await withTimeout(conn.read(buffer), `report ${out.length + 1} of ${count}`);
    if (n === null) throw new Error(`connection closed after ${out.length} reports`);
    text += new TextDecoder().decode(buffer.subarray(0, n));
    let nl;
    while ((nl = text.indexOf("\n")) >= 0) {
      const [length, byte] = text.slice(0, nl).split(" ").map(Number);
      out.push([length, byte]);
      text = text.slice(nl + 1);
    }
  }
  return out;
}

const modes = [
  ["base", {}],
  ["process", { mode: "process", workerNum: 1, reactorNum: 1 }],
] as const;

for (const [name, mode] of modes) {
  Deno.test(`${name}: EOF split: 2,000 messages in random pieces arrive one per receive`, async () => {
    await using server = await startFixture(
      { ...mode, openEofSplit: true, packageEof: "\r\n" },
      { extra: { frameReport: true } },
    );
    const next = random(7);
    const messages = Array.from({ length: 2000 }, (_, i) => {
      const body = "x".repeat(next(300)) + i;
      return encoder.encode(body + "\r\n");
    });
    const conn = await connect(server.port);
    const [, got] = await Promise.all([
      writeInPieces(conn, concatBytes(messages), next),
      reports(conn, messages.length),
    ]);
    assert.deepEqual(got, messages.map((m) => [m.length, m[0]]));
    conn.close();
  });

  Deno.test(`${name}: EOF check: 2,000 messages in random pieces arrive in whole messages, each receive ending with the marker`, async () => {
    await using server = await startFixture(
      { ...mode, openEofCheck: true, packageEof: "\r\n" },
      { extra: { frameReport: "last" } },
    );
    const next = random(5);
    const messages = Array.from({ length: 2000 }, (_, i) => {
      return encoder.encode("z".repeat(next(300)) + i + "\r\n");
    });
    const stream = concatBytes(messages);
    // Where each message ends: a receive may hold several, but must end at one of these.
    const ends = new Set<number>();
    let at = 0;
    for (const m of messages) ends.add(at += m.length);
    const conn = await connect(server.port);
    const writing = writeInPieces(conn, stream, next);
    const lines = conn.readable.pipeThrough(new TextDecoderStream()).pipeThrough(
      new TextLineStream(),
    ).getReader();
    let received = 0;
    let receives = 0;
    while (received < stream.length) {
      const { value, done } = await withTimeout(lines.read(), `the report after ${received} bytes`);
      if (done) throw new Error(`connection closed after ${received} bytes`);
      const [length, last] = value.split(" ").map(Number);
      received += length;
      receives++;
      assert.equal(last, 10, "a receive ends with the marker");
      assert.ok(ends.has(received), `a receive ends at ${received}, not at a message's end`);
    }
    await writing;
    assert.equal(received, stream.length, "every byte, once");
    assert.ok(receives <= messages.length);
    await lines.cancel(); // (closes the connection)
  });

  Deno.test(`${name}: length-prefixed frames in random pieces, and one larger than a ring record, arrive whole`, async () => {
    await using server = await startFixture(
      {
        ...mode,
        openLengthCheck: true,
        packageLengthType: "N",
        packageBodyOffset: 4,
        packageMaxLength: 8 * 1024 * 1024,
        ringSize: 1024 * 1024,
      },
      { extra: { frameReport: true } },
    );
    const next = random(11);
    const frame = (body: Uint8Array) => {
      const out = new Uint8Array(4 + body.length);
      new DataView(out.buffer).setUint32(0, body.length);
      out.set(body, 4);
      return out;
    };
    const frames = Array.from(
      { length: 1000 },
      (_, i) => frame(new Uint8Array(next(500)).fill(i % 251)),
    );
    // 3 MiB: more than half the 1 MiB ring, so it travels in pieces and is put back together.
    frames.push(frame(new Uint8Array(3 * 1024 * 1024).fill(9)));
    const conn = await connect(server.port);
    const [, got] = await Promise.all([
      writeInPieces(conn, concatBytes(frames), next),
      reports(conn, frames.length),
    ]);
    assert.deepEqual(got, frames.map((f) => [f.length, f[0]]));
    conn.close();
  });

  Deno.test(`${name}: an oversize or negative length closes only its connection, logged and counted`, async () => {
    await using server = await startFixture(
      {
        ...mode,
        openLengthCheck: true,
        packageLengthType: "l",
        packageBodyOffset: 4,
        packageMaxLength: 1024,
      },
      { extra: { frameReport: true } },
    );
    const good = await connect(server.port);
    const header = (n: number) => {
      const out = new Uint8Array(4);
      new DataView(out.buffer).setInt32(0, n, true);
      return out;
    };
    for (const bad of [header(10 * 1024 * 1024), header(-5)]) {
      const conn = await connect(server.port);
      await conn.write(bad);
      const closed = await withTimeout(
        conn.read(new Uint8Array(16)).catch(() => null),
        "the close",
      );
      assert.equal(closed, null, "the server closed it");
      conn.close();
    }
    await server.waitForStderr(/longer than package_max_length/);
    await server.waitForStderr(/with a negative length/);
    // The other connection carries on.
    await good.write(concatBytes([header(3), encoder.encode("abc")]));
    assert.deepEqual(await reports(good, 1), [[7, 3]]);
    await good.write(concatBytes([header(6), encoder.encode("!stats")]));
    const stats = JSON.parse(await readLine(good));
    assert.equal(stats.protocolErrorCount, 2);
    good.close();
  });
}

/** A LEB128 varint length, then the body: the fixture's `lengthFunc` protocol. */
function varintFrame(body: Uint8Array): Uint8Array {
  const head: number[] = [];
  let n = body.length;
  do {
    head.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  return concatBytes([new Uint8Array(head), body]);
}

// PROCESS mode with round-robin dispatch over two workers: the bytes of a session still all go
// to one worker, where its messages are found.
const hookModes = [
  ["base", {}],
  ["process", { mode: "process", workerNum: 2, reactorNum: 1, dispatchMode: 1 }],
] as const;

for (const [name, mode] of hookModes) {
  Deno.test(`${name}: packageLengthFunc: 2,000 varint-framed messages in random pieces, and a 3 MiB one, arrive one per receive`, async () => {
    await using server = await startFixture(
      { ...mode, packageMaxLength: 8 * 1024 * 1024 },
      { extra: { frameReport: true, lengthFunc: true } },
    );
    const next = random(13);
    const frames = Array.from(
      { length: 2000 },
      (_, i) => varintFrame(new Uint8Array(1 + next(400)).fill(i % 251)),
    );
    frames.push(varintFrame(new Uint8Array(3 * 1024 * 1024).fill(7)));
    const conns = await Promise.all([connect(server.port), connect(server.port)]);
    const results = await Promise.all(conns.map(async (conn) => {
      const [, got] = await Promise.all([
        writeInPieces(conn, concatBytes(frames), next),
        reports(conn, frames.length),
      ]);
      return got;
    }));
    for (const got of results) assert.deepEqual(got, frames.map((f) => [f.length, f[0]]));
    for (const conn of conns) conn.close();
  });

  Deno.test(`${name}: packageLengthFunc: a malformed, oversize or throwing answer closes only its connection, logged and counted`, async () => {
    await using server = await startFixture(
      { ...mode, packageMaxLength: 1024 },
      { extra: { frameReport: true, lengthFunc: true } },
    );
    const good = await connect(server.port);
    // Half a message first: it waits in the worker while the others fail.
    const hello = varintFrame(encoder.encode("hello"));
    await writeAll(good, hello.subarray(0, 3));
    const bad = [
      new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x01]), // a five-byte varint: -1
      varintFrame(new Uint8Array(5000)), // over packageMaxLength
      new Uint8Array([0x00]), // a zero length: the function throws
    ];
    for (const bytes of bad) {
      const conn = await connect(server.port);
      await writeAll(conn, bytes);
      const closed = await withTimeout(
        conn.read(new Uint8Array(16)).catch(() => null),
        "the close",
      );
      assert.equal(closed, null, "the server closed it");
      conn.close();
    }
    await server.waitForStderr(/session \d+: packageLengthFunc found a malformed message/);
    await server.waitForStderr(
      /session \d+: a message longer than packageMaxLength \(1024 bytes\)/,
    );
    await server.waitForStderr(/session \d+: packageLengthFunc threw \(a zero-length message\)/);
    await writeAll(good, hello.subarray(3));
    assert.deepEqual(await reports(good, 1), [[hello.length, 5]]);
    await writeAll(good, varintFrame(encoder.encode("!stats")));
    const stats = JSON.parse(await readLine(good));
    assert.equal(stats.protocolErrorCount, 3);
    good.close();
  });
}

for (const [name, mode] of modes) {
  Deno.test(`${name}: the heartbeat closes an idle session within an interval of its idle time, not a protected one`, async () => {
    await using server = await startFixture({
      ...mode,
      heartbeatCheckInterval: 0.2,
      heartbeatIdleTime: 0.6,
    });
    const idle = await connect(server.port);
    const kept = await connect(server.port);
    assert.deepEqual(await command(kept, "!protect"), { ok: true });
    // Taken before the request: the server's last receive is later than this.
    const lastActivity = performance.now();
    await command(idle, "!whoami");
    const closed = await withTimeout(
      idle.read(new Uint8Array(16)).catch(() => null),
      "the heartbeat",
    );
    const after = (performance.now() - lastActivity) / 1000;
    assert.equal(closed, null, "closed by the server");
    assert.ok(after >= 0.58, `closed after ${after} s, before its idle time`);
    // Within one interval after the idle time (plus slack for a loaded machine).
    assert.ok(after <= 0.6 + 0.2 + 1.5, `closed after ${after} s`);
    await server.waitForStderr(/closed by the heartbeat/);
    // The protected one outlives several more checks.
    const survived = performance.now();
    while (performance.now() - survived < 1000) {
      await new Promise((r) => setTimeout(r, 100)); // idle time passing, on purpose
    }
    const stats = await command(kept, "!stats");
    assert.equal(stats.heartbeatCloseCount, 1);
    idle.close();
    kept.close();
  });
}

for (const [name, mode] of modes) {
  Deno.test(`${name}: a port's own heartbeatIdleTime closes its idle sessions, not the server's port's`, async () => {
    await using server = await startFixture({ ...mode }, {
      extra: { secondPort: { heartbeatIdleTime: 0.5 } },
    });
    const secondPort = server.events.find((e) => e.event === "start")!.secondPort as number;
    const onServer = await connect(server.port);
    const onPort = await connect(secondPort);
    assert.equal((await command(onServer, "!info")).serverSocket, 0);
    await writeAll(onPort, concatBytes([new Uint8Array([0, 0, 0, 5]), encoder.encode("!info")]));
    assert.equal(JSON.parse(await readLine(onPort)).serverSocket, 1, "the port's index");
    const lastActivity = performance.now();
    await writeAll(onPort, new Uint8Array([0, 0, 0, 2, 104, 105]));
    assert.equal(await readLine(onPort), "p2 6 1");
    const closed = await withTimeout(
      onPort.read(new Uint8Array(16)).catch(() => null),
      "the port's heartbeat",
    );
    const after = (performance.now() - lastActivity) / 1000;
    assert.equal(closed, null, "closed by the server");
    assert.ok(after >= 0.48, `closed after ${after} s, before its idle time`);
    await server.waitForStderr(/closed by the heartbeat/);
    // The server's own port has no heartbeat: its session, idle as long, is still there.
    while (performance.now() - lastActivity < 1500) {
      await new Promise((r) => setTimeout(r, 100)); // idle time passing, on purpose
    }
    const stats = await command(onServer, "!stats");
    assert.equal(stats.heartbeatCloseCount, 1);
    assert.equal(stats.connectionNum, 1);
    onServer.close();
    onPort.close();
  });

  Deno.test(`${name}: watermarks: bufferFull while a slow reader lets output pile up, then bufferEmpty, in order`, async () => {
    await using server = await startFixture({
      ...mode,
      bufferHighWatermark: 1024 * 1024,
      bufferLowWatermark: 64 * 1024,
    });
    const conn = await connect(server.port);
    const n = 8 * 1024 * 1024;
    await conn.write(encoder.encode(`!blast ${n}\n`));
    // Nobody reads: the kernel's buffers fill, the session's output queue grows past 1 MiB.
    const full = await server.waitFor((e) => e.event === "bufferFull", "bufferFull");
    assert.equal(server.events.filter((e) => e.event === "bufferEmpty").length, 0);
    // Now read it all: the queue drains below 64 KiB.
    const buffer = new Uint8Array(1 << 20);
    let got = 0;
    while (got < n) {
      const r = await withTimeout(conn.read(buffer), "the blast");
      if (r === null) break;
      got += r;
    }
    assert.equal(got, n);
    const empty = await server.waitFor((e) => e.event === "bufferEmpty", "bufferEmpty");
    assert.equal(empty.sessionId, full.sessionId);
    assert.ok(server.events.indexOf(full) < server.events.indexOf(empty));
    conn.close();
  });
}

for (const [name, mode] of modes) {
  Deno.test(`${name}: pause stops reading a session until resume`, async () => {
    await using server = await startFixture({ ...mode });
    const conn = await connect(server.port);
    assert.deepEqual(await command(conn, "!pause 300"), { ok: true });
    const pausedAt = performance.now();
    let echoedAt = 0;
    await conn.write(encoder.encode("hello"));
    const echo = readBytes(conn, 5).then((b) => {
      echoedAt = performance.now();
      return new TextDecoder().decode(b);
    });
    await server.waitFor((e) => e.event === "resumed", "the resume");
    assert.equal(await withTimeout(echo, "the echo"), "hello");
    // (The echo and the event line travel apart; the pause's length is what tells.)
    assert.ok(echoedAt - pausedAt >= 250, `echoed ${echoedAt - pausedAt} ms into a 300 ms pause`);
    conn.close();
  });

  Deno.test(`${name}: enableDelayReceive: nothing is read before confirm`, async () => {
    await using server = await startFixture({ ...mode, enableDelayReceive: true });
    const conn = await connect(server.port);
    const connectedAt = performance.now();
    let echoedAt = 0;
    await conn.write(encoder.encode("early"));
    const echo = readBytes(conn, 5).then((b) => {
      echoedAt = performance.now();
      return new TextDecoder().decode(b);
    });
    await server.waitFor((e) => e.event === "confirmed", "the confirm");
    assert.equal(await withTimeout(echo, "the echo"), "early");
    // The fixture confirms 300 ms after the connect.
    assert.ok(
      echoedAt - connectedAt >= 250,
      `echoed ${echoedAt - connectedAt} ms after connecting`,
    );
    conn.close();
  });
}

for (const [name, mode] of modes) {
  Deno.test(`${name}: sendfile of a 64 MiB file arrives byte-exact, in order with the sends around it`, async () => {
    const path = await Deno.makeTempFile();
    try {
      const size = 64 * 1024 * 1024;
      const content = new Uint8Array(size);
      for (let i = 0; i < size; i += 4096) content.fill((i / 4096) % 251, i, i + 4096);
      await Deno.writeFile(path, content);
      await using server = await startFixture({ ...mode });
      const conn = await connect(server.port);
      await conn.write(encoder.encode(`!sendfile ${path}\n`));
      const got = await withTimeout(readBytes(conn, size + 2), "the file");
      assert.equal(got.length, size + 2);
      assert.equal(got[0], "<".charCodeAt(0));
      assert.equal(got[size + 1], ">".charCodeAt(0));
      assert.ok(got.subarray(1, size + 1).every((b, i) => b === content[i]), "byte-exact");
      conn.close();
    } finally {
      await Deno.remove(path);
    }
  });
}

for (const [name, mode] of modes) {
  Deno.test(`${name}: sendwait resolves once the data is written, not before`, async () => {
    await using server = await startFixture({ ...mode });
    const conn = await connect(server.port);
    const n = 16 * 1024 * 1024;
    await conn.write(encoder.encode(`!sendwait ${n}\n`));
    // Nobody reads yet: 16 MiB cannot all be written, so sendwait waits.
    const early = new Promise((r) => setTimeout(r, 300)); // the absence of an event, on purpose
    await early;
    assert.equal(server.events.filter((e) => e.event === "sendwait").length, 0);
    const got = await withTimeout(readBytes(conn, n), "the data");
    assert.equal(got.length, n);
    const done = await server.waitFor((e) => e.event === "sendwait", "sendwait");
    assert.equal(done.written, true);
    conn.close();
  });
}

for (const [name, options] of treeModes) {
  Deno.test(`two ports with different framing and their own callbacks (${name})`, async () => {
    await using server = await startFixture(
      { ...options, openEofSplit: true, packageEof: "\n" },
      { extra: { secondPort: true, frameReport: true } },
    );
    const start = server.events.find((e) => e.event === "start")!;
    const secondPort = start.secondPort as number;
    assert.ok(secondPort > 0 && secondPort !== server.port);
    // The server's port: one receive per line, answered by the server's callback.
    const lines = await connect(server.port);
    await lines.write(encoder.encode("ab\ncde\nf"));
    await lines.write(encoder.encode("g\n"));
    assert.deepEqual(await reports(lines, 3), [[3, 97], [4, 99], [3, 102]]);
    // The second port: length-prefixed frames, answered by its own callback.
    const frames = await connect(secondPort);
    const frame = (n: number) => {
      const out = new Uint8Array(4 + n);
      new DataView(out.buffer).setUint32(0, n);
      return out;
    };
    await frames.write(concatBytes([frame(5), frame(0), frame(300)]));
    const replies: string[] = [];
    while (replies.length < 3) {
      for (const line of (await readLine(frames)).split("\n")) if (line) replies.push(line);
    }
    // (…and its stats count its one open session, the other port's not.)
    assert.deepEqual(replies, ["p2 9 1", "p2 4 1", "p2 304 1"]);
    // A frame over packageMaxLength on the second port closes that connection.
    const bad = await connect(secondPort);
    await bad.write(frame(0x7fff_ffff).subarray(0, 4));
    assert.equal(
      await withTimeout(bad.read(new Uint8Array(8)).catch(() => null), "the close"),
      null,
    );
    bad.close();
    await server.waitForStderr(/longer than package_max_length/);
    // The port's counters are its own: two connections, one closed for the oversize frame; the
    // four messages and their bytes; the three answers written.
    const statsFrame = concatBytes([frame(6).subarray(0, 4), encoder.encode("!stats")]);
    await frames.write(statsFrame);
    const { port, server: total } = JSON.parse(await readLine(frames));
    assert.equal(port.acceptCount, 2);
    assert.equal(port.connectionNum, 1);
    assert.equal(port.closeCount, 1);
    // A protocol error closes with FIN (as Swoole's does), not a reset: no abort.
    assert.equal(port.abortCount, 0);
    assert.equal(port.protocolErrorCount, 1);
    assert.equal(port.dispatchCount, 4);
    assert.equal(port.totalRecvBytes, 9 + 4 + 304 + 4 + 10);
    assert.equal(port.totalSendBytes, replies.join("\n").length + 1);
    assert.equal(total.acceptCount, 3, "the server's counters take in both ports");
    assert.equal(total.connectionNum, 2);
    lines.close();
    frames.close();
  });
}
