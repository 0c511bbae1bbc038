/**
 * Ziggurat's own echo server, in BASE mode (one reactor thread, callbacks on the main thread).
 *
 *   deno run -A bench/servers/ziggurat_echo.ts [--host 127.0.0.1] [--port 0]
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
  },
});

const server = new Server({
  host: values.host,
  port: Number(values.port),
  mode: "base",
  inlineReactor: values.reactor !== "thread",
});
server.on("start", (s) => console.log(`listening ${values.host}:${s.port}`));
server.on("receive", (s, sessionId, _reactorId, data) => {
  s.send(sessionId, data);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => server.shutdown());
}
await server.start();
