/**
 * The `ziggurat` command line.
 *
 * `deno run --allow-ffi --allow-env --allow-read cli.ts start [--host H] [--port P]` runs the
 * demo TCP echo server until Ctrl-C or SIGTERM.
 * @module
 */

import { parseArgs } from "node:util";
import { Server } from "./mod.ts";

const usage = `Usage: ziggurat <command> [options]

Commands:
  start     Run the demo TCP echo server (until Ctrl-C or SIGTERM)

Options of start:
  --host H  Address to listen on (default 127.0.0.1)
  --port P  Port to listen on, 0 for any free one (default 9501)
  --workers N  Worker processes (default 1; more makes this process their manager)
  -h, --help  Show this help
`;

/** Runs the CLI with `args`; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        host: { type: "string", default: "127.0.0.1" },
        port: { type: "string", default: "9501" },
        workers: { type: "string", default: "1" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    console.error(`ziggurat: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  const [command] = parsed.positionals;
  if (parsed.values.help || command === undefined) {
    console.log(usage);
    return command === undefined && !parsed.values.help ? 2 : 0;
  }
  if (command !== "start") {
    console.error(`ziggurat: unknown command "${command}"\n\n${usage}`);
    return 2;
  }
  const port = Number(parsed.values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`ziggurat: --port must be a number from 0 to 65535, got "${parsed.values.port}"`);
    return 2;
  }
  const workerNum = Number(parsed.values.workers);
  if (!Number.isInteger(workerNum) || workerNum < 1 || workerNum > 1024) {
    console.error(
      `ziggurat: --workers must be a number from 1 to 1024, got "${parsed.values.workers}"`,
    );
    return 2;
  }
  const server = new Server({ host: parsed.values.host, port, workerNum });
  server.on("start", (s) => {
    const master = s.getMasterPid();
    console.log(
      `Ziggurat echo server listening on ${s.host}:${s.port} (pid ${master}, ${workerNum} worker(s))`,
    );
    console.log(`Try: nc ${s.host} ${s.port}   Stop: Ctrl-C, or kill ${master}`);
  });
  server.on("receive", (s, sessionId, _reactorId, data) => {
    s.send(sessionId, data);
  });
  const stop = () => server.shutdown();
  Deno.addSignalListener("SIGINT", stop);
  try {
    await server.start();
  } catch (error) {
    console.error(`ziggurat: ${(error as Error).message}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
  }
  // Workers run this script too; only the process that was started reports.
  if (server.getMasterPid() === Deno.pid) console.log("Ziggurat stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
