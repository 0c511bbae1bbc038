/**
 * Micro-benchmarks of the per-event FFI path: what one sync call, one park/yield and one
 * ring record cost from JavaScript.
 *
 *   scripts/deno bench --allow-all bench/ffi_bench.ts
 */
import { library, unwrap } from "../src/_ffi/library.ts";
import { layout } from "../src/_ffi/layout.ts";
import { Server } from "../mod.ts";

const lib = library();
const config = new Uint32Array(layout.serverConfigSize / 4);
config[0] = 64;
const handle = new BigUint64Array(1);
unwrap(lib.zg_server_create(config, handle), "create a server");
const server = Deno.UnsafePointer.create(handle[0]);
const port = new Uint32Array(1);
const host = new TextEncoder().encode("127.0.0.1");
unwrap(lib.zg_server_listen(server, host, BigInt(host.length), 0, 16, 0, port), "listen");
unwrap(lib.zg_server_start(server, 1), "start inline");

Deno.bench("sync FFI call: zg_session_state (once per send)", () => {
  lib.zg_session_state(server, 12345, 0);
});

Deno.bench(
  "sync FFI call: zg_server_poll on an idle reactor (once per batch: epoll_wait(0))",
  () => {
    lib.zg_server_poll(server);
  },
);

Deno.bench("nonblocking FFI round trip: await zg_yield() (once per park or yield)", async () => {
  await lib.zg_yield();
});

Deno.bench("Atomics.load of a ring position (once per batch)", () => {
  Atomics.load(ring, 0);
});
const ring = new Uint32Array(16);

// One message through the whole stack: client write → reactor → ring → receive callback →
// send → ring → reactor → client read, on loopback, in this process.
const echo = new Server({ host: "127.0.0.1", port: 0 });
echo.on("receive", (s, sessionId, _reactorId, data) => {
  s.send(sessionId, data);
});
const running = echo.start();
const conn = await Deno.connect({ hostname: "127.0.0.1", port: echo.port });
const message = new Uint8Array(64).fill(7);
const reply = new Uint8Array(64);

Deno.bench("echo round trip of 64 bytes through the server, one connection", async () => {
  await conn.write(message);
  let got = 0;
  while (got < 64) got += (await conn.read(reply.subarray(got)))!;
});

globalThis.addEventListener("unload", () => {
  conn.close();
  echo.shutdown();
  void running;
});
