/**
 * Peer: a plain Deno echo server (`Deno.listen` + a `read`/`write` loop per connection).
 *
 *   deno run --allow-net bench/servers/deno_listen.ts [--host 127.0.0.1] [--port 0]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM or SIGINT.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
  },
});
const hostname = values.host;
const listener = Deno.listen({ hostname, port: Number(values.port), transport: "tcp" });

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => Deno.exit(0));
}
console.log(`listening ${hostname}:${listener.addr.port}`);

for await (const conn of listener) void echo(conn);

async function echo(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true); // like every other server in the suite
  const buffer = new Uint8Array(64 * 1024); // one per connection, reused for every read
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      // `write` may take only part of the chunk; the rest must go out before the next read
      // reuses the buffer.
      for (let off = 0; off < n;) off += await conn.write(buffer.subarray(off, n));
    }
  } catch {
    // The client went away mid-read or mid-write (reset): nothing to do but close.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}
