/**
 * Peer: `Deno.serve`, answering `hello` (a POST: its body's length); `/static/…` from the
 * `--root` directory (the file's stream as the body).
 *
 *   deno run --allow-net --allow-read bench/servers/deno_serve.ts [--host 127.0.0.1] [--port 0]
 *                                                              [--root DIR]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    root: { type: "string", default: "." },
  },
});
const hello = new TextEncoder().encode("hello");
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
Deno.serve({
  hostname: values.host,
  port: Number(values.port),
  onListen: ({ hostname, port }) => console.log(`listening ${hostname}:${port}`),
}, async (request) => {
  const path = new URL(request.url).pathname;
  if (path.startsWith("/static/")) {
    // A file as Deno's docs show it: opened, its stream as the body.
    const file = await Deno.open(`${values.root}${path}`);
    const { size } = await file.stat();
    return new Response(file.readable, { headers: { "content-length": String(size) } });
  }
  if (request.method === "POST") {
    return new Response(String((await request.arrayBuffer()).byteLength));
  }
  return new Response(hello);
});
