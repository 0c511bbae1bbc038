/**
 * Peer: `Deno.serve`, answering `hello` (a POST: its body's length).
 *
 *   deno run --allow-net bench/servers/deno_serve.ts [--host 127.0.0.1] [--port 0]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
  },
});
const hello = new TextEncoder().encode("hello");
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
Deno.serve({
  hostname: values.host,
  port: Number(values.port),
  onListen: ({ hostname, port }) => console.log(`listening ${hostname}:${port}`),
}, async (request) => {
  if (request.method === "POST") {
    return new Response(String((await request.arrayBuffer()).byteLength));
  }
  return new Response(hello);
});
