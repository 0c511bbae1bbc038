/**
 * `res.detach()` and `HttpResponse.create(server, fd)`: a response answered later by the same
 * worker, or by a task worker; the connection's later requests wait for it, in order. BASE
 * (two workers, so the task's parts go by mail to the worker that got the request) and PROCESS.
 */
import assert from "node:assert/strict";
import { startFixture, withTimeout } from "./_helpers.ts";
import { ResponseReader, writeAll } from "./_http.ts";

const script = new URL("./fixtures/http_server.ts", import.meta.url).pathname;

for (
  const [mode, options] of [
    ["BASE", { workerNum: 2, taskWorkerNum: 1 }],
    ["PROCESS", { mode: "process", workerNum: 2, reactorNum: 1, taskWorkerNum: 1 }],
  ] as const
) {
  Deno.test(`detach (${mode}): a detached response written later, by the worker or by a task worker, in order`, async () => {
    await using server = await startFixture(options, { script });
    await server.waitFor((e) => e.event === "workerStart" && e.workerId === 0, "worker 0");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    conn.setNoDelay(true);
    const reader = new ResponseReader(conn);
    // (One detached response at a time on a connection: which created response answers which
    // is the order their parts arrive in, see src/http/detached.ts.)
    await writeAll(
      conn,
      "GET /detach?by=task HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none",
    );
    const task = await withTimeout(reader.next(), "the task's response");
    assert.equal(task.status, 202);
    assert.match(task.text, /^part from task \d+$/);
    assert.equal((await withTimeout(reader.next(), "echo one")).text, "one");
    await writeAll(
      conn,
      "GET /detach?by=timer HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo",
    );
    assert.match((await withTimeout(reader.next(), "the timer's")).text, /^part from timer \d+$/);
    assert.equal((await withTimeout(reader.next(), "echo two")).text, "two");
    // The connection goes on.
    await writeAll(conn, "GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthree");
    assert.equal((await withTimeout(reader.next(), "after")).text, "three");
    conn.close();
    const fetched = await fetch(`http://127.0.0.1:${server.port}/detach?by=task`);
    assert.match(await fetched.text(), /^part from task \d+$/);
    // A created response knows nothing of its request: HEAD and HTTP/1.0 are refused (the
    // fixture then throws: 500).
    const head = await fetch(`http://127.0.0.1:${server.port}/detach?by=task`, { method: "HEAD" });
    assert.equal(head.status, 500);
    await server.waitForStderr(/detach\(\) refused for a HEAD or HTTP\/1\.0 request/);
  });
}
