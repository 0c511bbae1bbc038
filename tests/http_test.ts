/**
 * HTTP/1.1 (`HttpServer`): real clients nobody here wrote (curl, Deno's fetch) for what users
 * do, and raw sockets for the wire itself — pipelining, every refusal rule, requests cut at
 * every byte, 100 Continue, keep-alive and close. In BASE and PROCESS mode.
 */
import assert from "node:assert/strict";
import { startFixture, treeModes, withTimeout } from "./_helpers.ts";
import type { Fixture } from "./_helpers.ts";
import { ResponseReader, writeAll } from "./_http.ts";

const script = new URL("./fixtures/http_server.ts", import.meta.url).pathname;

function http(options: Record<string, unknown> = {}): Promise<Fixture> {
  return startFixture(options, { script });
}

async function curl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("curl", { args: ["-sS", "--max-time", "20", ...args] })
    .output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

async function raw(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // Each write goes at once (no Nagle wait on the server's delayed ACK).
  conn.setNoDelay(true);
  return { conn, reader: new ResponseReader(conn) };
}

Deno.test("curl: a GET's query, fields and server variables; a form POST's fields", async () => {
  await using server = await http();
  const base = `http://127.0.0.1:${server.port}`;
  const get = await curl(
    "-H",
    "X-Two: a",
    "-H",
    "X-Two: b",
    "-b",
    "s=abc; t=%20x",
    `${base}/info?name=zig&n=1`,
  );
  assert.equal(get.code, 0, get.stderr);
  const info = JSON.parse(get.stdout);
  assert.equal(info.method, "GET");
  assert.deepEqual(info.get, { name: "zig", n: "1" });
  assert.equal(info.header.host, `127.0.0.1:${server.port}`);
  assert.equal(info.header["x-two"], "a, b", "repeated fields joined");
  assert.deepEqual(info.cookie, { s: "abc", t: " x" });
  assert.equal(info.protocol, "HTTP/1.1");
  assert.equal(info.server.requestMethod, "GET");
  assert.equal(info.server.requestUri, "/info");
  assert.equal(info.server.queryString, "name=zig&n=1");
  assert.equal(info.server.serverProtocol, "HTTP/1.1");
  assert.equal(info.server.remoteAddr, "127.0.0.1");
  assert.ok(info.server.remotePort > 0);
  assert.equal(info.server.serverPort, server.port);
  const post = await curl("-d", "a=1&b=two+words", `${base}/info`);
  assert.deepEqual(JSON.parse(post.stdout).post, { a: "1", b: "two words" });
});

Deno.test("curl: HEAD, chunked responses with a trailer, status, cookies, redirects, HTTP/1.0", async () => {
  await using server = await http();
  const base = `http://127.0.0.1:${server.port}`;
  const head = await curl("-I", `${base}/echo`);
  assert.match(head.stdout, /^HTTP\/1\.1 200 OK/);
  assert.match(head.stdout, /content-length: 0/i);
  const chunks = await curl("-v", `${base}/chunks?n=4`);
  assert.equal(chunks.stdout, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
  assert.match(chunks.stderr, /transfer-encoding: chunked/i);
  const notFound = await curl("-i", `${base}/status?code=404`);
  assert.match(notFound.stdout, /^HTTP\/1\.1 404 Not Found/);
  assert.match(notFound.stdout, /status 404$/);
  const cookies = await curl("-i", `${base}/cookie`);
  assert.match(cookies.stdout, /Set-Cookie: a=1; path=\//);
  assert.match(cookies.stdout, /Set-Cookie: b=x%20y; path=\/; HttpOnly; SameSite=Lax/);
  const redirected = await curl("-L", "-d", "moved", `${base}/redirect`);
  assert.equal(redirected.stdout, "", "a 302 after POST is followed with GET");
  const old = await curl("-0", "-i", `${base}/chunks?n=2`);
  assert.match(old.stdout, /^HTTP\/1\.0 200 OK/);
  assert.match(old.stdout, /Connection: close/);
  assert.ok(!/Transfer-Encoding/i.test(old.stdout), "no chunked coding for HTTP/1.0");
  assert.match(old.stdout, /chunk 0\nchunk 1\n$/);
});

Deno.test("curl: two requests on one kept-alive connection", async () => {
  await using server = await http();
  const base = `http://127.0.0.1:${server.port}`;
  const both = await curl("-v", `${base}/`, `${base}/echo`);
  assert.equal(both.code, 0, both.stderr);
  assert.match(both.stderr, /Re-using existing connection|Reusing existing/i);
  assert.equal(both.stdout, "hello");
});

Deno.test("fetch: bodies in and out — streamed (chunked) uploads, a large one, and errors as 500", async () => {
  await using server = await http();
  const base = `http://127.0.0.1:${server.port}`;
  const big = new Uint8Array(1536 * 1024).map((_, i) => i % 251);
  const echoed = await fetch(`${base}/echo`, { method: "PUT", body: big });
  assert.equal(echoed.status, 200);
  assert.equal(echoed.headers.get("x-method"), "PUT");
  assert.deepEqual(new Uint8Array(await echoed.arrayBuffer()), big);
  const parts = ["one ", "two ", "three"];
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const p of parts) controller.enqueue(new TextEncoder().encode(p));
      controller.close();
    },
  });
  const streamed = await fetch(`${base}/echo`, { method: "POST", body: stream });
  assert.equal(await streamed.text(), "one two three");
  for (const path of ["/throw", "/reject"]) {
    const failed = await fetch(`${base}${path}`);
    assert.equal(failed.status, 500, path);
    await failed.body?.cancel();
  }
  await server.waitForStderr(/the async handler failed/);
});

Deno.test("raw: pipelined requests, one with a body, answered in order even when the first is slow", async () => {
  await using server = await http();
  const { conn, reader } = await raw(server.port);
  try {
    await writeAll(
      conn,
      "GET /slow?ms=150 HTTP/1.1\r\nHost: x\r\n\r\n" +
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" +
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const texts = [];
    for (let i = 0; i < 4; i++) {
      texts.push((await withTimeout(reader.next(), `response ${i}`)).text);
    }
    assert.deepEqual(texts, ["slow", "hello", "abcde", "hello"]);
  } finally {
    conn.close();
  }
});

const refusals: [string, number, string][] = [
  ["a bare LF", 400, "GET / HTTP/1.1\nHost: x\n\n"],
  ["whitespace before a colon", 400, "GET / HTTP/1.1\r\nHost : x\r\n\r\n"],
  ["obs-fold", 400, "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n"],
  ["a control character", 400, "GET / HTTP/1.1\r\nHost: x\r\nA: b\x7fc\r\n\r\n"],
  [
    "Content-Length twice",
    400,
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab",
  ],
  [
    "a non-numeric Content-Length",
    400,
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x1\r\n\r\n",
  ],
  [
    "Content-Length with Transfer-Encoding",
    400,
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  ],
  [
    "Transfer-Encoding on HTTP/1.0",
    400,
    "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  ],
  [
    "Transfer-Encoding not ending in chunked",
    400,
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
  ],
  ["no Host on HTTP/1.1", 400, "GET / HTTP/1.1\r\n\r\n"],
  ["two Host fields", 400, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"],
  [
    "a bad chunk size",
    400,
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
  ],
  [
    "a chunk without its CRLF",
    400,
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
  ],
  ["an invalid version", 400, "GET / HTTP/1.x\r\nHost: x\r\n\r\n"],
  [
    "a bare CR (smuggling a Content-Length)",
    400,
    "POST / HTTP/1.1\r\nHost: x\rX\r\nContent-Length: 5\r\n\r\nhello",
  ],
  ["a Host that is not an authority", 400, "GET /public HTTP/1.1\r\nHost: x/admin#\r\n\r\n"],
  ["a fragment in the target", 400, "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n"],
  ["a target that is no path", 400, "GET admin HTTP/1.1\r\nHost: x\r\n\r\n"],
  ["HTTP/2.0", 505, "GET / HTTP/2.0\r\nHost: x\r\n\r\n"],
  [
    "a transfer coding other than chunked",
    501,
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
  ],
  [
    "a body over packageMaxLength",
    413,
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n",
  ],
  [
    "a chunked body over packageMaxLength",
    413,
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\n",
  ],
  [
    "a request target over httpMaxRequestTarget",
    414,
    `GET /${"a".repeat(600)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  ],
  [
    "a head over httpMaxHeaderSize",
    431,
    `GET / HTTP/1.1\r\nHost: x\r\nA: ${"b".repeat(2100)}\r\n\r\n`,
  ],
  [
    "more fields than httpMaxHeaders",
    431,
    `GET / HTTP/1.1\r\nHost: x\r\n${"A: b\r\n".repeat(20)}\r\n`,
  ],
];

for (const [name, options] of treeModes) {
  Deno.test(`raw (${name}): each refusal rule answers its status after the responses before it, then closes`, async () => {
    await using server = await http({
      ...options,
      packageMaxLength: 4096,
      httpMaxRequestTarget: 512,
      httpMaxHeaderSize: 2048,
      httpMaxHeaders: 16,
    });
    for (const [what, status, request] of refusals) {
      const { conn, reader } = await raw(server.port);
      try {
        // A good request first: its answer comes before the refusal.
        await writeAll(conn, "GET /slow?ms=20 HTTP/1.1\r\nHost: x\r\n\r\n" + request);
        const first = await withTimeout(reader.next(), `the response before ${what}`);
        assert.equal(first.text, "slow", what);
        const refused = await withTimeout(reader.next(), `the refusal of ${what}`);
        assert.equal(refused.status, status, what);
        assert.equal(refused.headers.get("connection"), "close", what);
        assert.ok(await withTimeout(reader.closed(), `the close after ${what}`), what);
      } finally {
        conn.close();
      }
    }
    const stats = await (await fetch(`http://127.0.0.1:${server.port}/info`)).json();
    assert.ok(stats.workerId >= 0);
  });

  Deno.test(`raw (${name}): pipelining and keep-alive across the tree's workers`, async () => {
    await using server = await http(options);
    const { conn, reader } = await raw(server.port);
    try {
      let batch = "";
      for (let i = 0; i < 20; i++) {
        batch += `GET /slow?ms=${(20 - i) % 3} HTTP/1.1\r\nHost: x\r\n\r\n`;
      }
      batch += "GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      await writeAll(conn, batch);
      for (let i = 0; i < 20; i++) {
        assert.equal((await withTimeout(reader.next(), `response ${i}`)).text, "slow");
      }
      const last = await reader.next();
      assert.equal(last.headers.get("connection"), "close");
      assert.ok(await withTimeout(reader.closed(), "the close after Connection: close"));
    } finally {
      conn.close();
    }
  });
}

Deno.test("raw: a request cut at every byte is parsed the same", async () => {
  await using server = await http();
  const request =
    "POST /echo?q=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n";
  const { conn, reader } = await raw(server.port);
  try {
    for (let cut = 1; cut < request.length; cut++) {
      await writeAll(conn, request.slice(0, cut));
      // Let the first part arrive alone.
      await new Promise((resolve) => setTimeout(resolve, 0));
      await writeAll(conn, request.slice(cut));
      const response = await withTimeout(reader.next(), `the response with a cut at ${cut}`);
      assert.equal(response.text, "wxyz", `cut at ${cut}`);
    }
  } finally {
    conn.close();
  }
});

Deno.test("raw: Expect: 100-continue gets 100 Continue before the body is sent", async () => {
  await using server = await http();
  const { conn, reader } = await raw(server.port);
  try {
    await writeAll(
      conn,
      "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    const interim = await withTimeout(reader.next(true), "100 Continue");
    assert.equal(interim.status, 100);
    await writeAll(conn, "body");
    assert.equal((await withTimeout(reader.next(), "the response")).text, "body");
    // HTTP/1.0 without keep-alive: the connection ends with the response.
    await writeAll(conn, "GET / HTTP/1.0\r\n\r\n");
    const old = await reader.next();
    assert.equal(old.version, "HTTP/1.0");
    assert.ok(await withTimeout(reader.closed(), "the close after an HTTP/1.0 response"));
  } finally {
    conn.close();
  }
});

for (const [name, options] of treeModes) {
  Deno.test(`raw (${name}): a head that does not come in time gets 408, so does a body that trickles; an idle kept-alive connection is closed`, async () => {
    await using server = await http({
      ...options,
      httpHeaderTimeout: 0.5,
      httpKeepAliveTimeout: 1,
    });
    // Slow headers: a part of a head, and nothing more.
    const slow = await raw(server.port);
    const idle = await raw(server.port);
    try {
      const sent = performance.now();
      await writeAll(slow.conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      const answer = await withTimeout(slow.reader.next(), "the 408");
      assert.equal(answer.status, 408);
      assert.equal(answer.headers.get("connection"), "close");
      assert.ok(performance.now() - sent >= 450, "not before the timeout");
      assert.ok(await withTimeout(slow.reader.closed(), "the close after 408"));
      // Keep-alive: one request, then silence; the server closes it after the idle timeout.
      await writeAll(idle.conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.equal((await withTimeout(idle.reader.next(), "the response")).text, "hello");
      const answered = performance.now();
      assert.ok(await withTimeout(idle.reader.closed(), "the idle close"));
      assert.ok(performance.now() - answered >= 900, "not before the keep-alive timeout");
      // A body that trickles: 10 bytes of 100,000, then nothing.
      const trickle = await raw(server.port);
      try {
        await writeAll(
          trickle.conn,
          "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789",
        );
        const refused = await withTimeout(trickle.reader.next(), "the 408 of a slow body");
        assert.equal(refused.status, 408);
        assert.ok(await withTimeout(trickle.reader.closed(), "the close after it"));
      } finally {
        trickle.conn.close();
      }
    } finally {
      slow.conn.close();
      idle.conn.close();
    }
  });
}

Deno.test("raw: a HEAD answered by writes keeps the connection; responses past socketBufferSize wait for room; a handler failing halfway ends the connection", async () => {
  await using server = await http({ socketBufferSize: 64 * 1024 });
  const { conn, reader } = await raw(server.port);
  try {
    await writeAll(
      conn,
      "HEAD /chunks?n=2 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const head = await withTimeout(reader.next(true), "the HEAD response");
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("transfer-encoding"), "chunked");
    assert.equal((await withTimeout(reader.next(), "the next response")).text, "hello");
    // Three responses of 1 MiB pipelined, each far past the output buffer: they wait for
    // room in turn, whole and in order.
    const n = 1024 * 1024;
    await writeAll(
      conn,
      `GET /big?n=${n} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(3) + "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const expected = new Uint8Array(n).map((_, i) => i % 251);
    for (let i = 0; i < 3; i++) {
      const big = await withTimeout(reader.next(), `big response ${i}`);
      assert.equal(big.body.length, n);
      assert.deepEqual(big.body, expected, `big response ${i} intact`);
    }
    assert.equal((await withTimeout(reader.next(), "the response after them")).text, "hello");
  } finally {
    conn.close();
  }
  // A handler that fails after it began: the connection ends (what was sent still goes) and
  // the request after it is not held.
  const failing = await raw(server.port);
  try {
    await writeAll(
      failing.conn,
      "GET /writethrow HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    const ended = (async () => {
      try {
        while (true) await failing.reader.next();
      } catch {
        return true;
      }
    })();
    assert.ok(await withTimeout(ended, "the end of the connection"));
  } finally {
    failing.conn.close();
  }
  assert.equal(await (await fetch(`http://127.0.0.1:${server.port}/`)).text(), "hello");
});

Deno.test("process mode: a worker that dies mid-request leaves its clients a 503; the other connections carry on", async () => {
  await using server = await http({ mode: "process", workerNum: 2, reactorNum: 1 });
  const { conn, reader } = await raw(server.port);
  try {
    await writeAll(conn, "GET /slow?ms=60000&dying=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    const started = await server.waitFor(
      (e) => e.event === "slow" && String(e.url).includes("dying"),
      "the slow request to start",
    );
    Deno.kill(started.pid as number, "SIGKILL");
    const answer = await withTimeout(reader.next(), "the 503");
    assert.equal(answer.status, 503);
    assert.equal(answer.headers.get("connection"), "close");
    assert.ok(await withTimeout(reader.closed(), "the close after the 503"));
    for (let i = 0; i < 4; i++) {
      assert.equal(await (await fetch(`http://127.0.0.1:${server.port}/`)).text(), "hello");
    }
  } finally {
    conn.close();
  }
});

for (const [name, options] of treeModes) {
  Deno.test(`raw (${name}): on shutdown a request in flight is answered, with Connection: close`, async () => {
    await using server = await http(options);
    const { conn, reader } = await raw(server.port);
    try {
      await writeAll(conn, "GET /slow?ms=400&last=1 HTTP/1.1\r\nHost: x\r\n\r\n");
      await server.waitFor(
        (e) => e.event === "slow" && String(e.url).includes("last"),
        "the request",
      );
      server.child.kill("SIGTERM");
      const answer = await withTimeout(reader.next(), "the answer during the shutdown");
      assert.equal(answer.text, "slow");
      assert.equal(answer.headers.get("connection"), "close");
      assert.ok(await withTimeout(reader.closed(), "the close after it"));
      assert.equal((await withTimeout(server.exited(), "the server to stop")).code, 0);
    } finally {
      conn.close();
    }
  });
}

Deno.test("process mode: kept-alive connections go on across a reload", async () => {
  await using server = await http({ mode: "process", workerNum: 2, reactorNum: 1 });
  const { conn, reader } = await raw(server.port);
  try {
    await writeAll(conn, "GET /info HTTP/1.1\r\nHost: x\r\n\r\n");
    const before = await withTimeout(reader.next(), "a response before the reload");
    const starts = server.events.filter((e) => e.event === "workerStart").length;
    server.child.kill("SIGUSR1");
    await server.waitFor(
      () => server.events.filter((e) => e.event === "workerStart").length >= starts + 2,
      "both workers replaced",
    );
    for (let i = 0; i < 4; i++) {
      await writeAll(conn, "GET /info HTTP/1.1\r\nHost: x\r\n\r\n");
      const after = await withTimeout(reader.next(), `response ${i} after the reload`);
      assert.equal(after.status, 200);
      assert.notEqual(after.headers.get("connection"), "close");
    }
    assert.equal(before.status, 200);
  } finally {
    conn.close();
  }
});

Deno.test("curl: a multipart upload's fields and files (written to uploadTmpDir, removed after the response)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using server = await http({ uploadTmpDir: dir, uploadMaxFilesize: 1000 });
    await Deno.writeTextFile(`${dir}/small.txt`, "file content\n");
    await Deno.writeTextFile(`${dir}/large.bin`, "x".repeat(2000));
    const out = await curl(
      "-F",
      "title=héllo",
      "-F",
      `doc=@${dir}/small.txt;type=text/plain`,
      "-F",
      `big=@${dir}/large.bin`,
      `http://127.0.0.1:${server.port}/upload`,
    );
    assert.equal(out.code, 0, out.stderr);
    const got = JSON.parse(out.stdout);
    assert.deepEqual(got.post, { title: "héllo" });
    assert.equal(got.files.doc.name, "small.txt");
    assert.equal(got.files.doc.type, "text/plain");
    assert.equal(got.files.doc.size, 13);
    assert.equal(got.files.doc.error, 0);
    assert.equal(got.files.doc.content, "file content\n");
    assert.ok(got.files.doc.tmpName.startsWith(`${dir}/`));
    assert.equal(got.files.big.error, 1, "over uploadMaxFilesize: not written");
    assert.equal(got.files.big.tmpName, "");
    assert.throws(() => Deno.statSync(got.files.doc.tmpName), "removed once the response ended");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("raw: at most httpMaxPipelined requests of a connection are in hand at once; the rest wait, none is lost", async () => {
  await using server = await http({ httpMaxPipelined: 4 });
  const { conn, reader } = await raw(server.port);
  try {
    await writeAll(conn, "GET /slow?ms=5 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(40));
    for (let i = 0; i < 40; i++) {
      assert.equal((await withTimeout(reader.next(), `response ${i}`)).text, "slow");
    }
    await writeAll(conn, "GET /maxrunning HTTP/1.1\r\nHost: x\r\n\r\n");
    const most = Number((await withTimeout(reader.next(), "the count")).text);
    assert.ok(most >= 2 && most <= 4, `at most 4 at once, and pipelined: ${most}`);
  } finally {
    conn.close();
  }
});
