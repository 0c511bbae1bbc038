/**
 * Operations: reload and recycling under load, graceful shutdown with queued output, pid files.
 * Real processes, real sockets, real signals; the load comes from the benchmark's own load
 * generator (bench/native echo_load), built on first use.
 */
import assert from "node:assert/strict";
import { command, connect, startFixture, withTimeout, workersStarted } from "./_helpers.ts";

import { buildLoadGenerators, echoLoad } from "./_load.ts";

interface LoadResult {
  messages: number;
  errors: number;
  verified_bytes: number;
}

function startLoad(port: number, seconds: number, connections = 16) {
  return new Deno.Command(echoLoad, {
    args: [
      ...["--host", "127.0.0.1", "--port", String(port), "--connections", String(connections)],
      ...["--size", "64", "--duration", String(seconds), "--warmup", "0"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output().then((out) => {
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) throw new Error(`echo_load failed: ${new TextDecoder().decode(out.stderr)}`);
    return JSON.parse(text.trim().split("\n").at(-1)!) as LoadResult;
  });
}

Deno.test("process mode: a reload under load replaces every worker; no client sees an error or a drop", async () => {
  await buildLoadGenerators();
  await using server = await startFixture(
    { mode: "process", workerNum: 2, reactorNum: 1, taskWorkerNum: 1 },
    { extra: { echoOnly: true } },
  );
  const before = await workersStarted(server, 3);
  const load = startLoad(server.port, 4);
  // Reported below; a failure elsewhere must not leave it unhandled.
  load.catch(() => {});
  // Traffic flows: the reactor has read from every load connection.
  const probe = await connect(server.port);
  await probe.write(new Uint8Array([1]));
  await probe.read(new Uint8Array(1));
  probe.close();
  Deno.kill(server.pid, "SIGUSR1");
  await server.waitFor((e) => e.event === "beforeReload", "beforeReload");
  await server.waitFor((e) => e.event === "afterReload", "afterReload");
  // Every worker id starts again, in a new process.
  for (const id of [0, 1, 2]) {
    await server.waitFor(
      (e) => e.event === "workerStart" && e.workerId === id && e.pid !== before[id].pid,
      `the successor of worker ${id}`,
    );
  }
  assert.equal(server.events.filter((e) => e.event === "workerExit").length, 3);
  assert.equal(server.events.filter((e) => e.event === "workerError").length, 0);
  const result = await withTimeout(load, "the load generator");
  assert.equal(result.errors, 0, "no error, no wrong byte, no dropped connection");
  assert.ok(result.messages > 1000, `messages ${result.messages}`);
});

Deno.test("maxRequest 10: each worker leaves after 10 to 15 requests and its counter starts again", async () => {
  await using server = await startFixture({
    mode: "process",
    workerNum: 2,
    reactorNum: 1,
    maxRequest: 10,
    dispatchMode: 1,
  });
  await workersStarted(server, 2);
  const conn = await connect(server.port);
  const seen: { workerId: number; count: number; pid: number }[] = [];
  for (let i = 0; i < 80; i++) {
    const stats = await command(conn, "!stats");
    const who = await command(conn, "!whoami");
    seen.push({
      workerId: who.workerId as number,
      count: stats.workerRequestCount as number,
      pid: who.pid as number,
    });
  }
  conn.close();
  // Per worker process: the highest count it reported before it left.
  const highest = new Map<number, number>();
  for (const s of seen) highest.set(s.pid, Math.max(highest.get(s.pid) ?? 0, s.count));
  assert.ok(highest.size >= 4, `worker processes seen: ${highest.size}`);
  for (const [pid, count] of highest) assert.ok(count <= 15, `pid ${pid} handled ${count}`);
  assert.equal(server.events.filter((e) => e.event === "workerError").length, 0);
});

Deno.test("process mode: SIGTERM with 64 MiB queued delivers all of it before the exit; the pid file goes", async () => {
  const pidFile = await Deno.makeTempFile({ suffix: ".pid" });
  await Deno.remove(pidFile);
  const server = await startFixture({ mode: "process", workerNum: 1, reactorNum: 1, pidFile });
  await workersStarted(server, 1);
  assert.equal(Deno.readTextFileSync(pidFile).trim(), String(server.child.pid));
  const conn = await connect(server.port);
  const n = 64 * 1024 * 1024;
  // The worker sends 64 MiB at once (taken whole: one send below socketBufferSize's limit),
  // then the master is told to stop while almost all of it is still queued.
  await conn.write(new TextEncoder().encode(`!big ${n}\n`));
  const first = new Uint8Array(1);
  await conn.read(first);
  Deno.kill(server.child.pid, "SIGTERM");
  let got = 1;
  const buffer = new Uint8Array(1 << 20);
  let expected = 1;
  let intact = first[0] === 0;
  while (true) {
    const r = await conn.read(buffer);
    if (r === null) break;
    for (let i = 0; i < r && intact; i++) intact = buffer[i] === (expected + i) % 251;
    expected += r;
    got += r;
  }
  conn.close();
  assert.equal(got, n);
  assert.ok(intact, "every byte, in order");
  assert.equal((await withTimeout(server.exited(), "the master")).code, 0);
  assert.throws(() => Deno.statSync(pidFile), "the pid file is removed");
  await server[Symbol.asyncDispose]();
});

Deno.test({
  name: "user/group: workers run as the user given; the master keeps root",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    await using server = await startFixture({
      mode: "process",
      workerNum: 1,
      user: "nobody",
      group: "nogroup",
    });
    await workersStarted(server, 1);
    const conn = await connect(server.port);
    const who = await command(conn, "!whoami");
    conn.close();
    const nobody = Number(
      Deno.readTextFileSync("/etc/passwd").split("\n").find((l) => l.startsWith("nobody:"))!
        .split(":")[2],
    );
    assert.equal(who.uid, nobody);
    assert.notEqual(who.gid, 0);
    const status = Deno.readTextFileSync(`/proc/${server.child.pid}/status`);
    assert.match(status, /^Uid:\s+0\s/m, "the master still runs as root");
  },
});

Deno.test("stop(workerId) replaces that worker only", async () => {
  await using server = await startFixture({ mode: "process", workerNum: 2 });
  const before = await workersStarted(server, 2);
  const conn = await connect(server.port);
  assert.deepEqual(await command(conn, "!stop 1"), { ok: true });
  await server.waitFor(
    (e) => e.event === "workerStart" && e.workerId === 1 && e.pid !== before[1].pid,
    "worker 1's successor",
  );
  const starts = server.events.filter((e) => e.event === "workerStart" && e.workerId === 0);
  assert.equal(starts.length, 1, "worker 0 was left alone");
  assert.equal(server.events.filter((e) => e.event === "workerError").length, 0);
  conn.close();
});
