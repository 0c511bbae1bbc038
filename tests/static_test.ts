/**
 * Static files answered by the reactor (`enableStaticHandler`): curl and fetch for what users
 * do (files, index files, content types, conditional requests, ranges), raw sockets for the
 * wire (paths that climb out of the root, pipelining behind a worker's response, HTTP/1.0),
 * and the fault paths (symlinks out of the root, a FIFO, a missing root). BASE and PROCESS.
 */
import assert from "node:assert/strict";
import { treeModes, withTimeout } from "./_helpers.ts";
import type { Fixture } from "./_helpers.ts";
import { startFixture } from "./_helpers.ts";
import { ResponseReader, writeAll } from "./_http.ts";

const script = new URL("./fixtures/http_server.ts", import.meta.url).pathname;

/** A document root: index.html, static/{a.css,app.js,big.bin,in.css → a.css,out → /etc/passwd}, sub/index.html, docs/ (no index), a FIFO. */
async function makeRoot(): Promise<
  { root: string; big: Uint8Array; [Symbol.asyncDispose](): Promise<void> }
> {
  const root = await Deno.makeTempDir({ prefix: "zg-static-" });
  await Deno.mkdir(`${root}/static`);
  await Deno.mkdir(`${root}/sub`);
  await Deno.mkdir(`${root}/docs`);
  await Deno.writeTextFile(`${root}/index.html`, "<h1>home</h1>");
  await Deno.writeTextFile(`${root}/static/a.css`, "body { color: red }");
  await Deno.writeTextFile(`${root}/static/app.js`, "console.log(1)");
  await Deno.writeTextFile(`${root}/sub/index.html`, "sub home");
  await Deno.writeTextFile(`${root}/docs/readme.txt`, "read me");
  const big = new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) => (i * 7) % 253);
  await Deno.writeFile(`${root}/static/big.bin`, big);
  await Deno.symlink("a.css", `${root}/static/in.css`);
  await Deno.symlink("/etc/passwd", `${root}/static/out`);
  await Deno.symlink("../../", `${root}/static/up`);
  const mkfifo = await new Deno.Command("mkfifo", { args: [`${root}/static/pipe`] }).output();
  assert.equal(mkfifo.code, 0, "mkfifo");
  return {
    root,
    big,
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

function serve(root: string, options: Record<string, unknown> = {}): Promise<Fixture> {
  return startFixture({ enableStaticHandler: true, documentRoot: root, ...options }, { script });
}

async function curl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("curl", { args: ["-sS", "--max-time", "20", ...args] })
    .output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** The status, the headers (lower-case names) and the body of `curl -i` output. */
function parse(out: string): { status: number; headers: Map<string, string>; body: string } {
  const end = out.indexOf("\r\n\r\n");
  const lines = out.slice(0, end).split("\r\n");
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(lines[0].split(" ")[1]), headers, body: out.slice(end + 4) };
}

async function raw(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return { conn, reader: new ResponseReader(conn) };
}

for (const [mode, options] of treeModes) {
  Deno.test(`static (${mode}): files, index files, types, redirects to the slash, misses to the worker`, async () => {
    await using files = await makeRoot();
    await using server = await serve(files.root, options);
    const base = `http://127.0.0.1:${server.port}`;
    const home = parse((await curl("-i", `${base}/`)).stdout);
    assert.equal(home.status, 200);
    assert.equal(home.body, "<h1>home</h1>");
    assert.equal(home.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(home.headers.get("content-length"), "13");
    assert.equal(home.headers.get("accept-ranges"), "bytes");
    assert.match(home.headers.get("etag") ?? "", /^"[0-9a-f]+-d"$/);
    const stat = await Deno.stat(`${files.root}/index.html`);
    assert.equal(
      home.headers.get("last-modified"),
      new Date(Math.floor(stat.mtime!.getTime() / 1000) * 1000).toUTCString(),
    );
    assert.ok(home.headers.has("date"));
    const css = parse((await curl("-i", `${base}/static/a.css`)).stdout);
    assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
    assert.equal(css.body, "body { color: red }");
    const js = parse((await curl("-i", `${base}/static/app.js?v=3`)).stdout);
    assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(js.body, "console.log(1)", "the query does not name the file");
    const linked = parse((await curl("-i", `${base}/static/in.css`)).stdout);
    assert.equal(linked.body, "body { color: red }", "a symlink inside the root is followed");
    const slash = parse((await curl("-i", `${base}/sub?x=1`)).stdout);
    assert.equal(slash.status, 301);
    assert.equal(slash.headers.get("location"), "/sub/?x=1");
    assert.equal((await curl(`${base}/sub/`)).stdout, "sub home");
    assert.equal((await curl("-L", `${base}/sub`)).stdout, "sub home");
    // Not found, a directory without an index, a POST: the worker's ("hello").
    assert.equal((await curl(`${base}/nothing.txt`)).stdout, "hello");
    assert.equal((await curl(`${base}/docs/`)).stdout, "hello");
    assert.equal((await curl("-d", "x", `${base}/echo`)).stdout, "x");
    assert.equal((await curl("-X", "POST", `${base}/static/a.css`)).stdout, "hello");
    // HEAD: the head alone.
    const head = parse((await curl("-I", `${base}/static/big.bin`)).stdout);
    assert.equal(head.headers.get("content-length"), String(files.big.length));
    assert.equal(head.headers.get("content-type"), "application/octet-stream");
    // A large file, whole, through fetch.
    const response = await fetch(`${base}/static/big.bin`);
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), files.big);
  });

  Deno.test(`static (${mode}): ETag and If-Modified-Since give 304; ranges give 206 and 416`, async () => {
    await using files = await makeRoot();
    await using server = await serve(files.root, options);
    const url = `http://127.0.0.1:${server.port}/static/big.bin`;
    const first = await fetch(url, { method: "HEAD" });
    await first.body?.cancel();
    const etag = first.headers.get("etag")!;
    const modified = first.headers.get("last-modified")!;
    const match = await fetch(url, { headers: { "if-none-match": `"other", ${etag}` } });
    assert.equal(match.status, 304);
    assert.equal((await match.arrayBuffer()).byteLength, 0);
    const weak = await fetch(url, { headers: { "if-none-match": `W/${etag}` } });
    assert.equal(weak.status, 304, "If-None-Match compares weakly");
    await weak.body?.cancel();
    const since = await fetch(url, { headers: { "if-modified-since": modified } });
    assert.equal(since.status, 304);
    await since.body?.cancel();
    const older = await fetch(url, {
      headers: { "if-modified-since": "Thu, 01 Jan 1970 00:00:00 GMT" },
    });
    assert.equal(older.status, 200);
    await older.body?.cancel();
    const miss = await fetch(url, {
      headers: { "if-none-match": '"other"', "if-modified-since": modified },
    });
    assert.equal(miss.status, 200, "If-None-Match decides when both are there");
    await miss.body?.cancel();
    const part = await fetch(url, { headers: { range: "bytes=100-199" } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 100-199/${files.big.length}`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), files.big.subarray(100, 200));
    const tail = await fetch(url, { headers: { range: "bytes=-10" } });
    assert.deepEqual(
      new Uint8Array(await tail.arrayBuffer()),
      files.big.subarray(files.big.length - 10),
    );
    const open = await fetch(url, { headers: { range: `bytes=${files.big.length - 5}-` } });
    assert.equal((await open.arrayBuffer()).byteLength, 5);
    const beyond = await fetch(url, { headers: { range: `bytes=${files.big.length}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get("content-range"), `bytes */${files.big.length}`);
    await beyond.body?.cancel();
    const several = await fetch(url, { headers: { range: "bytes=0-1,5-6" } });
    assert.equal(several.status, 200, "several ranges: the whole file");
    assert.equal((await several.arrayBuffer()).byteLength, files.big.length);
    const stale = await fetch(url, { headers: { range: "bytes=0-9", "if-range": '"stale"' } });
    assert.equal(stale.status, 200, "If-Range that does not match: the whole file");
    await stale.body?.cancel();
    const fresh = await fetch(url, { headers: { range: "bytes=0-9", "if-range": etag } });
    assert.equal(fresh.status, 206);
    await fresh.body?.cancel();
    const curlRange = await curl("-r", "0-4", url);
    assert.deepEqual(new TextEncoder().encode(curlRange.stdout).length, 5);
  });

  Deno.test(`static (${mode}): no way out of the root — dot segments, encoded dots, symlinks out, a FIFO`, async () => {
    await using files = await makeRoot();
    await using server = await serve(files.root, options);
    for (
      const target of [
        "/../etc/passwd",
        "/static/../../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/static/%2E%2E%2F%2E%2E%2Fetc/passwd",
      ]
    ) {
      const { conn, reader } = await raw(server.port);
      await writeAll(conn, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const response = await withTimeout(reader.next(), target);
      assert.equal(response.status, 400, target);
      conn.close();
    }
    // A malformed escape or a NUL names no file: the application's (outside any location).
    for (const target of ["/a%00b", "/100%"]) {
      const { conn, reader } = await raw(server.port);
      await writeAll(conn, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal((await withTimeout(reader.next(), target)).text, "hello", target);
      conn.close();
    }
    // The slash redirect goes to the normalized path, never to another host.
    {
      const { conn, reader } = await raw(server.port);
      await writeAll(conn, "GET //evil.example/..%2Fsub?q HTTP/1.1\r\nHost: x\r\n\r\n");
      const moved = await withTimeout(reader.next(), "redirect");
      assert.equal(moved.status, 301);
      assert.equal(moved.headers.get("location"), "/sub/?q");
      // A long query and HTTP/1.0 keep-alive: the longest head the redirect writes.
      const query = "q".repeat(1500);
      await writeAll(conn, `GET /sub?${query} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`);
      const long = await withTimeout(reader.next(), "a long redirect");
      assert.equal(long.status, 301);
      assert.equal(long.headers.get("location"), `/sub/?${query}`);
      conn.close();
    }
    const base = `http://127.0.0.1:${server.port}`;
    // Outside any location, what is not served goes to the worker (which says "hello").
    assert.equal((await curl(`${base}/static/out`)).stdout, "hello", "a symlink out of the root");
    assert.equal((await curl(`${base}/static/up/`)).stdout, "hello", "a symlink to a parent");
    assert.equal(
      (await curl(`${base}/static/pipe`)).stdout,
      "hello",
      "a FIFO is not opened for reading",
    );
    assert.equal((await curl(`${base}/static/./a.css`)).stdout, "body { color: red }");
    assert.equal(
      (await curl("--path-as-is", `${base}/sub/../static/a.css`)).stdout,
      "body { color: red }",
    );
  });
}

for (const [mode, options] of treeModes) {
  Deno.test(`res.sendfile (${mode}): a file as the body, a part of it, HEAD, in order when pipelined; a missing file`, async () => {
    await using files = await makeRoot();
    // (No static handler: the worker answers every request.)
    await using server = await startFixture(options, { script });
    const base = `http://127.0.0.1:${server.port}/sendfile?path=${
      encodeURIComponent(`${files.root}/static/big.bin`)
    }`;
    const whole = await fetch(base);
    assert.equal(whole.headers.get("content-type"), "application/octet-stream");
    assert.equal(whole.headers.get("content-length"), String(files.big.length));
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), files.big);
    const part = await fetch(`${base}&offset=1000&length=5000`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), files.big.subarray(1000, 6000));
    const head = parse((await curl("-I", base)).stdout);
    assert.equal(head.headers.get("content-length"), String(files.big.length));
    const css = parse(
      (await curl("-i", `http://127.0.0.1:${server.port}/sendfile?path=${files.root}/static/a.css`))
        .stdout,
    );
    assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
    assert.equal(css.body, "body { color: red }");
    const missing = parse(
      (await curl("-i", `http://127.0.0.1:${server.port}/sendfile?path=/nonexistent`)).stdout,
    );
    assert.equal(missing.status, 404);
    assert.equal(missing.body, "no file");
    await server.waitForStderr(/sendfile: cannot send \/nonexistent/);
    const { conn, reader } = await raw(server.port);
    await writeAll(
      conn,
      "GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n" +
        `GET /sendfile?path=${files.root}/static/a.css HTTP/1.1\r\nHost: x\r\n\r\n` +
        "GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok",
    );
    assert.equal((await withTimeout(reader.next(), "slow")).text, "slow");
    assert.equal((await withTimeout(reader.next(), "file")).text, "body { color: red }");
    assert.equal((await withTimeout(reader.next(), "echo")).text, "ok");
    conn.close();
  });
}

Deno.test("static: under staticHandlerLocations a miss is 404, elsewhere it goes to the worker", async () => {
  await using files = await makeRoot();
  await using server = await serve(files.root, { staticHandlerLocations: ["/static", "/sub/"] });
  const base = `http://127.0.0.1:${server.port}`;
  const status = async (path: string) => {
    const out = await curl("-o", "/dev/null", "-w", "%{http_code}", `${base}${path}`);
    return Number(out.stdout);
  };
  assert.equal(await status("/static/a.css"), 200);
  assert.equal(await status("/static/missing.css"), 404);
  assert.equal(await status("/static/%zz"), 400, "a malformed escape under a location");
  assert.equal(await status("/static/out"), 404, "a symlink out of the root, under a location");
  assert.equal(await status("/sub/"), 200);
  assert.equal(
    (await curl(`${base}/index.html`)).stdout,
    "hello",
    "outside the locations: the worker",
  );
  assert.equal((await curl(`${base}/staticx`)).stdout, "hello", "a location is a whole segment");
});

Deno.test("static: in order behind a worker's slow response, pipelined, and HTTP/1.0 closes", async () => {
  await using files = await makeRoot();
  await using server = await serve(files.root);
  const { conn, reader } = await raw(server.port);
  await writeAll(
    conn,
    "GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n" +
      "GET /static/a.css HTTP/1.1\r\nHost: x\r\n\r\n" +
      "GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok" +
      "GET /static/app.js HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5),
  );
  assert.equal((await withTimeout(reader.next(), "slow")).text, "slow");
  assert.equal((await withTimeout(reader.next(), "css")).text, "body { color: red }");
  assert.equal((await withTimeout(reader.next(), "echo")).text, "ok");
  for (let i = 0; i < 5; i++) {
    assert.equal((await withTimeout(reader.next(), `js ${i}`)).text, "console.log(1)");
  }
  conn.close();
  const old = await raw(server.port);
  await writeAll(old.conn, "GET /static/a.css HTTP/1.0\r\n\r\n");
  const response = await withTimeout(old.reader.next(), "HTTP/1.0");
  assert.equal(response.headers.get("connection"), "close");
  assert.equal(response.text, "body { color: red }");
  assert.ok(await withTimeout(old.reader.closed(), "the close"));
  old.conn.close();
  const kept = await raw(server.port);
  await writeAll(kept.conn, "GET /static/a.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  assert.equal(
    (await withTimeout(kept.reader.next(), "1.0 keep-alive")).headers.get("connection"),
    "keep-alive",
  );
  await writeAll(kept.conn, "GET /static/app.js HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  assert.equal((await withTimeout(kept.reader.next(), "again")).text, "console.log(1)");
  kept.conn.close();
});

Deno.test("static: a client that pipelines big files and does not read holds a bounded output; others go on", async () => {
  await using files = await makeRoot();
  await using server = await serve(files.root);
  const { conn } = await raw(server.port);
  // 12 requests for 3 MiB each, never read: the server answers a few and waits.
  await writeAll(conn, "GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n".repeat(12));
  const base = `http://127.0.0.1:${server.port}`;
  assert.equal((await curl(`${base}/static/a.css`)).stdout, "body { color: red }");
  const stats = JSON.parse((await curl(`${base}/stats`)).stdout);
  assert.ok(stats.httpStaticCount <= 4, `answered ${stats.httpStaticCount} of the unread 12`);
  // Reading now, every one comes, whole and in order.
  const reader = new ResponseReader(conn);
  for (let i = 0; i < 12; i++) {
    const response = await withTimeout(reader.next(), `file ${i}`);
    assert.equal(response.body.length, files.big.length);
  }
  conn.close();
});

Deno.test("static: stats() counts requests, static answers and status classes", async () => {
  await using files = await makeRoot();
  await using server = await serve(files.root);
  const base = `http://127.0.0.1:${server.port}`;
  await curl(`${base}/static/a.css`);
  await curl(`${base}/sub`);
  await curl(`${base}/status?code=404`);
  await curl(`${base}/status?code=503`);
  const { conn, reader } = await raw(server.port);
  await writeAll(conn, "GET /%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal((await withTimeout(reader.next(), "400")).status, 400);
  conn.close();
  const stats = JSON.parse((await curl(`${base}/stats`)).stdout);
  assert.equal(stats.httpStaticCount, 3, "the file, the redirect and the path out of the root");
  assert.equal(stats.httpRequestCount, 6, "every request read, this one too");
  assert.equal(stats.http2xxCount, 1);
  assert.equal(stats.http3xxCount, 1);
  assert.equal(stats.http4xxCount, 2);
  assert.equal(stats.http5xxCount, 1);
  // The worker's own: the 404 and the 503 (the reactor answered the rest).
  assert.equal(stats.workerHttp2xxCount, 0);
  assert.equal(stats.workerHttp4xxCount, 1);
  assert.equal(stats.workerHttp5xxCount, 1);
});

Deno.test("static (PROCESS mode): the master's reactor counts its answers; stats() from a worker sums them", async () => {
  await using files = await makeRoot();
  await using server = await serve(files.root, { mode: "process", workerNum: 2, reactorNum: 1 });
  const base = `http://127.0.0.1:${server.port}`;
  for (const path of ["/static/a.css", "/static/app.js", "/sub", "/status?code=404"]) {
    await curl(base + path);
  }
  const stats = JSON.parse((await curl(`${base}/stats`)).stdout);
  assert.equal(stats.httpStaticCount, 3);
  assert.equal(stats.httpRequestCount, 5, "the /stats request too");
  assert.equal(stats.http2xxCount, 2);
  assert.equal(stats.http3xxCount, 1);
  assert.equal(stats.http4xxCount, 1);
});

Deno.test("stats: a second HTTP port counts its own requests and statuses", async () => {
  await using server = await startFixture({}, { script, extra: { httpPort: true } });
  const start = server.events.find((e) => e.event === "start")!;
  const second = `http://127.0.0.1:${start.httpPort}`;
  await curl(`${second}/status?code=404`);
  await curl(`${second}/echo`);
  await curl(`http://127.0.0.1:${server.port}/status?code=500`);
  const port = JSON.parse((await curl(`${second}/stats?port=2`)).stdout);
  assert.equal(port.httpRequestCount, 3, "the second port's: two and this one");
  assert.equal(port.http4xxCount, 1);
  assert.equal(port.http2xxCount, 1);
  assert.equal(port.http5xxCount, 0, "the 500 was the main port's");
  const all = JSON.parse((await curl(`${second}/stats`)).stdout);
  assert.equal(all.http5xxCount, 1);
  assert.equal(all.httpRequestCount, 5);
});

Deno.test("static: bad settings are refused — no root, a root that is not there, bad lists", async () => {
  const { HttpServer } = await import("../mod.ts");
  assert.throws(() => new HttpServer({ port: 0, enableStaticHandler: true }), /documentRoot/);
  assert.throws(
    () =>
      new HttpServer({
        port: 0,
        enableStaticHandler: true,
        documentRoot: "/tmp",
        staticHandlerLocations: ["static"],
      }),
    /staticHandlerLocations/,
  );
  assert.throws(
    () =>
      new HttpServer({
        port: 0,
        enableStaticHandler: true,
        documentRoot: "/tmp",
        httpIndexFiles: ["a/b.html"],
      }),
    /httpIndexFiles/,
  );
  const server = new HttpServer({
    host: "127.0.0.1",
    port: 0,
    enableStaticHandler: true,
    documentRoot: "/nonexistent/zg-root",
  });
  server.on("request", (_req, res) => res.end());
  await assert.rejects(server.start(), /documentRoot.*not found/);
});
