/**
 * Ziggurat's own echo server. BASE mode (default): the reactor inline on the JS thread or on a
 * native thread (`--reactor thread`); `--workers N` runs a manager and N worker processes with
 * SO_REUSEPORT sockets. `--mode process`: the master's `--reactors R` reactor threads own the
 * sockets and `--workers N` worker processes echo through the shared rings.
 *
 *   deno run -A bench/servers/ziggurat_echo.ts [--host 127.0.0.1] [--port 0] [--reactor thread]
 *     [--workers 2] [--mode process] [--reactors 1]
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
    mode: { type: "string", default: "base" },
    reactors: { type: "string", default: "1" },
  },
});
const processMode = values.mode === "process";

const server = new Server({
  host: values.host,
  port: Number(values.port),
  mode: processMode ? "process" : "base",
  inlineReactor: values.reactor !== "thread",
  workerNum: Number(values.workers),
  enableReusePort: Number(values.workers) > 1 && !processMode,
  ...(processMode ? { reactorNum: Number(values.reactors) } : {}),
});
server.on("start", (s) => console.log(`listening ${values.host}:${s.port}`));
server.on("receive", (s, sessionId, _reactorId, data) => {
  s.send(sessionId, data);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => server.shutdown());
}
await server.start();
