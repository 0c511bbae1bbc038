/**
 * The `ziggurat` command line: start a server (the demo echo server or your module), and list,
 * stop, reload, restart, inspect or read the logs of one that runs, found by its pid file or
 * its pid.
 *
 *   deno run -A cli.ts start [module] [--port P] [--workers N] [--config F] [--set K=V] …
 *   deno run -A cli.ts list | stop | reload [--task] | restart | stats [--json] | logs [-f]
 *   deno run -A cli.ts drain [--undo]
 *
 * A module given to `start` default-exports a function that receives the `Server` (built from
 * the flags) and registers its callbacks; it runs in every process of the tree, as the script
 * that calls `start()` always does.
 *
 * @example Run your module with four workers, then reload it and follow its log
 * ```sh
 * ziggurat start app.ts --workers 4 --daemonize --log-file app.log
 * ziggurat reload
 * ziggurat logs -f
 * ```
 * @module
 */

import { version } from "./src/version.ts";
import { Failure } from "./src/cli/args.ts";
import { start, startUsage } from "./src/cli/start.ts";
import { reload, reloadUsage, restart, restartUsage, stop, stopUsage } from "./src/cli/control.ts";
import { stats, statsUsage } from "./src/cli/stats.ts";
import { list, listUsage } from "./src/cli/list.ts";
import { logs, logsUsage } from "./src/cli/logs.ts";
import { drain, drainUsage } from "./src/cli/drain.ts";

const usage = `Usage: ziggurat <command> [options]

Commands:
  start    Run a server: the demo TCP echo server, or the module given
  list     The servers running from this directory (--all: every one)
  stop     Stop a running server (SIGTERM to its master), and wait until it is gone
  reload   Replace a running server's workers with new processes, and wait until they run
  restart  Stop a server running in the background and start it again
  stats    Print a running server's stats() and processes (--json for JSON)
  logs     Print a running server's log (-f: and follow it)
  drain    Take a running server out of a load balancer's rotation (--undo: put it back)

Run "ziggurat <command> --help" for a command's options, "ziggurat --version" for the version.`;

/** Every command: what runs it, and its help. */
const commands: Record<string, [(args: string[]) => number | Promise<number>, string]> = {
  start: [start, startUsage],
  list: [list, listUsage],
  stop: [stop, stopUsage],
  reload: [reload, reloadUsage],
  restart: [restart, restartUsage],
  stats: [stats, statsUsage],
  logs: [logs, logsUsage],
  drain: [drain, drainUsage],
};

/** Runs the CLI with `args`; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case undefined:
        console.error(usage);
        return 2;
      case "-h":
      case "--help":
      case "help":
        console.log(usage);
        return 0;
      case "--version":
      case "-V":
        console.log(`ziggurat ${version}`);
        return 0;
    }
    const found = Object.hasOwn(commands, command) ? commands[command] : undefined;
    if (!found) throw new Failure(`unknown command "${command}"\n\n${usage}`, 2);
    return await found[0](rest);
  } catch (error) {
    if (error instanceof Failure) {
      console.error(
        `ziggurat ${command ?? ""}: ${error.message}`.replace("ziggurat : ", "ziggurat: "),
      );
      return error.code;
    }
    console.error(`ziggurat ${command}: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
