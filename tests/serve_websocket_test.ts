/**
 * `upgradeWebSocket` in `serve()`, used as `Deno.upgradeWebSocket` is, with Deno's own
 * `WebSocket` as the client: open, text and binary both ways, a subprotocol, close codes from
 * either side, a refused upgrade, an upgrade of a plain request, a handler that throws, and
 * the per-connection idle timeout closing a client that stops answering pings.
 */
import assert from "node:assert/strict";
import { serve, upgradeWebSocket } from "../mod.ts";
import { startFixture, treeModes, until, withTimeout } from "./_helpers.ts";
import { client, rawClient } from "./_websocket.ts";

interface Seen {
  events: string[];
  closes: { code: number; reason: string; wasClean: boolean }[];
  upgradeErrors: string[];
}

function echoServer(seen: Seen) {
  return serve({ hostname: "127.0.0.1", port: 0 }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/plain") {
      try {
        upgradeWebSocket(request);
      } catch (error) {
        seen.upgradeErrors.push((error as Error).name);
      }
      return new Response("plain");
    }
    if (path === "/refuse") return new Response("no sockets here", { status: 403 });
    if (path === "/throw") throw new Error("handler failed");
    const offered = request.headers.get("sec-websocket-protocol");
    const { socket, response } = upgradeWebSocket(request, {
      protocol: offered?.includes("chat") ? "chat" : undefined,
      idleTimeout: path === "/idle" ? 0.6 : undefined,
    });
    assert.equal(response.status, 101);
    assert.equal(socket.readyState, WebSocket.CONNECTING);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      seen.events.push("open");
      socket.send(`hello ${path}`);
    };
    socket.onmessage = (e) => {
      seen.events.push(typeof e.data === "string" ? `text ${e.data}` : "binary");
      if (e.data === "close please") socket.close(4001, "as asked");
      else if (e.data === "buffered") socket.send(String(socket.bufferedAmount));
      else socket.send(e.data);
    };
    socket.onclose = (e) => {
      seen.closes.push({ code: e.code, reason: e.reason, wasClean: e.wasClean });
    };
    return response;
  });
}

Deno.test("serve upgradeWebSocket: Deno's WebSocket opens, exchanges text and binary, negotiates a subprotocol, and closes from either side with its code", async () => {
  const seen: Seen = { events: [], closes: [], upgradeErrors: [] };
  await using server = echoServer(seen);
  const port = server.addr.port;
  const c = await client(port, "/room", ["chat", "other"]);
  assert.equal(c.ws.protocol, "chat");
  assert.equal(await c.next(), "hello /room");
  c.ws.send("héllo");
  assert.equal(await c.next(), "héllo");
  c.ws.send(new Uint8Array([1, 2, 3, 250]));
  assert.deepEqual(await c.next(), new Uint8Array([1, 2, 3, 250]));
  c.ws.send("buffered");
  assert.equal(await c.next(), "0");
  // The client closes: the socket hears its code and reason.
  c.ws.close(4000, "bye");
  const closed = await withTimeout(c.closed, "the client's close");
  assert.equal(closed.code, 4000);
  await until("the socket's close event", () => seen.closes.length > 0);
  assert.deepEqual(seen.closes[0], { code: 4000, reason: "bye", wasClean: true });

  // The server closes.
  const d = await client(port, "/second");
  assert.equal(await d.next(), "hello /second");
  d.ws.send("close please");
  const serverClosed = await withTimeout(d.closed, "the server's close");
  assert.equal(serverClosed.code, 4001);
  assert.equal(serverClosed.reason, "as asked");
  // The socket that closed hears its own code, cleanly.
  await until("the server side's close event", () => seen.closes.length > 1);
  assert.deepEqual(seen.closes[1], { code: 4001, reason: "as asked", wasClean: true });
  assert.ok(seen.events.includes("open"));
});

Deno.test("serve upgradeWebSocket: a handler that answers an upgrade otherwise refuses it; upgrading a plain request throws; a throwing handler gets 500", async () => {
  const seen: Seen = { events: [], closes: [], upgradeErrors: [] };
  await using server = echoServer(seen);
  const port = server.addr.port;
  for (const [path, status] of [["/refuse", 403], ["/throw", 500]] as const) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    const outcome = await withTimeout(
      new Promise<string>((resolve) => {
        ws.onopen = () => resolve("open");
        ws.onerror = () => resolve("refused");
      }),
      `the ${path} upgrade`,
    );
    assert.equal(outcome, "refused", `${path} is refused (${status})`);
  }
  // What the refusal sends, seen raw.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(
    "GET /refuse HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes("no sockets here")) {
    const n = await withTimeout(conn.read(buffer), "the refusal");
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  assert.match(text, /^HTTP\/1\.1 403 /);
  conn.close();
  const plain = await fetch(`http://127.0.0.1:${port}/plain`);
  assert.equal(await plain.text(), "plain");
  assert.deepEqual(seen.upgradeErrors, ["TypeError"]);
});

Deno.test("serve upgradeWebSocket: idleTimeout pings the connection after half of it and closes one that does not answer", async () => {
  const seen: Seen = { events: [], closes: [], upgradeErrors: [] };
  await using server = echoServer(seen);
  const raw = await rawClient(server.addr.port, "/idle");
  const greeting = await raw.read();
  assert.equal(new TextDecoder().decode(greeting!.payload), "hello /idle");
  const ping = await raw.read();
  assert.equal(ping?.opcode, 9, "pinged");
  assert.equal(await raw.closeCode(), 1001);
  raw.conn.close();
  await until("the socket's close event", () => seen.closes.length > 0);
  // (It never answered: the closing handshake did not complete, as Deno reports it.)
  assert.deepEqual(seen.closes[0], { code: 1006, reason: "", wasClean: false });
});

const serveScript = new URL("./fixtures/serve_ws_server.ts", import.meta.url).pathname;

for (const [mode, options] of treeModes) {
  Deno.test(`serve upgradeWebSocket (${mode}): sockets echo on every worker`, async () => {
    await using server = await startFixture(options, { script: serveScript });
    const clients = await Promise.all([0, 1, 2, 3].map(() => client(server.port, "/ws")));
    for (const [i, c] of clients.entries()) {
      c.ws.send(`hello ${i}`);
      assert.equal(await c.next(), `hello ${i}`);
      c.ws.send(new Uint8Array([i, 255]));
      assert.deepEqual(await c.next(), new Uint8Array([i, 255]));
    }
    for (const c of clients) {
      c.ws.close(4002, "done");
      assert.equal((await withTimeout(c.closed, "close")).code, 4002);
    }
    await until(
      "every socket's close event",
      () => server.events.filter((e) => e.event === "close").length === 4,
    );
    for (const e of server.events.filter((e) => e.event === "close")) {
      assert.deepEqual([e.code, e.reason, e.wasClean], [4002, "done", true]);
    }
  });
}

Deno.test("serve upgradeWebSocket (BASE mode): a reload closes the leaving worker's sockets with 1001", async () => {
  await using server = await startFixture({ workerNum: 2 }, { script: serveScript });
  const c = await client(server.port, "/ws");
  c.ws.send("reload");
  assert.equal(await c.next(), "reload true");
  const closed = await withTimeout(c.closed, "the close");
  assert.equal(closed.code, 1001);
});

Deno.test("serve upgradeWebSocket (PROCESS mode): after a reload the successor closes a socket it does not hold with 1012", async () => {
  await using server = await startFixture({ mode: "process", workerNum: 1, reactorNum: 1 }, {
    script: serveScript,
  });
  const c = await client(server.port, "/ws");
  c.ws.send("pid");
  const before = await c.next();
  c.ws.send("reload");
  assert.equal(await c.next(), "reload true");
  // The successor answers a new connection. (A probe the leaving worker took is closed by
  // its successor, or fails to open: the next one goes on.)
  await until("the worker replaced", async () => {
    const probe = await client(server.port, "/ws").catch(() => undefined);
    if (!probe) return false;
    probe.ws.send("pid");
    const pid = await Promise.race([probe.next(), probe.closed.then(() => before)]);
    probe.ws.close();
    await probe.closed;
    return pid !== before;
  });
  c.ws.send("anyone there?");
  const closed = await withTimeout(c.closed, "the close");
  assert.equal(closed.code, 1012);
});
