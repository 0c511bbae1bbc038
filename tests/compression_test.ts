/**
 * Response compression (`httpCompression`): the coding follows the client's Accept-Encoding
 * (q-values, then br, gzip, deflate); only compressible types, only bodies long enough, never
 * for HEAD or a body already encoded; a body written in chunks is compressed as it goes; Vary
 * says the response depends on it. Real clients (curl --compressed, fetch) decode what is sent.
 */
import assert from "node:assert/strict";
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import { startFixture, withTimeout } from "./_helpers.ts";
import type { Fixture } from "./_helpers.ts";
import { ResponseReader, writeAll } from "./_http.ts";

const script = new URL("./fixtures/http_server.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

function http(options: Record<string, unknown> = {}): Promise<Fixture> {
  return startFixture(options, { script });
}

/** One request with `Accept-Encoding: accept` (none when undefined) over a raw socket. */
async function get(port: number, path: string, accept?: string, method = "GET") {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  try {
    const reader = new ResponseReader(conn);
    const field = accept === undefined ? "" : `Accept-Encoding: ${accept}\r\n`;
    await writeAll(conn, `${method} ${path} HTTP/1.1\r\nHost: x\r\n${field}\r\n`);
    return await withTimeout(reader.next(method === "HEAD"), `${method} ${path}`);
  } finally {
    conn.close();
  }
}

const words = (n: number) => "word ".repeat(n);

Deno.test("compression: the coding the client prefers, decoded to the same body", async () => {
  await using server = await http();
  const cases: [string | undefined, string | undefined, (b: Uint8Array) => Uint8Array][] = [
    ["gzip, deflate, br", "br", (b) => brotliDecompressSync(b)],
    ["gzip", "gzip", (b) => gunzipSync(b)],
    ["deflate", "deflate", (b) => inflateSync(b)],
    ["br;q=0, gzip;q=0.5, deflate;q=0.4", "gzip", (b) => gunzipSync(b)],
    ["*", "br", (b) => brotliDecompressSync(b)],
    ["x-gzip", "gzip", (b) => gunzipSync(b)],
    ["identity", undefined, (b) => b],
    ["gzip;q=0, deflate;q=0, br;q=0", undefined, (b) => b],
    [undefined, undefined, (b) => b],
  ];
  for (const [accept, coding, decode] of cases) {
    const response = await get(server.port, "/text?n=2000", accept);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-encoding"), coding, `Accept-Encoding: ${accept}`);
    assert.equal(response.headers.get("vary"), "Accept-Encoding", `Accept-Encoding: ${accept}`);
    assert.equal(Number(response.headers.get("content-length")), response.body.length);
    if (coding) assert.ok(response.body.length < 1000, "smaller than the 10,000 bytes");
    assert.equal(decoder.decode(decode(response.body)), words(2000));
  }
});

Deno.test("compression: not for short bodies, other types, HEAD, an encoded body, or when off", async () => {
  await using server = await http();
  const short = await get(server.port, "/text?n=3", "gzip");
  assert.equal(short.headers.get("content-encoding"), undefined, "under httpCompressionMinLength");
  assert.equal(short.text, words(3));
  const events = await get(server.port, "/text?n=2000&type=text/event-stream", "gzip");
  assert.equal(events.headers.get("content-encoding"), undefined, "text/event-stream");
  const image = await get(server.port, "/text?n=2000&type=image/png", "gzip");
  assert.equal(image.headers.get("content-encoding"), undefined, "image/png");
  assert.equal(image.headers.get("vary"), undefined);
  const json = await get(server.port, "/text?n=2000&type=application%2Fjson", "gzip");
  assert.equal(json.headers.get("content-encoding"), "gzip", "application/json");
  const head = await get(server.port, "/text?n=2000", "gzip", "HEAD");
  assert.equal(head.headers.get("content-encoding"), undefined, "never for HEAD");
  assert.equal(head.body.length, 0);
  const tagged = await get(server.port, "/text?n=2000&etag", "gzip");
  assert.equal(tagged.headers.get("etag"), 'W/"v1"', "a compressed body's ETag is weak");
  assert.equal((await get(server.port, "/text?n=2000&etag")).headers.get("etag"), '"v1"');
  const encoded = await get(server.port, "/text?n=2000&encoded", "gzip");
  assert.equal(encoded.headers.get("content-encoding"), "identity", "the handler's own");
  assert.equal(encoded.text, words(2000));
  const noType = await get(server.port, "/big?n=5000", "gzip");
  assert.equal(noType.headers.get("content-encoding"), undefined, "no content type");
  await using off = await http({ httpCompression: false });
  const plain = await get(off.port, "/text?n=2000", "gzip");
  assert.equal(plain.headers.get("content-encoding"), undefined, "httpCompression: false");
  await using only = await http({ httpCompressionTypes: ["image/png"], httpCompressionLevel: 9 });
  assert.equal(
    (await get(only.port, "/text?n=2000", "gzip")).headers.get("content-encoding"),
    undefined,
  );
  const png = await get(only.port, "/text?n=2000&type=image/png", "gzip");
  assert.equal(png.headers.get("content-encoding"), "gzip", "httpCompressionTypes");
  assert.equal(decoder.decode(gunzipSync(png.body)), words(2000));
});

Deno.test("compression: a body written in chunks goes gzip or deflate as it is written; br-only clients get it plain", async () => {
  await using server = await http();
  const expected =
    Array.from({ length: 40 }, (_, i) => `chunk ${i} ${"word ".repeat(50)}\n`).join("") + "the end";
  for (
    const [accept, coding, decode] of [
      ["gzip, deflate, br", "gzip", (b: Uint8Array) => gunzipSync(b)],
      ["deflate", "deflate", (b: Uint8Array) => inflateSync(b)],
      ["br", undefined, (b: Uint8Array) => b],
    ] as const
  ) {
    const response = await get(server.port, "/textstream?n=40&last=the%20end", accept);
    assert.equal(response.headers.get("transfer-encoding"), "chunked");
    assert.equal(response.headers.get("content-encoding"), coding, accept);
    assert.equal(response.headers.get("vary"), "Accept-Encoding");
    if (coding) assert.ok(response.body.length < expected.length / 4, "compressed");
    assert.equal(decoder.decode(decode(response.body)), expected, accept);
  }
  const url = `http://127.0.0.1:${server.port}/textstream?n=40&last=the%20end`;
  assert.equal(await (await fetch(url)).text(), expected, "fetch decodes it");
  const out = await new Deno.Command("curl", { args: ["-sS", "--compressed", url] }).output();
  assert.equal(decoder.decode(out.stdout), expected, "curl decodes it");
  // HTTP/1.0: no chunks; the body ends with the connection.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await writeAll(conn, "GET /textstream?n=3 HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
  const old = await withTimeout(new ResponseReader(conn).next(), "HTTP/1.0");
  conn.close();
  assert.equal(old.headers.get("content-encoding"), "gzip");
  assert.equal(
    decoder.decode(gunzipSync(old.body)),
    Array.from({ length: 3 }, (_, i) => `chunk ${i} ${"word ".repeat(50)}\n`).join(""),
  );
});

Deno.test("compression: curl --compressed and fetch decode it", async () => {
  await using server = await http();
  const url = `http://127.0.0.1:${server.port}/text?n=5000`;
  const out = await new Deno.Command("curl", { args: ["-sS", "--compressed", "-D", "-", url] })
    .output();
  const text = decoder.decode(out.stdout);
  assert.match(text, /content-encoding: (br|gzip|deflate)/i);
  assert.ok(text.endsWith(words(5000)));
  const response = await fetch(url);
  assert.equal(await response.text(), words(5000));
});

Deno.test("compression: options are checked", async () => {
  const { HttpServer } = await import("../mod.ts");
  assert.throws(
    () => new HttpServer({ port: 0, httpCompressionLevel: 10 }),
    /httpCompressionLevel/,
  );
  assert.throws(
    () => new HttpServer({ port: 0, httpCompressionTypes: ["text"] }),
    /httpCompressionTypes/,
  );
});

Deno.test("compression: the gzip trailer's CRC-32 is the standard one", async () => {
  const { crc32 } = await import("../src/http/compression.ts");
  const { crc32: zlibCrc } = await import("node:zlib");
  const text = new TextEncoder().encode("The quick brown fox jumps over the lazy dog");
  assert.equal(crc32(text), 0x414fa339);
  const big = new Uint8Array(100_000).map((_, i) => (i * 31) % 256);
  assert.equal(crc32(big.subarray(50_000), crc32(big.subarray(0, 50_000))), zlibCrc(big) >>> 0);
});
