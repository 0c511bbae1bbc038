/**
 * The `ziggurat` command line: start a server (the demo echo server or your module), and stop,
 * reload or inspect one that runs, found by its pid file.
 *
 *   deno run -A cli.ts start [module] [--port P] [--mode process] [--workers N] [--daemonize] …
 *   deno run -A cli.ts stop | reload [--task] | stats [--json]   [--pid-file F]
 *
 * A module given to `start` default-exports a function that receives the `Server` (built from
 * the flags) and registers its callbacks; it runs in every process of the tree, as the script
 * that calls `start()` always does.
 * @module
 */

import { parseArgs } from "node:util";
import { Server } from "./mod.ts";
import type { ServerOptions } from "./mod.ts";
import { Region, WorkerStatus } from "./src/ipc/region.ts";
import { runningServer } from "./src/operations/pid_file.ts";
import { version } from "./src/version.ts";

const defaultPidFile = "ziggurat.pid";

const usage = {
  main: `Usage: ziggurat <command> [options]

Commands:
  start   Run a server: the demo TCP echo server, or the module given
  stop    Stop a running server (SIGTERM to its master), and wait until it is gone
  reload  Replace a running server's workers with new processes (SIGUSR1; --task: SIGUSR2)
  stats   Print a running server's stats() (--json for JSON)

Run "ziggurat <command> --help" for a command's options, "ziggurat --version" for the version.`,
  start: `Usage: ziggurat start [module] [options]

Runs the demo TCP echo server, or the module given: its default export is called with the
Server (built from the options below) and registers the callbacks. Runs until Ctrl-C or SIGTERM
(or in the background with --daemonize).

Options:
  --config F        A JSON file: an object of server options, named as in ServerOptions
  --set NAME=VALUE  One server option (repeatable); VALUE is read as JSON when it parses
                    (numbers, booleans, …), else as a string. Over --config and the flags
  --host H          Address to listen on (default 127.0.0.1)
  --port P          Port, 0 for any free one (default 9501)
  --mode M          base or process (default base)
  --workers N       Event worker processes (default 1)
  --task-workers N  Task worker processes (default 0)
  --reactors N      Reactor threads in PROCESS mode (default: CPUs, at most workers)
  --daemonize       Run in the background; returns once the server listens
  --pid-file F      Write the master's pid there (default with --daemonize: ${defaultPidFile})
  --log-file F      Log there instead of to stderr (SIGRTMIN reopens it)
  --log-level L     debug, info, warning or error (default info)
  -h, --help        Show this help`,
  stop: `Usage: ziggurat stop [--pid-file F] [--timeout S]

Sends SIGTERM to the server's master and waits (up to S seconds, default 30) until it exited.

Options:
  --pid-file F  The server's pid file (default ${defaultPidFile})
  --timeout S   Seconds to wait (default 30)
  -h, --help    Show this help`,
  reload: `Usage: ziggurat reload [--task] [--pid-file F]

Tells the server's master to replace its workers with new processes running the current code
(SIGUSR1), or with --task only its task workers (SIGUSR2).

Options:
  --task        Task workers only
  --pid-file F  The server's pid file (default ${defaultPidFile})
  -h, --help    Show this help`,
  stats: `Usage: ziggurat stats [--json] [--pid-file F]

Prints the running server's stats() and its processes, read from its shared memory.

Options:
  --json        Print JSON instead of a table
  --pid-file F  The server's pid file (default ${defaultPidFile})
  -h, --help    Show this help`,
};

/** A failure with its one-line reason and exit code. */
class Failure extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

type FlagSpec = Record<
  string,
  { type: "string" | "boolean"; short?: string; default?: string | boolean; multiple?: boolean }
>;

/** Parsed flags, loosely typed (each command checks its own). */
function flags(
  args: string[],
  options: FlagSpec,
  help: string,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { ...options, help: { type: "boolean", short: "h" } },
    });
    return {
      values: parsed.values as Record<string, string | boolean | string[] | undefined>,
      positionals: parsed.positionals,
    };
  } catch (error) {
    throw new Failure(`${(error as Error).message}\n\n${help}`, 2);
  }
}

function integer(name: string, value: unknown, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Failure(`--${name} must be a number from ${min} to ${max}, got "${value}"`, 2);
  }
  return n;
}

/** Runs the CLI with `args`; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "start":
        return await start(rest);
      case "stop":
        return await stop(rest);
      case "reload":
        return reload(rest);
      case "stats":
        return stats(rest);
      case undefined:
        console.error(usage.main);
        return 2;
      case "-h":
      case "--help":
      case "help":
        console.log(usage.main);
        return 0;
      case "--version":
      case "-V":
        console.log(`ziggurat ${version}`);
        return 0;
      default:
        throw new Failure(`unknown command "${command}"\n\n${usage.main}`, 2);
    }
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

async function start(args: string[]): Promise<number> {
  const { values, positionals } = flags(args, {
    config: { type: "string" },
    set: { type: "string", multiple: true },
    host: { type: "string" },
    port: { type: "string" },
    mode: { type: "string" },
    workers: { type: "string" },
    "task-workers": { type: "string" },
    reactors: { type: "string" },
    daemonize: { type: "boolean" },
    "pid-file": { type: "string" },
    "log-file": { type: "string" },
    "log-level": { type: "string" },
  }, usage.start);
  if (values.help) {
    console.log(usage.start);
    return 0;
  }
  if (positionals.length > 1) {
    throw new Failure(`one module at most, got ${positionals.join(" ")}`, 2);
  }
  // The CLI's defaults, then --config, then the flags, then each --set.
  const options: ServerOptions = {
    host: "127.0.0.1",
    port: 9501,
    ...(values.config === undefined ? {} : await configFile(values.config as string)),
  };
  if (values.host !== undefined) options.host = values.host as string;
  if (values.port !== undefined) options.port = integer("port", values.port, 0, 65535);
  if (values.mode !== undefined) {
    if (values.mode !== "base" && values.mode !== "process") {
      throw new Failure(`--mode must be base or process, got "${values.mode}"`, 2);
    }
    options.mode = values.mode;
  }
  if (values.workers !== undefined) options.workerNum = integer("workers", values.workers, 1, 1024);
  if (values["task-workers"] !== undefined) {
    options.taskWorkerNum = integer("task-workers", values["task-workers"], 0, 1024);
  }
  if (values.reactors !== undefined) {
    options.reactorNum = integer("reactors", values.reactors, 1, 256);
  }
  if (values.daemonize) options.daemonize = true;
  if (values["log-level"] !== undefined) {
    options.logLevel = values["log-level"] as ServerOptions["logLevel"];
  }
  if (values["pid-file"] !== undefined) options.pidFile = values["pid-file"] as string;
  if (values["log-file"] !== undefined) options.logFile = values["log-file"] as string;
  for (const assignment of (values.set as string[] | undefined) ?? []) {
    const [name, value] = setting(assignment);
    (options as Record<string, unknown>)[name] = value;
  }
  if (options.daemonize && !options.pidFile) options.pidFile = defaultPidFile;
  let server: Server;
  try {
    server = new Server(options);
  } catch (error) {
    throw new Failure((error as Error).message, 2);
  }
  const module = positionals[0];
  if (module) {
    const url = new URL(module, `file://${Deno.cwd()}/`).href;
    const setup = (await import(url)).default;
    if (typeof setup !== "function") {
      throw new Failure(`${module} must default-export a function that receives the Server`, 2);
    }
    await setup(server);
  } else {
    server.on("start", (s) => {
      const master = s.getMasterPid();
      console.log(
        `Ziggurat echo server listening on ${s.host}:${s.port} (pid ${master}, ${s.options.workerNum} worker(s))`,
      );
      console.log(`Try: nc ${s.host} ${s.port}   Stop: Ctrl-C, or kill ${master}`);
    });
    server.on("receive", (s, sessionId, _reactorId, data) => {
      s.send(sessionId, data);
    });
    if (server.options.taskWorkerNum) server.on("task", (_s, _id, _src, data) => data);
  }
  const stop = () => server.shutdown();
  Deno.addSignalListener("SIGINT", stop);
  try {
    await server.start();
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
  }
  if (server.daemonPid > 0) {
    console.log(
      `Ziggurat runs in the background: pid ${server.daemonPid}, listening on ${server.host}:${server.port}` +
        (options.pidFile ? `; stop it with: ziggurat stop --pid-file ${options.pidFile}` : ""),
    );
    return 0;
  }
  // Workers run this script too; only the process that was started reports.
  if (server.getMasterPid() === Deno.pid) console.log("Ziggurat stopped");
  return 0;
}

/** `--config F`: a JSON object of server options. */
async function configFile(path: string): Promise<ServerOptions> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Failure(`--config: cannot read ${path}: ${(error as Error).message}`, 2);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Failure(`--config: ${path} is not JSON: ${(error as Error).message}`, 2);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Failure(`--config: ${path} must hold a JSON object of server options`, 2);
  }
  return parsed as ServerOptions;
}

/** `--set NAME=VALUE`: the value as JSON when it parses, else the string itself. */
function setting(assignment: string): [string, unknown] {
  const at = assignment.indexOf("=");
  if (at <= 0) throw new Failure(`--set takes NAME=VALUE, got "${assignment}"`, 2);
  const name = assignment.slice(0, at);
  const raw = assignment.slice(at + 1);
  try {
    return [name, JSON.parse(raw)];
  } catch {
    return [name, raw];
  }
}

/**
 * The pid of the running server whose pid file this is. Only a process that holds the file
 * open and locked counts (src/pid_file.ts): a stale file whose pid now names another program
 * is never signalled.
 */
function runningPid(pidFile: string): number {
  const found = runningServer(pidFile);
  switch (found) {
    case "missing":
      throw new Failure(`no pid file at ${pidFile} (is the server running?)`, 1);
    case "stale":
      throw new Failure(
        `${pidFile} is stale: no running Ziggurat server holds it (the pid it names is gone or is another program)`,
        1,
      );
    case "link":
      throw new Failure(`${pidFile} is a symbolic link; refusing to use it`, 1);
    case "unreadable":
      throw new Failure(`cannot read ${pidFile}`, 1);
    default:
      return found;
  }
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // A zombie has exited; only its parent's wait is missing.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function stop(args: string[]): Promise<number> {
  const { values } = flags(args, {
    "pid-file": { type: "string", default: defaultPidFile },
    timeout: { type: "string", default: "30" },
  }, usage.stop);
  if (values.help) {
    console.log(usage.stop);
    return 0;
  }
  const timeout = integer("timeout", values.timeout, 1, 3600);
  const pid = runningPid(values["pid-file"] as string);
  Deno.kill(pid, "SIGTERM");
  const deadline = Date.now() + timeout * 1000;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new Failure(`pid ${pid} still runs after ${timeout} s`, 1);
    // Another process's exit has no event to wait on here: poll the process table.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  console.log(`stopped (pid ${pid})`);
  return 0;
}

function reload(args: string[]): number {
  const { values } = flags(args, {
    task: { type: "boolean", default: false },
    "pid-file": { type: "string", default: defaultPidFile },
  }, usage.reload);
  if (values.help) {
    console.log(usage.reload);
    return 0;
  }
  const pid = runningPid(values["pid-file"] as string);
  if (!Region.ofProcess(pid)) {
    throw new Failure(
      `pid ${pid} runs no worker processes to replace (a one-worker BASE server)`,
      1,
    );
  }
  Deno.kill(pid, values.task ? "SIGUSR2" : "SIGUSR1");
  console.log(
    `reload of ${values.task ? "the task workers" : "every worker"} requested (pid ${pid})`,
  );
  return 0;
}

const statusNames: Record<number, string> = {
  [WorkerStatus.notStarted]: "not started",
  [WorkerStatus.busy]: "busy",
  [WorkerStatus.idle]: "idle",
  [WorkerStatus.exited]: "exited",
};

function stats(args: string[]): number {
  const { values } = flags(args, {
    json: { type: "boolean", default: false },
    "pid-file": { type: "string", default: defaultPidFile },
  }, usage.stats);
  if (values.help) {
    console.log(usage.stats);
    return 0;
  }
  const pid = runningPid(values["pid-file"] as string);
  const region = Region.ofProcess(pid);
  if (!region) {
    throw new Failure(
      `pid ${pid} shares no memory to read: a one-worker server without a manager keeps its stats() in-process`,
      1,
    );
  }
  const report = { pid, stats: region.treeStats(), processes: region.processes() };
  if (values.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  const names = Object.keys(report.stats);
  const width = Math.max(...names.map((n) => n.length));
  console.log(`Ziggurat server, master pid ${pid}\n`);
  for (const name of names) console.log(`  ${name.padEnd(width)}  ${report.stats[name]}`);
  console.log(`\n  ${"id".padStart(4)}  ${"type".padEnd(7)}  ${"pid".padStart(8)}  status`);
  for (const p of report.processes) {
    console.log(
      `  ${String(p.id).padStart(4)}  ${p.type.padEnd(7)}  ${String(p.pid).padStart(8)}  ${
        statusNames[p.status] ?? p.status
      }`,
    );
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
