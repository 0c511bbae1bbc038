/**
 * WebSocket publish/subscribe, with Deno's own `WebSocket` clients: in every tree mode a
 * publish from an event worker and from a task worker reaches every subscriber of every
 * worker, once; `publish` counts the subscribers (a subscription queued in the same callback
 * included); unsubscribe and a closed connection end subscriptions; a publish larger than a
 * ring record arrives whole; bad topics are refused.
 */
import assert from "node:assert/strict";
import { startFixture, treeModes, until, withTimeout, workersStarted } from "./_helpers.ts";
import { client, frame, rawClient } from "./_websocket.ts";
import { writeAll } from "./_http.ts";

const script = new URL("./fixtures/ws_server.ts", import.meta.url).pathname;

type Client = Awaited<ReturnType<typeof client>>;

/** The next message that is not a "joined" notice. */
async function nextSkippingJoins(c: Client): Promise<string | Uint8Array> {
  while (true) {
    const m = await c.next();
    if (typeof m !== "string" || !m.startsWith("joined ")) return m;
  }
}

/** The same for a raw client: its next frame that is not a "joined" text. */
async function rawSkippingJoins(raw: Awaited<ReturnType<typeof rawClient>>) {
  while (true) {
    const f = await raw.read();
    if (f?.opcode !== 1 || !new TextDecoder().decode(f.payload).startsWith("joined ")) return f;
  }
}

const modes = [
  ...treeModes,
  ["PROCESS mode, two reactor threads", { mode: "process", workerNum: 2, reactorNum: 2 }],
] as const;

for (const [mode, options] of modes) {
  Deno.test(`websocket pub/sub (${mode}): a publish from a worker and from a task worker reaches every subscriber once; counts follow subscribe, unsubscribe and close`, async () => {
    const workerNum = (options as { workerNum?: number }).workerNum ?? 1;
    await using server = await startFixture({ ...options, taskWorkerNum: 1 }, { script });
    await workersStarted(server, workerNum + 1);
    const clients: Client[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await client(server.port, "/join/room");
      // Its own join notice: subscribed and counted in the same callback.
      assert.equal(await c.next(), `joined ${await fdOf(c)} ${i + 1}`);
      clients.push(c);
    }
    assert.equal(await countOf(clients[0], "room"), "6");
    clients[0].ws.send("pub:room:hello all");
    for (const c of clients) assert.equal(await nextSkippingJoins(c), "hello all");
    assert.equal(await nextSkippingJoins(clients[0]), "published 6");

    // From a task worker (no lane of its own: through the workers).
    // (Its push of the answer and its publish take different paths: either may come first.)
    clients[1].ws.send("taskpub:room:from a task");
    for (const [i, c] of clients.entries()) {
      if (i !== 1) assert.equal(await nextSkippingJoins(c), "from a task");
    }
    const both = [await nextSkippingJoins(clients[1]), await nextSkippingJoins(clients[1])];
    assert.deepEqual(both.sort(), ["from a task", "task published 6"]);

    // Unsubscribed: no more messages for it, and one fewer counted.
    clients[2].ws.send("unsub:room");
    assert.equal(await nextSkippingJoins(clients[2]), "unsub room true");
    clients[3].ws.send("pub:room:without two");
    for (const [i, c] of clients.entries()) {
      if (i !== 2) assert.equal(await nextSkippingJoins(c), "without two");
    }
    assert.equal(await nextSkippingJoins(clients[3]), "published 5");
    // Another topic for the unsubscribed one, and nothing from "room" reached it meanwhile.
    clients[2].ws.send("sub:other");
    assert.equal(await nextSkippingJoins(clients[2]), "sub other true");
    clients[2].ws.send("pub:other:just you");
    assert.equal(await nextSkippingJoins(clients[2]), "just you");
    assert.equal(await nextSkippingJoins(clients[2]), "published 1");

    // A closed connection's subscriptions go with it.
    const fd5 = await fdOf(clients[5]);
    clients[5].ws.close();
    await clients[5].closed;
    await server.waitFor((e) => e.event === "close" && e.fd === fd5, "the close event");
    await until(
      "the closed subscriber uncounted",
      async () => await countOf(clients[0], "room") === "4",
    );
    clients[0].ws.send("pub:room:four left");
    for (const i of [0, 1, 3, 4]) assert.equal(await nextSkippingJoins(clients[i]), "four left");
    assert.equal(await nextSkippingJoins(clients[0]), "published 4");

    for (const c of clients.slice(0, 5)) {
      c.ws.close();
      await c.closed;
    }
    await until("every subscriber gone", async () => {
      const c = await client(server.port, "/");
      const n = await countOf(c, "room");
      c.ws.close();
      await c.closed;
      return n === "0";
    });
  });
}

Deno.test("websocket pub/sub: a publish larger than one ring record (1 MiB binary), and than socketBufferSize, reaches each subscriber whole, in BASE and PROCESS mode", async () => {
  for (const options of [{ workerNum: 2 }, { mode: "process", workerNum: 2, reactorNum: 2 }]) {
    await using server = await startFixture({ ...options, socketBufferSize: 512 * 1024 }, {
      script,
    });
    await workersStarted(server, 2);
    const clients: Client[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await client(server.port, "/join/big");
      await c.next();
      clients.push(c);
    }
    const size = 1024 * 1024 + 7;
    clients[0].ws.send(`pubbin:big:${size}`);
    for (const c of clients) {
      const got = await nextSkippingJoins(c);
      assert.ok(got instanceof Uint8Array, "a binary message");
      assert.equal(got.length, size);
      for (let i = 0; i < size; i += 4093) assert.equal(got[i], i & 0xff, `byte ${i}`);
    }
    assert.equal(await nextSkippingJoins(clients[0]), "published 4");
    for (const c of clients) {
      c.ws.close();
      await c.closed;
    }
  }
});

Deno.test("websocket pub/sub: an empty or over-long topic is refused with a RangeError; publishing to a topic nobody has counts 0", async () => {
  await using server = await startFixture({}, { script });
  const c = await client(server.port, "/");
  c.ws.send("sub:");
  assert.equal(await c.next(), "sub  RangeError");
  c.ws.send(`sub:${"t".repeat(1025)}`);
  assert.equal(await c.next(), `sub ${"t".repeat(1025)} RangeError`);
  c.ws.send(`sub:${"é".repeat(512)}`);
  assert.equal(await c.next(), `sub ${"é".repeat(512)} true`);
  c.ws.send("pub:nobody:hello");
  assert.equal(await c.next(), "published 0");
  c.ws.send("unsub:never");
  assert.equal(await c.next(), "unsub never true");
  c.ws.close();
  await c.closed;
});

for (const closeOnBackpressureLimit of [false, true]) {
  Deno.test(
    `websocket pub/sub: a subscriber that never reads ${
      closeOnBackpressureLimit
        ? "is closed (closeOnBackpressureLimit)"
        : "misses what its buffer cannot take"
    }; the one that reads gets every message, in order`,
    async () => {
      await using server = await startFixture({
        socketBufferSize: 2 << 20,
        kernelSocketSendBufferSize: 65536,
        closeOnBackpressureLimit,
      }, { script });
      const slow = await rawClient(server.port, "/join/feed");
      const slowOpen = await server.waitFor((e) => e.event === "open", "the slow one's open");
      const fast = await client(server.port, "/join/feed");
      await fast.next();
      // Published to both, and pushed to the slow one too: 12 batches of about 1 MiB, each
      // read by the fast one before the next (so only the slow one falls behind).
      const n = 30;
      for (let batch = 0; batch < 12; batch++) {
        fast.ws.send(`flood:feed:${n}:32768:[${slowOpen.fd}]`);
        for (let i = 0; i < n; i++) {
          const m = await nextSkippingJoins(fast);
          assert.ok(m instanceof Uint8Array && m.length === 32768, `message ${i} whole`);
          assert.equal(m[0], i & 0xff, `message ${i} in order`);
        }
        assert.equal(await nextSkippingJoins(fast), "flooded");
      }
      if (closeOnBackpressureLimit) {
        await server.waitFor(
          (e) => e.event === "close" && e.fd === slowOpen.fd,
          "the slow one closed",
        );
        assert.equal(await countOf(fast, "feed"), "1");
      } else {
        assert.equal(await countOf(fast, "feed"), "2");
        fast.ws.send("stats");
        const stats = JSON.parse(await nextSkippingJoins(fast) as string);
        assert.ok(stats.sendDroppedCount > 0, "the messages it missed are counted");
      }
      slow.conn.close();
      fast.ws.close();
      await fast.closed;
    },
  );
}

Deno.test("websocket pub/sub (PROCESS mode): connections and their subscriptions outlive a reload and a worker's crash", async () => {
  await using server = await startFixture({ mode: "process", workerNum: 2, reactorNum: 1 }, {
    script,
  });
  await workersStarted(server, 2);
  const a = await client(server.port, "/join/news");
  await a.next();
  const b = await client(server.port, "/join/news");
  await b.next();
  const count = (event: string) => server.events.filter((e) => e.event === event).length;
  a.ws.send("reload");
  assert.equal(await nextSkippingJoins(a), "reload true");
  // Both workers again (their successors' workerStart).
  await until("both workers restarted", () => count("workerStart") >= 4);
  b.ws.send("pub:news:after the reload");
  assert.equal(await nextSkippingJoins(a), "after the reload");
  assert.equal(await nextSkippingJoins(b), "after the reload");
  assert.equal(await nextSkippingJoins(b), "published 2");
  // The worker that handles a's messages dies; its successor carries on.
  a.ws.send("crash");
  await until("the crashed worker replaced", () => count("workerStart") >= 5);
  a.ws.send("pub:news:after the crash");
  assert.equal(await nextSkippingJoins(a), "after the crash");
  assert.equal(await nextSkippingJoins(b), "after the crash");
  assert.equal(await nextSkippingJoins(a), "published 2");
  assert.equal(count("close"), 0, "no connection closed");
  a.ws.close();
  b.ws.close();
  await Promise.all([a.closed, b.closed]);
});

Deno.test("websocket (BASE mode, two workers): a reload hands every WebSocket to the successor, with its topics and a half-read frame", async () => {
  await using server = await startFixture({ workerNum: 2 }, { script });
  await workersStarted(server, 2);
  const a = await client(server.port, "/join/news");
  await a.next();
  const b = await client(server.port, "/join/news");
  await b.next();
  const raw = await rawClient(server.port, "/join/news");
  const text = (f: { payload: Uint8Array } | null) => new TextDecoder().decode(f!.payload);
  assert.match(text(await raw.read()), /^joined /);
  const infoOf = async (c: Client) => {
    c.ws.send("info");
    return JSON.parse(await nextSkippingJoins(c) as string);
  };
  const before = [await infoOf(a), await infoOf(b)];
  const bFd = await fdOf(b);
  // Half a frame before the reload, the rest after: the successor reads it whole.
  const echo = frame(2, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  await writeAll(raw.conn, echo.subarray(0, 5));
  const count = (event: string) => server.events.filter((e) => e.event === event).length;
  a.ws.send("reload");
  assert.equal(await nextSkippingJoins(a), "reload true");
  await until("both workers restarted", () => count("workerStart") >= 4);
  await writeAll(raw.conn, echo.subarray(5));
  const echoed = await rawSkippingJoins(raw);
  assert.deepEqual([echoed?.opcode, [...echoed!.payload]], [2, [1, 2, 3, 4, 5, 6, 7, 8]]);
  // The same connections, now in the successors (other processes, same ids and workers).
  const after = [await infoOf(a), await infoOf(b)];
  for (const [i, info] of after.entries()) {
    assert.equal(info.isEstablished, true);
    assert.equal(info.workerId, before[i].workerId);
    assert.notEqual(info.pid, before[i].pid, "handled by the successor");
  }
  assert.equal(await fdOf(b), bFd);
  // Their subscriptions came along, counted; a push crosses to the other worker.
  b.ws.send("pub:news:after the reload");
  assert.equal(await nextSkippingJoins(a), "after the reload");
  assert.equal(text(await rawSkippingJoins(raw)), "after the reload");
  assert.equal(await nextSkippingJoins(b), "after the reload");
  assert.equal(await nextSkippingJoins(b), "published 3");
  assert.equal(await countOf(a, "news"), "3");
  a.ws.send(`to:${bFd}:across`);
  assert.equal(await nextSkippingJoins(b), "across");
  assert.equal(count("close"), 0, "no connection closed");
  a.ws.close();
  await a.closed;
  await server.waitFor((e) => e.event === "close", "the successor's close event");
  assert.equal(await countOf(b, "news"), "2");
  raw.conn.close();
  b.ws.close();
  await b.closed;
});

Deno.test("websocket (BASE mode): a successor that dies before it starts leaves the handed-over WebSockets to the next one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "zg-die-once-" });
  try {
    await using server = await startFixture({ workerNum: 2 }, { script, extra: { dieOnce: dir } });
    await workersStarted(server, 2);
    const a = await client(server.port, "/join/news");
    await a.next();
    a.ws.send("info");
    const before = JSON.parse(await nextSkippingJoins(a) as string);
    a.ws.send("reload");
    assert.equal(await nextSkippingJoins(a), "reload true");
    await server.waitForStderr(/exited abnormally: code 3/);
    const count = (event: string) => server.events.filter((e) => e.event === event).length;
    await until("both workers running again", () => count("workerStart") >= 4);
    a.ws.send("info");
    const after = JSON.parse(await nextSkippingJoins(a) as string);
    assert.equal(after.workerId, before.workerId);
    assert.notEqual(after.pid, before.pid);
    a.ws.send("pub:news:still here");
    assert.equal(await nextSkippingJoins(a), "still here");
    assert.equal(count("close"), 0);
    a.ws.close();
    await a.closed;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("websocket (BASE mode, two workers): the server's shutdown closes every WebSocket with 1001, none is carried on", async () => {
  await using server = await startFixture({ workerNum: 2 }, { script });
  await workersStarted(server, 2);
  const clients = [await client(server.port, "/join/x"), await client(server.port, "/join/x")];
  for (const c of clients) await c.next();
  server.child.kill("SIGTERM");
  for (const c of clients) {
    const closed = await withTimeout(c.closed, "the close");
    assert.equal(closed.code, 1001);
  }
  assert.equal((await server.exited()).code, 0);
});

Deno.test("websocket pub/sub: a publish while a pushed message is unfinished waits for its last fragment", async () => {
  const text = (f: { payload: Uint8Array } | null) => new TextDecoder().decode(f!.payload);
  for (const options of [{}, { mode: "process", workerNum: 2, reactorNum: 1 }]) {
    await using server = await startFixture(options, { script });
    // a reads raw frames, to see its message's first fragment come before b publishes.
    const a = await rawClient(server.port, "/join/t");
    assert.match(text(await a.read()), /^joined /);
    const b = await client(server.port, "/join/t");
    await b.next();
    assert.match(text(await a.read()), /^joined /);
    await writeAll(a.conn, frame(1, "fragbegin:one "));
    const first = await a.read();
    assert.deepEqual([first?.opcode, first?.fin, text(first)], [1, false, "one "]);
    // A ping between the fragments neither ends the message nor lets the publish through.
    await writeAll(a.conn, frame(1, "ping:between"));
    const ping = await a.read();
    assert.deepEqual([ping?.opcode, text(ping)], [9, "between"]);
    b.ws.send("pub:t:news");
    assert.equal(await b.next(), "news");
    assert.equal(await b.next(), "published 2");
    await writeAll(a.conn, frame(1, "fragend:two"));
    const last = await a.read();
    assert.deepEqual([last?.opcode, last?.fin, text(last)], [0, true, "two"], "its last fragment");
    const news = await a.read();
    assert.deepEqual([news?.opcode, text(news)], [1, "news"], "then what was published meanwhile");
    a.conn.close();
    b.ws.close();
    await b.closed;
  }
});

async function fdOf(c: Client): Promise<number> {
  c.ws.send("fd");
  return Number(await nextSkippingJoins(c));
}

async function countOf(c: Client, topic: string): Promise<string> {
  c.ws.send(`count:${topic}`);
  return await withTimeout(nextSkippingJoins(c), "a count") as string;
}
