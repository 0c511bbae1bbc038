/**
 * The PROXY protocol (`openProxyProtocol`): a balancer's header, version 1 or 2, gives each
 * session the client's address; a connection without a valid one is closed and counted. Headers
 * are written here byte by byte as the specification lays them out; curl's `--haproxy-protocol`
 * is a client nobody here wrote.
 */
import assert from "node:assert/strict";
import {
  command,
  connect,
  readLine,
  readToEnd,
  startFixture,
  treeModes,
  withTimeout,
  writeAll,
} from "./_helpers.ts";
import { concatBytes } from "../src/bytes.ts";

const encoder = new TextEncoder();
const httpFixture = new URL("./fixtures/http_server.ts", import.meta.url).pathname;

const v2Signature = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A version 2 header: PROXY over TCP from `source` (IPv4 or IPv6 bytes), with `tlv` after. */
function v2(source: number[], sourcePort: number, tlv: number[] = []): Uint8Array {
  const six = source.length === 16;
  const destination = six ? [...Array(15).fill(0), 1] : [127, 0, 0, 1];
  const body = [
    ...source,
    ...destination,
    sourcePort >> 8,
    sourcePort & 0xff,
    0x23,
    0x82,
    ...tlv,
  ];
  return new Uint8Array([
    ...v2Signature,
    0x21,
    six ? 0x21 : 0x11,
    body.length >> 8,
    body.length & 0xff,
    ...body,
  ]);
}

/** A version 2 LOCAL header (a balancer's own connection): no address. */
const v2Local = new Uint8Array([...v2Signature, 0x20, 0x00, 0x00, 0x00]);

const concat = (...parts: Uint8Array[]) => concatBytes(parts);

/** Whether the server closed `conn` without a byte more (a reset counts). */
async function closedUnanswered(conn: Deno.Conn): Promise<boolean> {
  try {
    return (await withTimeout(readToEnd(conn), "the server to close")).length === 0;
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionReset) return true;
    throw e;
  }
}

for (const [name, mode] of treeModes) {
  Deno.test(`proxy protocol (${name}): versions 1 and 2 give the client's address; no header, a bad one, or data first closes the connection, counted`, async () => {
    await using server = await startFixture({
      ...mode,
      openProxyProtocol: true,
      logLevel: "debug",
    });

    // Version 1, with the first command in the same write.
    const one = await connect(server.port);
    await writeAll(
      one,
      encoder.encode(`PROXY TCP4 203.0.113.7 127.0.0.1 51234 ${server.port}\r\n`),
    );
    const info1 = await command(one, "!info");
    assert.equal(info1.remoteIp, "203.0.113.7");
    assert.equal(info1.remotePort, 51234);
    // The bytes after the header are the session's own: an echo comes back whole.
    await writeAll(one, encoder.encode("hello\n"));
    assert.equal(await withTimeout(readLine(one), "the echo"), "hello");

    // Version 2 over IPv6, arriving a byte at a time, with a TLV; then data.
    const two = await connect(server.port);
    const six = [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 0x05];
    const header = v2(six, 40000, [0x05, 0x00, 0x03, 0x61, 0x62, 0x63]);
    for (const byte of header) await writeAll(two, new Uint8Array([byte]));
    const info2 = await command(two, "!info");
    assert.equal(info2.remoteIp, "2001:db8::5");
    assert.equal(info2.remotePort, 40000);
    // The connect event came once the header was in (one per good connection so far).
    const connects = server.events.filter((e) => e.event === "connect");
    assert.equal(connects.length, 2);

    // Version 2 LOCAL (a health check of the balancer's own): the socket's address stands.
    const local = await connect(server.port);
    await writeAll(local, concat(v2Local, encoder.encode("!info\n")));
    const info3 = JSON.parse(await withTimeout(readLine(local), "the LOCAL session's info"));
    assert.equal(info3.remoteIp, "127.0.0.1");

    // Version 2 over IPv4 in one write with its data.
    const four = await connect(server.port);
    await writeAll(four, concat(v2([198, 51, 100, 9], 443), encoder.encode("!info\n")));
    const info4 = JSON.parse(await withTimeout(readLine(four), "the v2 IPv4 session's info"));
    assert.equal(info4.remoteIp, "198.51.100.9");
    assert.equal(info4.remotePort, 443);

    // No header: closed, nothing echoed, never a connect.
    const none = await connect(server.port);
    await writeAll(none, encoder.encode("hello\n"));
    assert.ok(await closedUnanswered(none));
    // Data, then a header: refused too (a header counts only as the first bytes).
    const late = await connect(server.port);
    await writeAll(late, encoder.encode(`x\nPROXY TCP4 203.0.113.7 127.0.0.1 1 2\r\n`));
    assert.ok(await closedUnanswered(late));
    // A malformed v1 line (a port out of range).
    const bad = await connect(server.port);
    await writeAll(bad, encoder.encode("PROXY TCP4 203.0.113.7 127.0.0.1 70000 2\r\n!info\n"));
    assert.ok(await closedUnanswered(bad));
    // Half a header, then the peer's close.
    const cut = await connect(server.port);
    await writeAll(cut, encoder.encode("PROXY TCP4 203.0.1"));
    await cut.closeWrite();
    assert.ok(await closedUnanswered(cut));
    // A connection closed before a byte (a balancer's plain TCP check): not an error.
    (await connect(server.port)).close();

    const stats = await command(four, "!stats");
    assert.equal(stats.protocolErrorCount, 4);
    assert.equal(server.events.filter((e) => e.event === "connect").length, 4);
    await server.waitForStderr(/no PROXY protocol header/);
    // The logs name the client too.
    await server.waitForStderr(/session \d+: connected from 203\.0\.113\.7:51234/);
    for (const c of [one, two, local, four]) c.close();
  });
}

Deno.test("proxy protocol: a port of its own takes headers while the server's socket does not; enableDelayReceive still reads the header", async () => {
  await using server = await startFixture({ enableDelayReceive: true }, {
    extra: { secondPort: { openProxyProtocol: true } },
  });
  const secondPort = (server.events[0].secondPort) as number;
  const conn = await connect(secondPort);
  const frame = (text: string) => {
    const body = encoder.encode(text);
    const out = new Uint8Array(4 + body.length);
    new DataView(out.buffer).setUint32(0, body.length);
    out.set(body, 4);
    return out;
  };
  await writeAll(
    conn,
    concat(encoder.encode(`PROXY TCP6 2001:db8::9 ::1 6000 ${secondPort}\r\n`), frame("!info")),
  );
  // (The fixture confirms every session on connect: with delayed receive, the connect comes
  // first, after the header.)
  const info = JSON.parse(await withTimeout(readLine(conn), "the second port's info"));
  assert.equal(info.remoteIp, "2001:db8::9");
  assert.equal(info.remotePort, 6000);
  conn.close();
  // The server's own socket takes no header: a plain command works there.
  const plain = await connect(server.port);
  const own = await command(plain, "!info");
  assert.equal(own.remoteIp, "127.0.0.1");
  plain.close();
});

Deno.test("proxy protocol (HTTP): curl's --haproxy-protocol is served; a request without a header gets 400; req.server.remoteAddr is the header's", async () => {
  await using server = await startFixture({ openProxyProtocol: true }, { script: httpFixture });
  const url = `http://127.0.0.1:${server.port}/info`;
  const curl = await new Deno.Command("curl", {
    args: ["-sS", "--haproxy-protocol", url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(curl.success, new TextDecoder().decode(curl.stderr));
  const served = JSON.parse(new TextDecoder().decode(curl.stdout));
  assert.equal(served.server.remoteAddr, "127.0.0.1");

  // A forged client address, as HAProxy sends it for a client elsewhere.
  const conn = await connect(server.port);
  await writeAll(
    conn,
    encoder.encode(
      `PROXY TCP4 192.0.2.44 127.0.0.1 33333 80\r\nGET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ),
  );
  const text = new TextDecoder().decode(await withTimeout(readToEnd(conn), "the response"));
  assert.match(text, /^HTTP\/1\.1 200 /);
  const body = JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
  assert.equal(body.server.remoteAddr, "192.0.2.44");
  assert.equal(body.server.remotePort, 33333);

  // Deno's fetch sends no header: 400, then the close.
  const response = await fetch(url);
  assert.equal(response.status, 400);
  await response.body?.cancel();
});

Deno.test("proxy protocol: a UDP port or server refuses the option", async () => {
  const { Server } = await import("../mod.ts");
  assert.throws(
    () => new Server({ sockType: "udp", openProxyProtocol: true }),
    /"openProxyProtocol" needs a stream socket/,
  );
  const server = new Server({ port: 0 });
  assert.throws(
    () => server.listen("127.0.0.1", 0, "udp").set({ openProxyProtocol: true }),
    /"openProxyProtocol" needs a stream socket/,
  );
});

Deno.test("proxy protocol: a connection that sends no header is closed after 10 s, counted", async () => {
  await using server = await startFixture({ openProxyProtocol: true });
  const silent = await connect(server.port);
  const opened = performance.now();
  // Meanwhile no worker sees it: the session lists skip it.
  const other = await connect(server.port);
  await writeAll(other, concat(v2Local, encoder.encode("!list 0 10\n")));
  const listed = JSON.parse(await withTimeout(readLine(other), "the session list"));
  assert.equal(listed.ids.length, 1, "only the session that sent its header");
  other.close();
  assert.ok(await closedUnanswered(silent));
  const after = performance.now() - opened;
  assert.ok(after >= 9_500, `closed after ${after.toFixed(0)} ms`);
  await server.waitForStderr(/no PROXY header within 10 s/);
  const probe = await connect(server.port);
  await writeAll(probe, concat(v2Local, encoder.encode("!stats\n")));
  const stats = JSON.parse(await withTimeout(readLine(probe), "the stats"));
  assert.equal(stats.protocolErrorCount, 1);
  probe.close();
});
