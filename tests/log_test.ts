/**
 * The log: one format for the TypeScript side and the core (timestamp, level, role, pid, the
 * session where there is one), as text or as JSON lines (`logFormat: "json"`), and what is
 * logged at which level. Real fixture processes; the core's line comes from a protocol error.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { startFixture, workersStarted } from "./_helpers.ts";
import { client, frame, rawClient } from "./_websocket.ts";
import { writeAll } from "./_http.ts";

const script = new URL("./fixtures/ws_server.ts", import.meta.url).pathname;

/** A reload: the manager (TypeScript) logs it. */
async function reload(port: number): Promise<void> {
  const c = await client(port, "/");
  c.ws.send("reload");
  assert.equal(await c.next(), "reload true");
  c.ws.close();
  await c.closed;
}

/** An unmasked frame: the core closes with 1002 and logs why, naming the session. */
async function protocolError(port: number): Promise<void> {
  const c = await rawClient(port, "/");
  await writeAll(c.conn, frame(1, "unmasked", true, false));
  assert.equal(await c.closeCode(), 1002);
  c.conn.close();
}

Deno.test("log (text): the core's lines have the TypeScript side's timestamp, level, role and pid", async () => {
  await using server = await startFixture({ workerNum: 2 }, { script });
  await workersStarted(server, 2);
  await protocolError(server.port);
  await reload(server.port);
  await server.waitForStderr(/reloading 2 worker/);
  const line = await server.waitForStderr(/closing with 1002/);
  const core = line.split("\n").find((l) => l.includes("closing with 1002"))!;
  assert.match(
    core,
    /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] INFO worker#[01] pid \d+: websocket: session \d+: closing with 1002: /,
  );
  // A TypeScript line of the same process, in the same shape.
  const ts = server.stderr().split("\n").find((l) => / INFO manager pid \d+: /.test(l));
  assert.ok(ts, server.stderr());
  assert.match(ts, /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] INFO manager pid \d+: /);
});

Deno.test("log (json): every line of both sides is one JSON object with time, level, who, pid, and the session it is about", async () => {
  await using server = await startFixture({ workerNum: 2, logFormat: "json" }, { script });
  await workersStarted(server, 2);
  await protocolError(server.port);
  await reload(server.port);
  await server.waitForStderr(/reloading 2 worker/);
  const lines = server.stderr().split("\n").filter((l) => l.trim() !== "");
  assert.ok(lines.length >= 2, server.stderr());
  const records = lines.map((l) => {
    const record = JSON.parse(l);
    assert.equal(typeof record.time, "string", l);
    assert.ok(!Number.isNaN(Date.parse(record.time)), l);
    assert.ok(["debug", "info", "warning", "error"].includes(record.level), l);
    assert.equal(typeof record.who, "string", l);
    assert.equal(typeof record.pid, "number", l);
    assert.equal(typeof record.message, "string", l);
    return record;
  });
  const core = records.find((r) => r.message.includes("closing with 1002"));
  assert.ok(core);
  assert.equal(core.level, "info");
  assert.equal(core.scope, "websocket");
  assert.match(core.who, /^worker#[01]$/);
  assert.equal(core.session, Number(/^session (\d+)/.exec(core.message)![1]));
  assert.ok(records.some((r) => r.who === "manager" && r.pid === server.child.pid));
});

Deno.test("log: a peer's reset is a debug line (naming the session and ECONNRESET), not an info one", async () => {
  const fixture = new URL("./fixtures/server.ts", import.meta.url).pathname;
  await using server = await startFixture({ logLevel: "debug" }, { script: fixture });
  const victim = net.connect(server.port, "127.0.0.1");
  await new Promise((resolve) => victim.once("connect", resolve));
  victim.write("abc");
  await new Promise((resolve) => victim.once("data", resolve));
  victim.resetAndDestroy();
  const text = await server.waitForStderr(/closed: ECONNRESET/);
  const line = text.split("\n").find((l) => l.includes("closed: ECONNRESET"))!;
  assert.match(line, /\] DEBUG worker#0 pid \d+: session \d+ closed: ECONNRESET$/);
});

Deno.test("log: logLevel debug tells what each connection did: who connected, each HTTP request and its status, a WebSocket's open, how it ended with its byte counts", async () => {
  const fixture = new URL("./fixtures/server.ts", import.meta.url).pathname;
  {
    await using server = await startFixture({ logLevel: "debug" }, { script: fixture });
    const peer = net.connect(server.port, "127.0.0.1");
    await new Promise((resolve) => peer.once("connect", resolve));
    const localPort = peer.localPort!;
    peer.write("ping");
    await new Promise((resolve) => peer.once("data", resolve));
    peer.end();
    const text = await server.waitForStderr(/closed by the peer/);
    assert.match(
      text,
      new RegExp(
        `DEBUG worker#0 pid \\d+: session (\\d+): connected from 127\\.0\\.0\\.1:${localPort} on the server's port`,
      ),
    );
    assert.match(text, /session \d+: closed by the peer after \d+\.\d+ s; read 4 bytes, wrote 4/);
  }
  {
    await using server = await startFixture({ logLevel: "debug" }, { script });
    const response = await fetch(`http://127.0.0.1:${server.port}/plain?x=1`);
    assert.equal(response.status, 200);
    await response.text();
    await server.waitForStderr(/-> 200 in/);
    const c = await client(server.port, "/chat");
    c.ws.close();
    await c.closed;
    const text = await server.waitForStderr(/WebSocket open on \/chat/);
    assert.match(text, /session \d+: GET \/plain\?x=1 HTTP\/1\.1 -> 200 in \d+\.\d ms/);
  }
  // At info, none of it.
  await using quiet = await startFixture({}, { script: fixture });
  const peer = net.connect(quiet.port, "127.0.0.1");
  await new Promise((resolve) => peer.once("connect", resolve));
  peer.write("ping");
  await new Promise((resolve) => peer.once("data", resolve));
  peer.destroy();
  assert.doesNotMatch(quiet.stderr(), /connected from/);
});
