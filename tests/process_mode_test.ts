/**
 * PROCESS mode: the sockets live in the master's reactor threads; worker processes get events
 * through shared rings, by the dispatch mode. Real processes, real sockets, real signals.
 */
import assert from "node:assert/strict";
import {
  command,
  connect,
  readBytes,
  readLineOnly,
  startFixture,
  withTimeout,
  workersStarted,
  writeAll,
} from "./_helpers.ts";
import type { Fixture } from "./_helpers.ts";

const encoder = new TextEncoder();

async function whoami(conn: Deno.Conn): Promise<number> {
  return (await command(conn, "!whoami")).workerId as number;
}

async function tree(options: Record<string, unknown>): Promise<Fixture> {
  const server = await startFixture({ mode: "process", ...options });
  await workersStarted(server, (options.workerNum as number | undefined) ?? 1);
  return server;
}

for (const reactorNum of [1, 2]) {
  Deno.test(`process mode (reactorNum ${reactorNum}): workers echo, see every session, and report the master's counters`, async () => {
    await using server = await tree({ workerNum: 2, reactorNum });
    const conns = await Promise.all(Array.from({ length: 4 }, () => connect(server.port)));
    const connects = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        server.waitFor(
          (e) =>
            e.event === "connect" &&
            server.events.filter((x) => x.event === "connect").indexOf(e) === i,
          `connect ${i}`,
        )
      ),
    );
    const ids = connects.map((e) => e.sessionId as number);
    assert.equal(new Set(ids).size, 4);
    // Each session's reactor is (id - 1) % reactorNum, and the worker is not the master.
    for (const e of connects) {
      assert.equal(e.reactorId, ((e.sessionId as number) - 1) % reactorNum);
      assert.ok((e.workerId as number) >= 0);
    }
    for (const [i, conn] of conns.entries()) {
      const message = encoder.encode(`hello ${i}\n`.padEnd(300, "."));
      await writeAll(conn, message);
      assert.deepEqual(await readBytes(conn, message.length), message);
    }
    // Any worker answers for any session: they live in the master, in the shared tables.
    for (const id of ids) {
      assert.deepEqual(await command(conns[0], `!exists ${id}`), { exists: true });
    }
    const info = await command(conns[1], "!info");
    assert.equal(info.remoteIp, "127.0.0.1");
    assert.equal(info.serverPort, server.port);
    const stats = await command(conns[2], "!stats");
    assert.equal(stats.connectionNum, 4);
    assert.ok((stats.acceptCount as number) >= 4);
    assert.equal(stats.workerNum, 2);
    for (const conn of conns) conn.close();
    for (const id of ids) {
      await server.waitFor((e) => e.event === "close" && e.sessionId === id, `close of ${id}`);
    }
  });
}

Deno.test("process mode, dispatch 1 (round-robin) over 4 workers: each gets exactly a quarter", async () => {
  await using server = await tree({ workerNum: 4, reactorNum: 1, dispatchMode: 1 });
  const conn = await connect(server.port);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 40; i++) counts[await whoami(conn)]++;
  assert.deepEqual(counts, [10, 10, 10, 10]);
  // Modes 1, 3 and 5 deliver no connect or close (Swoole's rule without enableUnsafeEvent).
  assert.equal(server.events.filter((e) => e.event === "connect").length, 0);
  conn.close();
});

Deno.test("process mode, dispatch 2 (fd modulo): a connection stays on one worker", async () => {
  await using server = await tree({ workerNum: 3, reactorNum: 1, dispatchMode: 2 });
  const conns = await Promise.all(Array.from({ length: 6 }, () => connect(server.port)));
  const owners = new Set<number>();
  for (const conn of conns) {
    const first = await whoami(conn);
    for (let i = 0; i < 10; i++) assert.equal(await whoami(conn), first);
    owners.add(first);
    conn.close();
  }
  assert.ok(owners.size > 1, `six connections over three workers used ${owners.size} worker(s)`);
});

Deno.test("process mode, dispatch 5 (uid): after bind() a connection's data goes to uid % workerNum", async () => {
  await using server = await tree({ workerNum: 4, reactorNum: 1, dispatchMode: 5 });
  const conns = await Promise.all(Array.from({ length: 4 }, () => connect(server.port)));
  for (const [i, conn] of conns.entries()) {
    const before = await whoami(conn);
    assert.equal(await whoami(conn), before, "unbound: sticky by fd");
    const uid = 100 + i;
    assert.equal((await command(conn, `!bind ${uid}`)).ok, true);
    for (let k = 0; k < 5; k++) assert.equal(await whoami(conn), uid % 4);
    // Bound once: a second bind is refused and changes nothing.
    assert.equal((await command(conn, `!bind ${uid + 1}`)).ok, false);
    assert.equal(await whoami(conn), uid % 4);
    assert.equal((await command(conn, "!info")).uid, uid);
    conn.close();
  }
});

Deno.test("process mode: an 8 MiB message and 10,000 pipelined small ones come back whole and in order", async () => {
  await using server = await tree({ workerNum: 2, reactorNum: 1 });
  const conn = await connect(server.port);
  const big = new Uint8Array(8 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251;
  const small = encoder.encode(
    Array.from({ length: 10_000 }, (_, i) => `message ${i}\n`).join(""),
  );
  const expected = new Uint8Array(big.length + small.length);
  expected.set(big);
  expected.set(small, big.length);
  const [, echoed] = await Promise.all([
    writeAll(conn, expected),
    withTimeout(readBytes(conn, expected.length), "the echo"),
  ]);
  assert.equal(echoed.length, expected.length);
  assert.ok(echoed.every((b, i) => b === expected[i]), "the echo equals what was sent");
  conn.close();
});

Deno.test("process mode: a slow worker makes the sender wait and loses nothing", async () => {
  // Small rings fill fast: the reactor stops reading the connection, TCP pushes back.
  await using server = await tree({ workerNum: 1, reactorNum: 1, ringSize: 256 * 1024 });
  const conn = await connect(server.port);
  assert.deepEqual(await command(conn, "!slow 2"), { slowMs: 2 });
  const data = new Uint8Array(6 * 1024 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 13) % 241;
  const [, echoed] = await Promise.all([
    writeAll(conn, data),
    withTimeout(readBytes(conn, data.length), "the slow echo"),
  ]);
  assert.ok(echoed.every((b, i) => b === data[i]), "every byte came back, in order");
  const stats = await command(conn, "!stats");
  assert.equal(stats.sendDroppedCount, 0);
  conn.close();
});

Deno.test("process mode: SIGKILL of a worker under load closes at most the session in its hands; its successor serves the rest", async () => {
  await using server = await tree({ workerNum: 2, reactorNum: 1 });
  const conns = await Promise.all(Array.from({ length: 8 }, () => connect(server.port)));
  const owners = await Promise.all(conns.map(whoami));
  assert.ok(owners.includes(0) && owners.includes(1), `owners ${owners}`);
  const victim = server.events.find((e) => e.event === "workerStart" && e.workerId === 0)!;
  // Every connection streams echo traffic (writer and reader apart) while worker 0 dies.
  // The record in the dead worker's hands is not delivered again: its session is closed
  // (tests/worker_death_test.ts); every other connection lives on.
  let stop = false;
  const failures: string[] = [];
  const ended = new Set<number>();
  const received = conns.map(() => 0);
  const waiters: { i: number; above: number; resolve: () => void }[] = [];
  const message = encoder.encode("load".padEnd(1000, "-") + "\n");
  const traffic = conns.map(async (conn, i) => {
    const writer = (async () => {
      while (!stop) await writeAll(conn, message);
    })().catch((e) => stop || failures.push(`connection ${i} write: ${e}`));
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer).catch((e) => {
        if (!stop) failures.push(`connection ${i} read: ${e}`);
        return null;
      });
      if (n === null) {
        if (!stop) ended.add(i);
        break;
      }
      received[i] += n;
      for (const w of waiters.filter((w) => w.i === i && received[i] > w.above)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    await writer;
  });
  const moreThan = (i: number, above: number) =>
    received[i] > above ? Promise.resolve() : new Promise<void>((resolve) => {
      waiters.push({ i, above, resolve });
    });
  await withTimeout(Promise.all(conns.map((_, i) => moreThan(i, 64 * 1024))), "traffic on all");
  Deno.kill(victim.pid as number, "SIGKILL");
  const error = await server.waitFor((e) => e.event === "workerError", "workerError");
  assert.equal(error.signal, 9);
  assert.equal(error.workerId, 0);
  await server.waitFor(
    (e) => e.event === "workerStart" && e.workerId === 0 && e.pid !== victim.pid,
    "worker 0 respawned",
  );
  // After the respawn every connection, worker 0's included, gets echoes again.
  const marks = [...received];
  const living = conns.map((_, i) => i).filter((i) => !ended.has(i));
  await withTimeout(
    Promise.all(living.map((i) => moreThan(i, marks[i] + 64 * 1024))),
    "echoes on every connection after the respawn",
  );
  assert.deepEqual(failures, []);
  assert.ok(ended.size <= 1, `${ended.size} connections ended`);
  for (const i of ended) assert.equal(owners[i], 0, "only the dead worker's session closed");
  if (ended.size > 0) await server.waitFor((e) => e.event === "close", "the close event");
  assert.equal(
    server.events.filter((e) => e.event === "close").length,
    ended.size,
    "no other session closed",
  );
  const probe = await connect(server.port);
  const stats = await command(probe, "!stats");
  assert.equal(stats.connectionNum, 9 - ended.size);
  assert.equal(stats.abortCount, 0);
  assert.equal(stats.closeCount, ended.size);
  probe.close();
  stop = true;
  for (const conn of conns) conn.close();
  await Promise.allSettled(traffic);
});

Deno.test("process mode: shutdown stops the tree; no process remains and the port is free", async () => {
  const server = await tree({ workerNum: 2, reactorNum: 2 });
  const conn = await connect(server.port);
  assert.equal((await command(conn, "!whoami")).managerPid, server.pid);
  const pids = server.events.filter((e) => e.event === "workerStart").map((e) => e.pid as number);
  await conn.write(encoder.encode("!shutdown\n"));
  const status = await withTimeout(server.exited(), "the master to exit");
  assert.equal(status.code, 0);
  assert.ok(server.events.some((e) => e.event === "shutdown"));
  for (const pid of pids) {
    assert.throws(() => Deno.kill(pid, "SIGCONT"), "worker " + pid + " is gone");
  }
  // The master's listening socket is closed: the port can be bound again.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: server.port });
  listener.close();
  conn.close();
  await server[Symbol.asyncDispose]();
});

Deno.test("process mode: SIGTERM before the workers attach still stops each of them cleanly", async () => {
  // `start` comes once the workers are spawned, before they have attached to their rings: a
  // worker that attaches after the reactors shut down still finds `shutdown` and `stopped`.
  await using server = await startFixture({ mode: "process", workerNum: 2, reactorNum: 1 });
  server.child.kill("SIGTERM");
  const status = await withTimeout(server.exited(), "the master to exit");
  assert.equal(status.code, 0);
  assert.doesNotMatch(server.stderr(), /SIGKILL/, "no worker had to be killed");
  assert.ok(server.events.some((e) => e.event === "shutdown"));
});

Deno.test("process mode, maxQueuedBytes: a session whose worker is behind is not read past the limit; nothing is lost", async () => {
  const max = 64 * 1024;
  await using server = await tree({ workerNum: 1, reactorNum: 1, maxQueuedBytes: max });
  const conn = await connect(server.port);
  const hold = "!hold 1500\n";
  await writeAll(conn, encoder.encode(hold));
  await server.waitFor((e) => e.event === "holding", "the worker to hold");
  // 1 MiB while the worker is busy: the reactor reads up to the limit (plus one read), and
  // the rest waits in the kernel.
  const payload = new Uint8Array(1024 * 1024).fill(0x78);
  const writing = writeAll(conn, payload);
  const report = JSON.parse(await readLineOnly(conn));
  assert.ok(report.recvQueuedBytes >= max, `held at ${report.recvQueuedBytes}, not before`);
  assert.ok(report.recvQueuedBytes <= hold.length + max + 64 * 1024, `${report.recvQueuedBytes}`);
  assert.ok(report.totalRecvBytes <= hold.length + max + 64 * 1024, `${report.totalRecvBytes}`);
  // Once the worker catches up, reading goes on: every byte comes back.
  const echoed = await readBytes(conn, payload.length);
  await writing;
  assert.ok(echoed.every((b) => b === 0x78));
  const info = await command(conn, "!info");
  assert.equal(info.recvQueuedBytes, "!info\n".length, "only the record in hand is queued");
  conn.close();
});

Deno.test("process mode, maxQueuedBytes: a session held by a worker that leaves is read again under its successor", async () => {
  const max = 64 * 1024;
  await using server = await tree({ workerNum: 2, reactorNum: 1, maxQueuedBytes: max });
  const conn = await connect(server.port);
  const { workerId } = await command(conn, "!stall");
  // Its worker takes every receive into a promise that never settles: the count stays, and the
  // reactor holds the session at the limit with the rest of the 1 MiB in the kernel.
  const payload = new Uint8Array(1024 * 1024).fill(0x78);
  const writing = writeAll(conn, payload);
  const control = await connect(server.port);
  // The bytes the server read from `conn` (the server's total, less the control commands').
  let controlBytes = 0;
  const command2 = (line: string) => {
    controlBytes += line.length + 1;
    return command(control, line);
  };
  const fromConn = async () => ((await command2("!stats")).totalRecvBytes as number) - controlBytes;
  const stall = "!stall\n".length;
  while ((await fromConn()) < stall + max) {
    await new Promise((r) => setTimeout(r, 20)); // polling a counter, bounded below
  }
  assert.ok(
    (await fromConn()) < stall + payload.length,
    "the session is held, not read to the end",
  );
  // The worker leaves; its successor never heard of the stall, and the count starts again.
  assert.equal((await command2(`!stop ${workerId}`)).ok, true);
  await withTimeout(
    (async () => {
      while ((await fromConn()) < stall + payload.length) {
        await new Promise((r) => setTimeout(r, 20)); // polling a counter
      }
    })(),
    "the rest of the session to be read",
  );
  conn.close();
  await writing.catch(() => {});
  control.close();
});

Deno.test("process mode, dispatch 3 (idle worker): while one worker is busy, the others get the work", async () => {
  await using server = await tree({ workerNum: 3, reactorNum: 1, dispatchMode: 3 });
  const busy = await connect(server.port);
  const other = await connect(server.port);
  // The sleep occupies whichever worker takes it; meanwhile every request goes elsewhere.
  const sleeping = command(busy, "!sleep 1500");
  const seen: number[] = [];
  // The sleeper marks itself busy once its batch starts: wait until a request avoids it twice.
  for (let i = 0; i < 12; i++) seen.push(await whoami(other));
  const slept = await sleeping;
  const late = seen.slice(2);
  assert.ok(
    !late.includes(slept.workerId as number),
    `requests went to ${seen}, sleeper ${slept.workerId}`,
  );
  busy.close();
  other.close();
});

Deno.test("process mode, dispatch 3 under bursts: a busy worker is skipped while others are idle; every worker gets work, the slow ones less", async () => {
  const workerNum = 16;
  const slow = [0, 1];
  const server = await startFixture(
    { mode: "process", workerNum, reactorNum: 1, dispatchMode: 3 },
    // 50 ms a request: a burst of 24 keeps a slow worker busy for over a second.
    { extra: { served: { slow, ms: 50 } } },
  );
  await using _ = server;
  await workersStarted(server, workerNum);
  const requests = 24;
  const burst = encoder.encode("r\n".repeat(requests));
  const conns: Deno.TcpConn[] = [];
  const rounds: Promise<void>[] = [];
  /** A new client: all of its requests in one write (pipelined), then its replies. */
  const client = async () => {
    const conn = await connect(server.port);
    conns.push(conn);
    rounds.push((async () => {
      await writeAll(conn, burst);
      const buffer = new Uint8Array(4096);
      let lines = 0;
      while (lines < requests) {
        const n = await conn.read(buffer);
        assert.ok(n !== null, "the server closed the connection");
        lines += buffer.subarray(0, n).filter((byte) => byte === 0x0a).length;
      }
      assert.equal(lines, requests);
    })());
  };
  const serving = (id: number) =>
    server.events.some((e) => e.event === "serving" && e.workerId === id);
  try {
    // A burst for each worker; more, one at a time, until both slow workers are in theirs
    // (an idle worker that answered fast may take a second one first).
    for (let i = 0; i < workerNum; i++) await client();
    for (let extra = 0; !slow.every(serving); extra++) {
      assert.ok(extra < 64, "the slow workers get a burst among the first 80");
      await withTimeout(
        server.waitFor(
          () =>
            slow.every(serving) ||
            server.events.filter((e) => e.event === "served").length >=
              workerNum - slow.length + extra,
          "a worker to answer",
        ),
        "the first bursts",
      );
      if (!slow.every(serving)) await client();
    }
    // Now both slow workers are busy: the next bursts all go to the others.
    for (let i = 0; i < workerNum; i++) await client();
    await withTimeout(Promise.all(rounds), "every reply");
    const total = conns.length * requests;
    const served = new Array(workerNum).fill(0);
    const records = new Array(workerNum).fill(0);
    await server.waitFor(() => {
      served.fill(0);
      records.fill(0);
      for (const e of server.events) {
        if (e.event !== "served") continue;
        served[e.workerId as number] += e.lines as number;
        records[e.workerId as number]++;
      }
      return served.reduce((a, b) => a + b) === total;
    }, "every receive's event");
    assert.ok(served.every((n) => n > 0), `requests per worker: ${served}`);
    for (const id of slow) {
      assert.equal(records[id], 1, `a busy worker got more: bursts per worker ${records}`);
      assert.ok(served[id] < total / workerNum, `requests per worker: ${served}`);
    }
  } finally {
    for (const conn of conns) conn.close();
  }
});

Deno.test("process mode: send() in a tight loop is refused at socketBufferSize, counting what is still in the ring", async () => {
  await using server = await tree({ workerNum: 1, reactorNum: 1, socketBufferSize: 1024 * 1024 });
  await using conn = await connect(server.port);
  await conn.write(encoder.encode("!flood 268435456\n"));
  const flood = await server.waitFor((e) => e.event === "flood", "the flood to stop");
  const accepted = flood.accepted as number;
  assert.equal(flood.lastError, 1009);
  // The limit plus one send (64 KiB), not the limit plus a ring.
  assert.ok(accepted >= 1024 * 1024 && accepted <= 1024 * 1024 + 64 * 1024, `accepted ${accepted}`);
  const data = await withTimeout(readBytes(conn, accepted), "the flooded bytes");
  assert.equal(data.length, accepted);
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== i % 253) assert.fail(`byte ${i} is ${data[i]}, expected ${i % 253}`);
  }
});

for (const discardTimeoutRequest of [true, false]) {
  Deno.test(`process mode, dispatch 1, discardTimeoutRequest ${discardTimeoutRequest}: data of a session that closed before the worker got to it is ${discardTimeoutRequest ? "dropped and counted" : "delivered"}`, async () => {
    await using server = await tree({
      workerNum: 1,
      reactorNum: 1,
      dispatchMode: 1,
      discardTimeoutRequest,
    });
    await using busy = await connect(server.port);
    // The one worker is busy for a second; meanwhile a client sends and leaves.
    const sleeping = command(busy, "!sleep 1000");
    await server.waitFor((e) => e.event === "sleeping", "the worker to be busy");
    const gone = await connect(server.port);
    await writeAll(gone, encoder.encode("late data"));
    gone.close();
    await sleeping;
    const stats = await command(busy, "!stats");
    assert.equal(stats.discardCount, discardTimeoutRequest ? 1 : 0);
    if (discardTimeoutRequest) {
      await server.waitForStderr(/dropped 9 bytes that arrived before it closed/);
    }
  });
}

Deno.test("process mode, dispatch 4 (IP hash): connections from one address share a worker, with connect and close", async () => {
  await using server = await tree({ workerNum: 3, reactorNum: 1, dispatchMode: 4 });
  const conns = await Promise.all(Array.from({ length: 5 }, () => connect(server.port)));
  const owners = new Set(await Promise.all(conns.map(whoami)));
  assert.equal(owners.size, 1, `127.0.0.1 went to workers ${[...owners]}`);
  const connects = server.events.filter((e) => e.event === "connect");
  assert.equal(connects.length, 5);
  assert.ok(connects.every((e) => owners.has(e.workerId as number)));
  for (const c of conns) c.close();
  await server.waitFor(
    () => server.events.filter((e) => e.event === "close").length === 5,
    "5 closes",
  );
});

Deno.test("process mode, dispatch 1 with enableUnsafeEvent: connect and close are delivered too", async () => {
  await using server = await tree({
    workerNum: 2,
    reactorNum: 1,
    dispatchMode: 1,
    enableUnsafeEvent: true,
  });
  const conn = await connect(server.port);
  const open = await server.waitFor((e) => e.event === "connect", "connect");
  await whoami(conn);
  conn.close();
  await server.waitFor((e) => e.event === "close" && e.sessionId === open.sessionId, "close");
});

Deno.test("process mode: a session id is never handed out again, even when the fd is", async () => {
  await using server = await tree({ workerNum: 2, reactorNum: 2 });
  const ids = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const conn = await connect(server.port);
    const info = await command(conn, "!info");
    assert.ok(!ids.has(info.sessionId as number), `id ${info.sessionId} came back`);
    ids.add(info.sessionId as number);
    conn.close();
    await server.waitFor((e) => e.event === "close" && e.sessionId === info.sessionId, "close");
  }
});

for (const reactorNum of [2, 3]) {
  Deno.test(`process mode (reactorNum ${reactorNum}): session ids follow the order of accept, from startSessionId + 1`, async () => {
    for (const startSessionId of [0, 1000]) {
      await using server = await tree({ workerNum: 2, reactorNum, startSessionId });
      const ids: number[] = [];
      const reactors = new Set<number>();
      for (let i = 0; i < 8; i++) {
        // One after the other: each is accepted before the next connects.
        const conn = await connect(server.port);
        const info = await command(conn, "!info");
        ids.push(info.sessionId as number);
        reactors.add(info.reactorId as number);
        conn.close();
      }
      assert.deepEqual(ids, Array.from({ length: 8 }, (_, i) => startSessionId + 1 + i));
      assert.equal(reactors.size, reactorNum, "every reactor thread owns some of them");
    }
  });
}

Deno.test("process mode: a send from a timer while the worker is parked and the ring is full still arrives", async () => {
  await using server = await tree({ workerNum: 1, reactorNum: 1, ringSize: 256 * 1024 });
  const conn = await connect(server.port);
  const n = 2 * 1024 * 1024;
  await writeAll(conn, encoder.encode(`!later ${n}\n`));
  const got = await withTimeout(readBytes(conn, n), "the timer's 2 MiB");
  assert.equal(got.length, n);
  assert.ok(got.every((b, i) => b === i % 251), "every byte, in order");
  conn.close();
});
