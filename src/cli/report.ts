/**
 * A running server's report, read from another process: its `stats()` and its processes with
 * their status by name and their uptimes. A tree's comes from its shared region; a one-worker
 * server's from its channel's header (its reactor's counters and what its JavaScript publishes
 * there, src/ipc/published.ts).
 * @module
 */

import { layout } from "../_ffi/layout.ts";
import { Region, WorkerStatus } from "../ipc/region.ts";
import { statsOfHeader } from "../ipc/published.ts";
import type { ServerStats } from "../stats.ts";
import { openFiles, readableDuration, startedAt } from "./processes.ts";

/** Swoole's worker status values by name. */
export const statusNames: Record<number, string> = {
  [WorkerStatus.notStarted]: "not started",
  [WorkerStatus.busy]: "busy",
  [WorkerStatus.idle]: "idle",
  [WorkerStatus.exited]: "exited",
};

/** One process of the server. */
export interface ProcessReport {
  /** Its worker id (0 for a one-worker server). */
  id: number;
  type: "event" | "task" | "process";
  /** -1 while none runs under this id. */
  pid: number;
  /** "not started", "busy", "idle" or "exited". */
  status: string;
  /** Since this process (not the server) started: seconds, and for people. */
  uptimeSeconds?: number;
  uptime?: string;
}

export interface ServerReport {
  /** The master's pid. */
  pid: number;
  /** A tree (a manager and its workers) or a one-worker server. */
  kind: "tree" | "single";
  /** Since the server started: seconds, and for people (`3m 12s`). */
  uptimeSeconds: number;
  uptime: string;
  stats: ServerStats;
  processes: ProcessReport[];
}

/** The report of the server whose master is `pid`, or undefined when none can be read. */
export function serverReport(pid: number): ServerReport | undefined {
  const now = Date.now() / 1000;
  const region = Region.ofProcess(pid);
  if (region) {
    const stats = region.treeStats() as unknown as ServerStats;
    const processes = region.processes().map((p): ProcessReport => {
      const started = p.pid > 0 ? startedAt(p.pid) : 0;
      return {
        ...p,
        status: statusNames[p.status] ?? String(p.status),
        ...(started > 0
          ? { uptimeSeconds: Math.floor(now - started), uptime: readableDuration(now - started) }
          : {}),
      };
    });
    const since = stats.startTime > 0 ? stats.startTime : startedAt(pid);
    return {
      pid,
      kind: "tree",
      uptimeSeconds: Math.floor(now - since),
      uptime: readableDuration(now - since),
      stats,
      processes,
    };
  }
  const header = channelHeader(pid);
  if (!header) return undefined;
  const { stats, busy } = statsOfHeader(header);
  const since = stats.startTime > 0 ? stats.startTime : startedAt(pid);
  const uptime = { uptimeSeconds: Math.floor(now - since), uptime: readableDuration(now - since) };
  return {
    pid,
    kind: "single",
    ...uptime,
    stats,
    processes: [{ id: 0, type: "event", pid, status: busy ? "busy" : "idle", ...uptime }],
  };
}

/** A copy of the header of the first channel `pid` holds (a one-worker server's). */
function channelHeader(pid: number): Uint8Array | undefined {
  for (const [fd, target] of openFiles(pid)) {
    if (!target.startsWith("/memfd:ziggurat-channel")) continue;
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(`/proc/${pid}/fd/${fd}`, { read: true });
    } catch {
      continue;
    }
    try {
      const header = new Uint8Array(layout.channelHeaderSize);
      let got = 0;
      while (got < header.length) {
        const n = file.readSync(header.subarray(got));
        if (n === null) break;
        got += n;
      }
      if (got === header.length) return header;
    } finally {
      file.close();
    }
  }
  return undefined;
}
