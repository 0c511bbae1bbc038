/**
 * `ziggurat stop`, `reload` and `restart`: a running server's master told by signal, and the
 * command waiting until what it asked for is done.
 * @module
 */

import { Region, WorkerStatus } from "../ipc/region.ts";
import { env } from "../roles/role.ts";
import { Failure, flags, integer, pause, serverFlags, serverFlagsHelp, serverPid } from "./args.ts";
import { runningServer } from "../operations/pid_file.ts";
import { alive, commandLine, environment, pidFileOf, workingDirectory } from "./processes.ts";

export const stopUsage = `Usage: ziggurat stop [--pid-file F | --pid P] [--timeout S]

Sends SIGTERM to the server's master and waits (up to S seconds, default 30) until it exited.

Options:
${serverFlagsHelp}
  --timeout S   Seconds to wait (default 30)
  -h, --help    Show this help`;

export const reloadUsage =
  `Usage: ziggurat reload [--task] [--no-wait] [--pid-file F | --pid P] [--timeout S]

Tells the server's master to replace its workers with new processes running the current code
(SIGUSR1), or with --task only its task workers (SIGUSR2), and waits until every one of them
has been replaced and is ready. The options stay those the server started with.

Options:
  --task        Task workers only
  --no-wait     Return once the signal is sent
${serverFlagsHelp}
  --timeout S   Seconds to wait (default 60)
  -h, --help    Show this help`;

export const restartUsage = `Usage: ziggurat restart [--pid-file F | --pid P] [--timeout S]

Stops a server that runs in the background (--daemonize) and starts it again: the same command
line, directory and environment, so its code, config file and options are read anew. A server
in the foreground belongs to its terminal or supervisor: restart it there, or use reload.

Options:
${serverFlagsHelp}
  --timeout S   Seconds to wait for each of the stop and the start (default 30)
  -h, --help    Show this help`;

export async function stop(args: string[]): Promise<number> {
  const { values } = flags(args, {
    ...serverFlags,
    timeout: { type: "string", default: "30" },
  }, stopUsage);
  if (values.help) {
    console.log(stopUsage);
    return 0;
  }
  const timeout = integer("timeout", values.timeout, 1, 3600);
  const pid = serverPid(values);
  await stopAndWait(pid, timeout);
  console.log(`stopped (pid ${pid})`);
  return 0;
}

async function stopAndWait(pid: number, timeout: number) {
  Deno.kill(pid, "SIGTERM");
  const deadline = Date.now() + timeout * 1000;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new Failure(`pid ${pid} still runs after ${timeout} s`, 1);
    await pause(50);
  }
}

export async function reload(args: string[]): Promise<number> {
  const { values } = flags(args, {
    task: { type: "boolean", default: false },
    "no-wait": { type: "boolean", default: false },
    ...serverFlags,
    timeout: { type: "string", default: "60" },
  }, reloadUsage);
  if (values.help) {
    console.log(reloadUsage);
    return 0;
  }
  const timeout = integer("timeout", values.timeout, 1, 3600);
  const pid = serverPid(values);
  const region = Region.ofProcess(pid);
  if (!region) {
    throw new Failure(
      `pid ${pid} runs no worker processes to replace (a one-worker BASE server): restart it instead`,
      1,
    );
  }
  const onlyTask = values.task === true;
  const which = onlyTask ? "the task workers" : "every worker";
  // The workers a reload replaces: event and task workers (user processes stay).
  const replaced = region.processes().filter((p) =>
    p.type === "task" || (!onlyTask && p.type === "event")
  );
  if (replaced.length === 0) throw new Failure(`pid ${pid} runs no task workers to replace`, 1);
  const began = Date.now();
  Deno.kill(pid, onlyTask ? "SIGUSR2" : "SIGUSR1");
  if (values["no-wait"]) {
    console.log(`reload of ${which} requested (pid ${pid})`);
    return 0;
  }
  const deadline = began + timeout * 1000;
  const ready = (p: { pid: number; status: number }) =>
    p.pid > 0 && (p.status === WorkerStatus.idle || p.status === WorkerStatus.busy);
  for (;;) {
    if (!alive(pid)) throw new Failure(`the server (pid ${pid}) exited during the reload`, 1);
    const now = region.processes();
    const left = replaced.filter((old) => {
      const p = now[old.id];
      return p.pid === old.pid || !ready(p);
    });
    if (left.length === 0) break;
    if (Date.now() > deadline) {
      throw new Failure(
        `after ${timeout} s, ${left.length} of ${replaced.length} workers are not replaced yet (ids ${
          left.map((p) => p.id).join(", ")
        })`,
        1,
      );
    }
    await pause(50);
  }
  const count = (type: string) => replaced.filter((p) => p.type === type).length;
  const parts = [[count("event"), "event worker"], [count("task"), "task worker"]]
    .filter(([n]) => n as number > 0).map(([n, what]) => `${n} ${what}${n === 1 ? "" : "s"}`);
  console.log(
    `reloaded: ${parts.join(" and ")} replaced in ${
      ((Date.now() - began) / 1000).toFixed(1)
    } s (pid ${pid})`,
  );
  return 0;
}

export async function restart(args: string[]): Promise<number> {
  const { values } = flags(args, {
    ...serverFlags,
    timeout: { type: "string", default: "30" },
  }, restartUsage);
  if (values.help) {
    console.log(restartUsage);
    return 0;
  }
  const timeout = integer("timeout", values.timeout, 1, 3600);
  const pid = serverPid(values);
  const vars = environment(pid);
  if (vars === undefined) {
    throw new Failure(`cannot read pid ${pid}'s environment (another user's process?)`, 1);
  }
  // The background server is the one its launcher gave the ready fd to.
  if (vars[env.daemonReadyFd] === undefined) {
    throw new Failure(
      `pid ${pid} runs in the foreground (not with --daemonize): restart it where it runs, or use reload`,
      1,
    );
  }
  const argv = commandLine(pid);
  const cwd = workingDirectory(pid);
  if (argv.length === 0 || cwd === undefined) {
    throw new Failure(`cannot read pid ${pid}'s command line`, 1);
  }
  // What the launcher added is left out: the new launcher works the options out anew.
  for (const name of Object.values(env)) delete vars[name];
  try {
    Deno.statSync(argv[0]);
  } catch {
    throw new Failure(`pid ${pid} runs ${argv[0]}, which is gone: it was not stopped`, 1);
  }
  const pidFile = pidFileOf(pid);
  await stopAndWait(pid, timeout);
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd,
    env: vars,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeout * 1000);
  const output = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder();
  const out = text.decode(output.stdout);
  const err = text.decode(output.stderr);
  if (!output.success) {
    throw new Failure(
      `stopped pid ${pid}, but starting it again failed (exit ${output.code}):\n${err || out}`,
      1,
    );
  }
  Deno.stdout.writeSync(output.stdout);
  const now = pidFile ? runningServer(pidFile) : undefined;
  console.log(
    `restarted: pid ${pid} stopped, ${
      typeof now === "number" ? `pid ${now}` : "a new server"
    } runs`,
  );
  return 0;
}
