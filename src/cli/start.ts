/**
 * `ziggurat start`: the server built from the CLI's defaults, `--config`, the flags and each
 * `--set`, running the module given (or the demo echo server).
 * @module
 */

import { Server } from "../server.ts";
import { defaults } from "../options.ts";
import type { ServerOptions } from "../options.ts";
import { env } from "../roles/role.ts";
import { defaultPidFile, Failure, flags, integer } from "./args.ts";

export const startUsage = `Usage: ziggurat start [module] [options]

Runs the demo TCP echo server, or the module given: its default export is called with the
Server (built from the options below) and registers the callbacks. Runs until Ctrl-C or SIGTERM
(or in the background with --daemonize).

Options:
  --config F        A JSON file: an object of server options, named as in ServerOptions
  --set NAME=VALUE  One server option (repeatable), over --config and the flags. VALUE is read
                    as JSON when it parses (numbers, booleans, lists), else as a string; an
                    option that takes a string always takes VALUE as it is
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
  -h, --help        Show this help

The options are worked out once, by the process started: its workers (respawned and reloaded
ones too) keep them. A changed config file takes effect with "ziggurat restart".`;

export async function start(args: string[]): Promise<number> {
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
  }, startUsage);
  if (values.help) {
    console.log(startUsage);
    return 0;
  }
  if (positionals.length > 1) {
    throw new Failure(`one module at most, got ${positionals.join(" ")}`, 2);
  }
  // A worker, or the background server, takes the options its master worked out. (Any other
  // process that inherited them, a `ziggurat start` run from a server's callback, say, takes its
  // own: it is neither.)
  const spawnedForIt = Deno.env.get(env.role) === "worker" ||
    Deno.env.get(env.daemonReadyFd) !== undefined;
  const inherited = spawnedForIt ? Deno.env.get(env.cliOptions) : undefined;
  const options = inherited !== undefined
    ? JSON.parse(inherited) as ServerOptions
    : await optionsOf(values);
  Deno.env.set(env.cliOptions, JSON.stringify(options));
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
    echo(server);
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

/** The demo: a TCP echo server (and an echoing task worker when there are task workers). */
function echo(server: Server) {
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

/** The CLI's defaults, then --config, then the flags, then each --set. */
async function optionsOf(
  values: Record<string, string | boolean | string[] | undefined>,
): Promise<ServerOptions> {
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
  return options;
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

/**
 * `--set NAME=VALUE`. An option that takes a string takes VALUE as it is (`user=1000` is the
 * user "1000"; a JSON string literal, quotes and escapes, is read as JSON: `packageEof="\r\n"`);
 * any other reads VALUE as JSON when it parses, else as the string (which the option check then
 * refuses with its own message). One that takes a function cannot be set here.
 */
export function setting(assignment: string): [string, unknown] {
  const at = assignment.indexOf("=");
  if (at <= 0) throw new Failure(`--set takes NAME=VALUE, got "${assignment}"`, 2);
  const name = assignment.slice(0, at);
  const raw = assignment.slice(at + 1);
  const json = (): unknown => {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  };
  if (!Object.hasOwn(defaults, name)) return [name, json()];
  const kind = typeof defaults[name as keyof typeof defaults];
  if (kind === "string") return [name, raw.startsWith('"') ? json() : raw];
  if (defaults[name as keyof typeof defaults] === null) {
    throw new Failure(`--set: option "${name}" takes a function or an object; set it in code`, 2);
  }
  return [name, json()];
}
