/**
 * `ziggurat list`: the servers running from this directory (or every one this user can see,
 * or the one of a pid file), a line each, as pm2's list shows its apps.
 * @module
 */

import { Region } from "../ipc/region.ts";
import { flags, serverPid } from "./args.ts";
import {
  commandLine,
  listeningSockets,
  logFileOf,
  pidFileOf,
  processTree,
  readableBytes,
  readableDuration,
  residentBytes,
  runningServers,
  scriptOf,
  startedAt,
  workingDirectory,
} from "./processes.ts";

export const listUsage = `Usage: ziggurat list [--all | --pid-file F | --pid P] [--json]

Lists the running Ziggurat servers started from this directory: each master's pid, uptime,
processes, memory (the whole tree's), listening sockets, pid file, log file and command.

Options:
  --all         Every server this user can see, wherever it started
  --pid-file F  Only the server of this pid file
  --pid P       Only the server of this master pid
  --json        Print JSON instead of a table
  -h, --help    Show this help`;

/** One server, as `list` shows it. */
export interface ListedServer {
  pid: number;
  /** The directory it runs in. */
  directory: string;
  uptimeSeconds: number;
  uptime: string;
  /** Event workers, task workers and user processes (a one-worker server: 1, 0, 0). */
  workers: { event: number; task: number; process: number };
  /** Resident memory of the master and every process below it. */
  memoryBytes: number;
  /** `tcp 127.0.0.1:9501`, `udp …`, `unix PATH`. */
  listening: string[];
  pidFile: string | null;
  logFile: string | null;
  /** The script and its arguments. */
  command: string;
}

export function list(args: string[]): number {
  const { values } = flags(args, {
    all: { type: "boolean", default: false },
    "pid-file": { type: "string" },
    pid: { type: "string" },
    json: { type: "boolean", default: false },
  }, listUsage);
  if (values.help) {
    console.log(listUsage);
    return 0;
  }
  const here = Deno.realPathSync(Deno.cwd());
  const pids = values.pid !== undefined || values["pid-file"] !== undefined
    ? [serverPid(values)]
    : runningServers().filter((pid) => values.all || workingDirectory(pid) === here);
  const now = Date.now() / 1000;
  const servers = pids.map((pid): ListedServer => {
    const region = Region.ofProcess(pid);
    const started = startedAt(pid);
    return {
      pid,
      directory: workingDirectory(pid) ?? "?",
      uptimeSeconds: Math.floor(now - started),
      uptime: readableDuration(now - started),
      workers: region
        ? {
          event: region.workerNum,
          task: region.taskWorkerNum,
          process: region.userProcessNum,
        }
        : { event: 1, task: 0, process: 0 },
      memoryBytes: residentBytes(processTree(pid)),
      listening: listeningSockets(pid),
      pidFile: pidFileOf(pid) ?? null,
      logFile: logFileOf(pid) ?? null,
      command: scriptOf(commandLine(pid)),
    };
  });
  if (values.json) {
    console.log(JSON.stringify(servers, null, 2));
    return 0;
  }
  if (servers.length === 0) {
    console.log(
      values.all
        ? "No Ziggurat server runs."
        : `No Ziggurat server runs from ${here} (--all: any).`,
    );
    return 0;
  }
  const rows = servers.map((s) => [
    String(s.pid),
    s.uptime,
    `${s.workers.event}/${s.workers.task}/${s.workers.process}`,
    readableBytes(s.memoryBytes),
    s.listening.join(", ") || "-",
    s.pidFile ?? "-",
    s.command,
  ]);
  const head = ["PID", "UPTIME", "WORKERS", "MEMORY", "LISTENING", "PID FILE", "COMMAND"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join("  ");
  console.log(line(head));
  for (const row of rows) console.log(line(row));
  console.log("\nWORKERS: event/task/user processes.");
  return 0;
}
