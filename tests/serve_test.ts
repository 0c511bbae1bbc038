/**
 * `serve()`, the `Deno.serve`-shaped tier: standard `Request`s in, any `Response` body out, the
 * handle (`addr`, `finished`, `shutdown()`, `signal`, `await using`), `onListen`, `onError`,
 * `info.remoteAddr` and `info.completed`, and the request's `signal` when the client goes away.
 * Deno's own `fetch` is the client.
 */
import assert from "node:assert/strict";
import { serve } from "../mod.ts";
import { withTimeout } from "./_helpers.ts";
import { ResponseReader, writeAll } from "./_http.ts";

Deno.test("serve: a handler from Request to Response, with every kind of body", async () => {
  const listened: number[] = [];
  let completed = 0;
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => listened.push(port),
  }, async (request, info) => {
    info.completed.then(() => completed++);
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/echo":
        return new Response(await request.arrayBuffer(), {
          headers: {
            "x-method": request.method,
            "x-type": request.headers.get("content-type") ?? "",
            "x-peer": info.remoteAddr.hostname,
          },
        });
      case "/bytes":
        return new Response(new Uint8Array([1, 2, 3]));
      case "/blob":
        return new Response(new Blob(["a blob"]), { status: 201, statusText: "Made" });
      case "/stream":
        return new Response(
          new ReadableStream({
            async pull(controller) {
              for (let i = 0; i < 5; i++) {
                controller.enqueue(new TextEncoder().encode(`part ${i};`));
                await new Promise((resolve) => setTimeout(resolve, 1));
              }
              controller.close();
            },
          }),
        );
      case "/cookies": {
        const headers = new Headers();
        headers.append("set-cookie", "a=1");
        headers.append("set-cookie", "b=2; HttpOnly");
        return new Response(null, { status: 204, headers });
      }
      case "/throw":
        throw new Error("handler failed");
      default:
        return new Response(`hello ${url.searchParams.get("name") ?? "world"}`);
    }
  });
  assert.equal(server.addr.hostname, "127.0.0.1");
  assert.ok(server.addr.port > 0);
  const base = `http://127.0.0.1:${server.addr.port}`;
  assert.equal(await (await fetch(`${base}/?name=zig`)).text(), "hello zig");
  assert.deepEqual(listened, [server.addr.port], "onListen once, with the bound port");
  const echo = await fetch(`${base}/echo`, {
    method: "POST",
    body: "x=1",
    headers: { "content-type": "text/plain" },
  });
  assert.equal(await echo.text(), "x=1");
  assert.equal(echo.headers.get("x-method"), "POST");
  assert.equal(echo.headers.get("x-type"), "text/plain");
  assert.equal(echo.headers.get("x-peer"), "127.0.0.1");
  assert.deepEqual(
    new Uint8Array(await (await fetch(`${base}/bytes`)).arrayBuffer()),
    new Uint8Array([1, 2, 3]),
  );
  const blob = await fetch(`${base}/blob`);
  assert.equal(blob.status, 201);
  assert.equal(await blob.text(), "a blob");
  assert.equal(await (await fetch(`${base}/stream`)).text(), "part 0;part 1;part 2;part 3;part 4;");
  const cookies = await fetch(`${base}/cookies`);
  assert.equal(cookies.status, 204);
  assert.deepEqual(cookies.headers.getSetCookie(), ["a=1", "b=2; HttpOnly"]);
  const failed = await fetch(`${base}/throw`);
  assert.equal(failed.status, 500);
  await failed.body?.cancel();
  assert.equal(server.server.stats().callbackErrorCount, 1, "the failure is counted");
  assert.ok(completed >= 7, "info.completed resolved for the answered requests");
});

Deno.test("serve: onError answers for a failing handler; shutdown() and signal end the server", async () => {
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    onError: (error) => new Response(`sorry: ${(error as Error).message}`, { status: 503 }),
  }, () => {
    throw new Error("nope");
  });
  const answer = await fetch(`http://127.0.0.1:${server.addr.port}/`);
  assert.equal(answer.status, 503);
  assert.equal(await answer.text(), "sorry: nope");
  await withTimeout(server.shutdown(), "shutdown()");
  await withTimeout(server.finished, "finished");
  const controller = new AbortController();
  const second = serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal },
    () => new Response("ok"),
  );
  assert.equal(await (await fetch(`http://127.0.0.1:${second.addr.port}/`)).text(), "ok");
  controller.abort();
  await withTimeout(second.finished, "finished after the signal");
});

Deno.test("serve: the request's signal aborts when the client goes away", async () => {
  const { promise: aborted, resolve } = Promise.withResolvers<string>();
  const { promise: waiting, resolve: arrived } = Promise.withResolvers<void>();
  await using server = serve({ hostname: "127.0.0.1", port: 0 }, (request) => {
    request.signal.addEventListener("abort", () => resolve(String(request.signal.reason)));
    arrived();
    return new Promise<Response>(() => {});
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  await writeAll(conn, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  await withTimeout(waiting, "the request to arrive");
  conn.close();
  assert.match(await withTimeout(aborted, "the abort"), /client closed/);
  // Another connection is served meanwhile.
  const other = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  await writeAll(other, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  void new ResponseReader(other);
  other.close();
});

Deno.test("serve: a streamed body far past socketBufferSize goes at the client's pace, whole", async () => {
  const chunk = new Uint8Array(64 * 1024).map((_, i) => i % 253);
  let produced = 0;
  await using server = serve(
    { hostname: "127.0.0.1", port: 0, socketBufferSize: 128 * 1024 },
    () =>
      new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (produced++ === 64) return controller.close();
            controller.enqueue(chunk);
          },
        }),
      ),
  );
  const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
  const body = new Uint8Array(await response.arrayBuffer());
  assert.equal(body.length, 64 * chunk.length);
  for (let i = 0; i < 64; i++) {
    assert.deepEqual(body.subarray(i * chunk.length, (i + 1) * chunk.length), chunk, `chunk ${i}`);
  }
});

Deno.test("serve: the Request is a whole standard one — headers, clone, body readers, new Request(req), fetch(req) to another server", async () => {
  const { lazyRequests } = await import("../src/http/serve_request.ts");
  assert.ok(lazyRequests, "this Deno's requests take the fast path (see serve_request.ts)");
  await using upstream = serve(
    { hostname: "127.0.0.1", port: 0 },
    async (request) =>
      new Response(
        `${request.method} ${new URL(request.url).pathname} ${
          request.headers.get("x-a")
        } ${await request.text()}${
          new URL(request.url).search === "?long" ? " long".repeat(200) : ""
        }`,
        { headers: { "content-type": "text/plain" } },
      ),
  );
  await using server = serve({ hostname: "127.0.0.1", port: 0 }, async (request) => {
    const url = new URL(request.url);
    if (url.pathname === "/proxy") {
      // A reverse proxy: the request itself, sent on.
      const forwarded = new Request(
        `http://127.0.0.1:${upstream.addr.port}/up${url.search}`,
        request,
      );
      return await fetch(forwarded);
    }
    if (url.pathname === "/form") {
      const form = await request.formData();
      return Response.json(Object.fromEntries(form));
    }
    const copy = request.clone();
    const derived = new Request(request.clone(), { headers: { "x-b": "2" } });
    const reader = copy.body?.getReader();
    const first = reader ? await reader.read() : undefined;
    return Response.json({
      isRequest: request instanceof Request,
      method: request.method,
      url: request.url,
      type: request.headers.get("Content-Type"),
      has: request.headers.has("X-A"),
      names: [...request.headers.keys()],
      derivedUrl: derived.url,
      derivedHeaders: [...derived.headers],
      firstChunk: first?.value ? new TextDecoder().decode(first.value) : null,
      json: request.method === "POST" ? await request.json() : null,
      used: request.bodyUsed,
      aborted: request.signal.aborted,
      redirect: request.redirect,
    });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const posted = await (await fetch(`${base}/p?q=1`, {
    method: "POST",
    headers: { "content-type": "application/json", "X-A": "1" },
    body: JSON.stringify({ n: 1 }),
  })).json();
  assert.equal(posted.isRequest, true);
  assert.equal(posted.method, "POST");
  assert.equal(posted.url, `${base}/p?q=1`);
  assert.equal(posted.type, "application/json");
  assert.equal(posted.has, true);
  assert.ok(posted.names.includes("x-a") && posted.names.includes("host"));
  assert.equal(posted.derivedUrl, `${base}/p?q=1`);
  assert.deepEqual(posted.derivedHeaders, [["x-b", "2"]]);
  assert.equal(posted.firstChunk, '{"n":1}', "the clone's body, as a stream");
  assert.deepEqual(posted.json, { n: 1 });
  assert.equal(posted.used, true);
  assert.equal(posted.aborted, false);
  assert.equal(posted.redirect, "follow");
  const got = await (await fetch(`${base}/g`)).json();
  assert.equal(got.firstChunk, null, "a GET has no body");
  assert.equal(got.used, false);
  const form = await (await fetch(`${base}/form`, {
    method: "POST",
    body: new URLSearchParams({ a: "1", b: "two" }),
  })).json();
  assert.deepEqual(form, { a: "1", b: "two" });
  const proxied = await fetch(`${base}/proxy`, {
    method: "PUT",
    headers: { "x-a": "7" },
    body: "payload",
  });
  assert.equal(await proxied.text(), "PUT /up 7 payload");
  // A compressed upstream answer, decoded by fetch, goes on with no stale Content-Encoding.
  const proxiedLong = await fetch(`${base}/proxy?long`, { method: "POST", body: "x" });
  assert.equal(await proxiedLong.text(), "POST /up null x" + " long".repeat(200));
});

Deno.test("serve: an onError that fails itself is not called again; the client gets 500", async () => {
  let calls = 0;
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    onError: () => {
      calls++;
      return Promise.reject(new Error("onError failed too"));
    },
  }, () => {
    throw new Error("handler failed");
  });
  const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
  assert.equal(response.status, 500);
  await response.body?.cancel();
  assert.equal(calls, 1);
});
