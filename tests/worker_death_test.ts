/**
 * PROCESS mode under a kill storm: event workers die by SIGKILL again and again while every
 * connection does byte-verified echo. What a dead worker had handled is never lost or written
 * over; the one record in its hands closes its session (FIN after the replies already made);
 * no connection is left waiting.
 */
import assert from "node:assert/strict";
import {
  command,
  connect,
  readLine,
  readToEnd,
  startFixture,
  waitMs,
  withTimeout,
  workersStarted,
  writeAll,
} from "./_helpers.ts";

const encoder = new TextEncoder();

const killEveryMs = 300;

/**
 * `connections` clients each do round trips of a message of their own (id, sequence, bytes
 * that depend on both) and check every byte that comes back, while every 300 ms a random event
 * worker's newest process gets SIGKILL, for `stormMs`. A client whose session ends opens a new
 * one and goes on. Then every client finishes the round trip in hand.
 */
async function killStorm(
  options: Record<string, unknown>,
  { connections, stormMs, size, eof }: {
    connections: number;
    stormMs: number;
    size: (i: number, seq: number) => number;
    /** Messages end with "\n" and hold no other (EOF-split framing). */
    eof?: boolean;
  },
) {
  await using server = await startFixture(
    { mode: "process", workerNum: 2, ...options },
    { extra: { echoOnly: true } },
  );
  await workersStarted(server, 2);
  let stop = false;
  let roundTrips = 0;
  let closes = 0;
  const wrong: string[] = [];
  const client = async (i: number) => {
    let seq = 0;
    let conn = await connect(server.port);
    const buffer = new Uint8Array(64 * 1024);
    while (!stop) {
      seq++;
      const length = size(i, seq);
      const message = new Uint8Array(length);
      for (let k = 0; k < length; k++) message[k] = (i * 31 + seq * 17 + k * 13) & 0xff;
      if (eof) {
        for (let k = 0; k < length; k++) if (message[k] === 10) message[k] = 11;
        message[length - 1] = 10;
      }
      let got = 0;
      let ended = false;
      try {
        await writeAll(conn, message);
        while (got < length) {
          const n = await conn.read(buffer.subarray(0, Math.min(buffer.length, length - got)));
          if (n === null) {
            ended = true;
            break;
          }
          for (let k = 0; k < n; k++) {
            if (buffer[k] !== message[got + k]) {
              wrong.push(`connection ${i} message ${seq}: byte ${got + k} differs`);
              stop = true;
              return;
            }
          }
          got += n;
        }
      } catch (error) {
        // A reset would end the session too; the documented close is an orderly one.
        wrong.push(`connection ${i} message ${seq}: ${error}`);
        stop = true;
        return;
      }
      if (ended) {
        closes++;
        conn.close();
        conn = await connect(server.port);
        continue;
      }
      roundTrips++;
    }
    conn.close();
  };
  let done = 0;
  const clients = Array.from({ length: connections }, (_, i) => client(i).then(() => void done++));
  let kills = 0;
  const stormEnd = Date.now() + stormMs;
  while (Date.now() < stormEnd && !stop) {
    await new Promise((resolve) => setTimeout(resolve, killEveryMs));
    const id = Math.floor(Math.random() * 2);
    const starts = server.events.filter((e) => e.event === "workerStart" && e.workerId === id);
    try {
      Deno.kill(starts.at(-1)!.pid as number, "SIGKILL");
      kills++;
    } catch { /* it is dead already, its successor not yet started */ }
  }
  const duringStorm = roundTrips;
  stop = true;
  const finished = await withTimeout(
    Promise.all(clients).then(() => true),
    "every connection's last round trip after the storm",
    2 * waitMs,
  ).catch((error) => error as Error);
  console.log(`kill storm: ${kills} kills, ${duringStorm} round trips, ${closes} sessions closed`);
  if (finished !== true) {
    console.log(
      server.stderr().split("\n").filter((l) => !/exited abnormally/.test(l)).slice(-60).join("\n"),
    );
  }
  assert.deepEqual(wrong, [], "no wrong byte, no reset");
  assert.equal(finished, true, `${connections - done} of ${connections} connections stalled`);
  assert.ok(kills >= stormMs / killEveryMs / 3, `the storm killed ${kills} workers`);
  assert.ok(duringStorm > connections, `${duringStorm} round trips during the storm`);
  return { kills, closes };
}

Deno.test("process mode: a SIGKILL storm on the workers loses no reply, writes no wrong byte and stalls no connection", async () => {
  const { kills, closes } = await killStorm({ reactorNum: 2 }, {
    connections: 64,
    stormMs: 15_000,
    size: (i, seq) => 16 + ((i * 7919 + seq * 104729) % 3000),
  });
  // Only the record in a dead worker's hands closes a session: at most one per kill.
  assert.ok(closes <= kills, `${closes} sessions closed by ${kills} kills`);
});

Deno.test("process mode: messages in pieces across a SIGKILL storm arrive whole or close their session", async () => {
  // 256 KiB rings: messages of 100-400 KB cross them in pieces of 128 KiB. A successor that
  // gets the rest of a message whose start died with its predecessor closes the session.
  await killStorm({ reactorNum: 1, ringSize: 256 * 1024, openEofSplit: true, packageEof: "\n" }, {
    connections: 8,
    stormMs: 6_000,
    size: (i, seq) => 100_000 + ((i * 7919 + seq * 104729) % 300_000),
    eof: true,
  });
});

Deno.test("process mode: the session whose record a worker held when it died gets its earlier replies, then an orderly close; the others stay", async () => {
  await using server = await startFixture({ mode: "process", workerNum: 2, reactorNum: 1 });
  await workersStarted(server, 2);
  // dispatchMode 2 (fd modulo): find two connections that worker 0 serves. The others stay
  // open until then: closing one frees its fd, the next accept takes the same fd, and so the
  // same worker, again.
  const mine: Deno.TcpConn[] = [];
  const others: Deno.TcpConn[] = [];
  while (mine.length < 2) {
    assert.ok(others.length < 32, "fd modulo gives worker 0 a connection among the first 32");
    const conn = await connect(server.port);
    if ((await command(conn, "!whoami")).workerId === 0) mine.push(conn);
    else others.push(conn);
  }
  for (const conn of others) conn.close();
  const [victim, bystander] = mine;
  const worker = server.events.filter((e) => e.event === "workerStart" && e.workerId === 0).at(-1)!;
  // A reply made before the record in hand is written; then the worker blocks in `receive`.
  await victim.write(encoder.encode("before\n"));
  assert.equal(await withTimeout(readLine(victim), "the earlier reply"), "before");
  await victim.write(encoder.encode("!hold 60000\n"));
  await server.waitFor((e) => e.event === "holding", "the worker to hold the record");
  Deno.kill(worker.pid as number, "SIGKILL");
  // FIN, not a reset: the read ends with null.
  const rest = await withTimeout(readToEnd(victim), "the held session to close");
  assert.equal(rest.length, 0, "nothing after the earlier reply");
  await server.waitForStderr(/worker 0 died while handling it; closing it/);
  await server.waitFor(
    (e) => e.event === "workerStart" && e.workerId === 0 && e.pid !== worker.pid,
    "worker 0 respawned",
  );
  // The record is not delivered again, and the other session of the dead worker lives on.
  assert.equal((await command(bystander, "!whoami")).workerId, 0);
  assert.equal(server.events.filter((e) => e.event === "holding").length, 1);
  const stats = await command(bystander, "!stats");
  assert.equal(stats.abortCount, 0);
  victim.close();
  bystander.close();
});
