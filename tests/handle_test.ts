/**
 * The `Deno.serve`-style handle on `Server`: `addr`, `finished`, `shutdown()` as a promise,
 * the `signal` and `onListen` options, and `await using`. In-process one-worker servers, and a
 * tree from a fixture process for where `onListen` runs and how a signal stops it.
 */
import assert from "node:assert/strict";
import { Server } from "../mod.ts";
import { connect, readBytes, startFixture, withTimeout } from "./_helpers.ts";

const script = new URL("./fixtures/handle_server.ts", import.meta.url).pathname;

function echoServer(options: ConstructorParameters<typeof Server>[0] = {}): Server {
  const server = new Server({ host: "127.0.0.1", port: 0, logLevel: "warning", ...options });
  server.on("receive", (s, id, _r, data) => s.send(id, data));
  return server;
}

async function refused(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return false;
  } catch (error) {
    return error instanceof Deno.errors.ConnectionRefused;
  }
}

Deno.test("handle: onListen gets addr with the bound port; await shutdown() resolves once the port is closed, and finished with it", async () => {
  const listened = Promise.withResolvers<Deno.NetAddr>();
  const server = echoServer({ onListen: (addr) => listened.resolve(addr as Deno.NetAddr) });
  const started = server.start();
  const addr = await withTimeout(listened.promise, "onListen");
  assert.deepEqual(addr, { transport: "tcp", hostname: "127.0.0.1", port: server.port });
  assert.notEqual(addr.port, 0);
  assert.deepEqual(server.addr, addr);
  let finished = false;
  server.finished.then(() => finished = true);
  assert.equal(await refused(addr.port), false, "it listens");
  await server.shutdown();
  assert.ok(await refused(addr.port), "the port is closed once shutdown() resolves");
  await server.finished;
  assert.equal(finished, true);
  await started;
});

Deno.test("handle: a signal that aborts shuts the server down; one aborted before start stops it as soon as it listens", async () => {
  const controller = new AbortController();
  const listens: number[] = [];
  const listening = Promise.withResolvers<void>();
  const server = echoServer({
    signal: controller.signal,
    onListen: () => {
      listens.push(1);
      listening.resolve();
    },
  });
  server.start();
  await withTimeout(listening.promise, "onListen");
  controller.abort();
  await withTimeout(server.finished, "finished after abort");
  assert.deepEqual(listens, [1]);

  const aborted = AbortSignal.abort();
  const early = echoServer({ signal: aborted });
  await withTimeout(early.start(), "a start with an aborted signal to end");
});

Deno.test("handle: await using shuts the server down at the end of the block; shutdown() before start resolves at once", async () => {
  let port = 0;
  {
    await using server = echoServer();
    const listening = Promise.withResolvers<void>();
    server.on("start", () => listening.resolve());
    server.start();
    await withTimeout(listening.promise, "start");
    port = server.port;
    assert.equal(await refused(port), false);
  }
  assert.ok(await refused(port), "closed at the end of the block");
  await echoServer().shutdown();
});

Deno.test("handle: finished rejects with the start's error (a busy port), and no rejection goes unhandled", async () => {
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const server = echoServer({ port: (holder.addr as Deno.NetAddr).port });
    await assert.rejects(server.start(), Deno.errors.AddrInUse);
    await assert.rejects(server.finished, Deno.errors.AddrInUse);
    await server.shutdown();
  } finally {
    holder.close();
  }
});

Deno.test("handle: option checks for signal and onListen", () => {
  assert.throws(() => new Server({ signal: {} as AbortSignal }), /"signal" must be an AbortSignal/);
  assert.throws(
    () => new Server({ onListen: 1 as unknown as () => void }),
    /"onListen" must be a function/,
  );
});

Deno.test("handle (two BASE workers, by set()): onListen runs once, in the process that called start(); its signal stops the tree", async () => {
  await using server = await startFixture({}, { script, extra: { set: { workerNum: 2 } } });
  const listen = await server.waitFor((e) => e.event === "listen", "onListen");
  assert.equal(listen.pid, server.child.pid);
  assert.deepEqual(listen.addr, { transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await server.waitFor(
    () => server.events.filter((e) => e.event === "workerStart").length >= 2,
    "both workers",
  );
  server.child.kill("SIGHUP");
  await server.waitFor((e) => e.event === "finished", "finished");
  assert.equal((await server.exited()).code, 0);
  assert.equal(server.events.filter((e) => e.event === "listen").length, 1);
});

Deno.test("set(): a worker's role goes to the server whose final options it was spawned for, not to one built with them and set() to others", async () => {
  await using server = await startFixture({}, {
    script,
    extra: { set: { workerNum: 2 }, decoy: true },
  });
  await server.waitFor(
    () => server.events.filter((e) => e.event === "workerStart").length >= 2,
    "both workers",
  );
  for (const e of server.events.filter((e) => e.event === "workerStart")) {
    assert.equal(e.managerPid, server.child.pid, "each worker is the master's own");
  }
  await using conn = await connect(server.port);
  await conn.write(new TextEncoder().encode("ping"));
  assert.deepEqual(await readBytes(conn, 4), new TextEncoder().encode("ping"));
});

Deno.test("set(): options merged over the constructor's and checked the same way; they take effect; refused once started", async () => {
  const server = new Server({ host: "127.0.0.1", port: 0, logLevel: "warning" });
  assert.equal(server.set({ openEofSplit: true, packageEof: "\n" }), server);
  assert.equal(server.options.openEofSplit, true);
  assert.equal(server.options.host, "127.0.0.1", "the constructor's options stay");
  assert.throws(() => server.set({ workerNum: 0 }), /"workerNum"/);
  assert.throws(() => server.set({ nope: 1 } as never), /Unknown option "nope"/);
  assert.equal(server.options.workerNum, 1, "a refused set() changes nothing");
  const messages: string[] = [];
  const two = Promise.withResolvers<void>();
  server.on("receive", (_s, _id, _r, data) => {
    messages.push(new TextDecoder().decode(data as Uint8Array));
    if (messages.length === 2) two.resolve();
  });
  const listening = Promise.withResolvers<void>();
  server.on("start", () => listening.resolve());
  const started = server.start();
  await withTimeout(listening.promise, "start");
  assert.throws(() => server.set({ packageEof: "\r\n" }), Deno.errors.BadResource);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await conn.write(new TextEncoder().encode("one\ntwo\n"));
  await withTimeout(two.promise, "two messages");
  assert.deepEqual(messages, ["one\n", "two\n"], "split as set() asked");
  conn.close();
  await server.shutdown();
  await started;
});

Deno.test("types: a port's callbacks get the event's own argument types (a two-port app checks unannotated)", () => {
  const server = new Server({ host: "127.0.0.1", port: 0 });
  server.listen("127.0.0.1", 0).on("receive", (s, id, _reactorId, data) => {
    // (Each line fails `deno check` if the argument is typed `never`.)
    const typedServer: [typeof s] extends [never] ? "never" : "typed" = "typed";
    const typedData: [typeof data] extends [never] ? "never" : "typed" = "typed";
    s.send(id, data);
    return [typedServer, typedData];
  }).on("close", (s, id) => s.exists(id));
  assert.equal(typeof server.ports[0].callbacks.receive, "function");
});

Deno.test("handle: a start that fails and is not awaited is still reported (the process dies with the error)", async () => {
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const mod = new URL("../mod.ts", import.meta.url).href;
    const code = `import { Server } from "${mod}";
const s = new Server({ host: "127.0.0.1", port: ${(holder.addr as Deno.NetAddr).port} });
s.on("receive", () => {});
s.start();`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.notEqual(out.code, 0);
    assert.match(new TextDecoder().decode(out.stderr), /AddrInUse/);
  } finally {
    holder.close();
  }
});
