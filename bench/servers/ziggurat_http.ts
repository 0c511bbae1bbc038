/**
 * Ziggurat's HTTP servers for bench/http.ts: `HttpServer` (Swoole's `on("request")`) or, with
 * `--tier serve`, `serve()` (a `Request` → `Response` handler). Both answer `hello` to any
 * request and the body's length to a POST; with `--root DIR`, `/static/` is served from DIR by
 * the reactor's static handler.
 *
 *   deno run -A bench/servers/ziggurat_http.ts [--host 127.0.0.1] [--port 0] [--tier swoole|serve]
 *                                              [--mode base|process] [--workers N] [--reactors N]
 *                                              [--root DIR]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM.
 */
import { parseArgs } from "node:util";
import { HttpServer, serve } from "../../mod.ts";
import type { Mode } from "../../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    tier: { type: "string", default: "swoole" },
    mode: { type: "string", default: "base" },
    workers: { type: "string", default: "1" },
    reactors: { type: "string" },
    root: { type: "string" },
  },
});
const options = {
  port: Number(values.port),
  mode: values.mode as Mode,
  workerNum: Number(values.workers),
  ...(values.reactors ? { reactorNum: Number(values.reactors) } : {}),
  logLevel: "warning" as const,
  ...(values.root
    ? { enableStaticHandler: true, documentRoot: values.root, staticHandlerLocations: ["/static"] }
    : {}),
};
const hello = new TextEncoder().encode("hello");

if (values.tier === "serve") {
  serve({
    ...options,
    hostname: values.host,
    onListen: ({ hostname, port }) => console.log(`listening ${hostname}:${port}`),
  }, async (request) => {
    if (request.method === "POST") {
      return new Response(String((await request.arrayBuffer()).byteLength));
    }
    return new Response(hello);
  });
} else {
  const server = new HttpServer({ ...options, host: values.host });
  server.on("start", (s) => console.log(`listening ${s.host}:${s.port}`));
  server.on("request", (req, res) => {
    if (req.getMethod() === "POST") return void res.end(String(req.getContent().length));
    res.end(hello);
  });
  await server.start();
}
