/**
 * Ziggurat's own echo server, in BASE mode: the reactor inline on the JS thread (default) or
 * on a native thread (`--reactor thread`); `--workers N` runs a manager and N worker processes
 * with SO_REUSEPORT sockets.
 *
 *   deno run -A bench/servers/ziggurat_echo.ts [--host 127.0.0.1] [--port 0] [--reactor thread]
 *     [--workers 2]
 *
 * Prints `listening <host>:<port>` once started; SIGTERM shuts it down and `start()` resolves.
 */
import { parseArgs } from "node:util";
import { Server } from "../../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    // "inline" (the default): the JS thread drives the reactor; "thread": a native reactor thread.
    reactor: { type: "string", default: "inline" },
    // More than one: a manager and that many worker processes, each binding with SO_REUSEPORT.
    workers: { type: "string", default: "1" },
  },
});

const server = new Server({
  host: values.host,
  port: Number(values.port),
  mode: "base",
  inlineReactor: values.reactor !== "thread",
  workerNum: Number(values.workers),
  enableReusePort: Number(values.workers) > 1,
});
server.on("start", (s) => console.log(`listening ${values.host}:${s.port}`));
server.on("receive", (s, sessionId, _reactorId, data) => {
  s.send(sessionId, data);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => server.shutdown());
}
await server.start();
