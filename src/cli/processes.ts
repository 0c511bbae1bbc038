/**
 * What the process table (/proc) tells of running Ziggurat servers: which processes are a
 * server's master (they map the core's shared memory, and their parent does not), and of one
 * its command line, directory, environment, start time, memory, listening sockets, pid file
 * and log file. Only processes of the same user (or any, as root) can be read.
 * @module
 */

import { ipv6 } from "../ip.ts";

/** The shared memory every server process holds (core/src/shm.zig names them). */
const coreMemory = /^\/memfd:ziggurat-(region|channel)/;

/** Linux's USER_HZ: /proc's clock ticks per second, fixed on every architecture Deno runs on. */
const ticksPerSecond = 100;

function readLink(path: string): string | undefined {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return undefined;
  }
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** Every open fd of `pid` and what it points at (the fds that vanish while read are left out). */
export function openFiles(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const entry of entries) {
    const target = readLink(`/proc/${pid}/fd/${entry.name}`);
    if (target !== undefined) out.set(Number(entry.name), target);
  }
  return out;
}

/** The fields of /proc/PID/stat after the command name (index 0 is the state). */
function statFields(pid: number): string[] | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** `pid` runs (a zombie has exited; only its parent's wait is missing). */
export function alive(pid: number): boolean {
  const fields = statFields(pid);
  return fields !== undefined && fields[0] !== "Z";
}

function parentOf(pid: number): number {
  return Number(statFields(pid)?.[1] ?? 0);
}

function holdsCore(pid: number): boolean {
  for (const target of openFiles(pid).values()) if (coreMemory.test(target)) return true;
  return false;
}

/** `pid` is a running server's master (or its only process), not one of its workers. */
export function isServer(pid: number): boolean {
  return alive(pid) && holdsCore(pid) && !holdsCore(parentOf(pid));
}

/** Every process id in the table. */
function allPids(): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (/^\d+$/.test(entry.name)) out.push(Number(entry.name));
  }
  return out;
}

/** The masters of every server this user can see, lowest pid first. */
export function runningServers(): number[] {
  return allPids().filter((pid) => pid !== Deno.pid && isServer(pid)).sort((a, b) => a - b);
}

/** `pid` and every process below it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of allPids()) {
    const parent = parentOf(p);
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent)!.push(p);
  }
  const out: number[] = [];
  const visit = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) visit(c);
  };
  visit(pid);
  return out;
}

/** Resident memory of `pids`, in bytes. */
export function residentBytes(pids: number[]): number {
  let kib = 0;
  for (const pid of pids) {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readText(`/proc/${pid}/status`) ?? "");
    if (match) kib += Number(match[1]);
  }
  return kib * 1024;
}

/** When `pid` started, in Unix seconds. */
export function startedAt(pid: number): number {
  const ticks = Number(statFields(pid)?.[19] ?? 0);
  const boot = Number(/^btime (\d+)/m.exec(readText("/proc/stat") ?? "")?.[1] ?? 0);
  return boot + ticks / ticksPerSecond;
}

/** `pid`'s command line: the executable's path, then its arguments. */
export function commandLine(pid: number): string[] {
  const argv = (readText(`/proc/${pid}/cmdline`) ?? "").split("\0");
  if (argv.at(-1) === "") argv.pop();
  const exe = readLink(`/proc/${pid}/exe`);
  // (An executable replaced since it started, an upgraded Deno, reads "… (deleted)": the path
  // it had then names the new one.)
  if (exe !== undefined && argv.length > 0) argv[0] = exe.replace(/ \(deleted\)$/, "");
  return argv;
}

/** The directory `pid` runs in. */
export function workingDirectory(pid: number): string | undefined {
  return readLink(`/proc/${pid}/cwd`);
}

/** The environment `pid` was started with. */
export function environment(pid: number): Record<string, string> | undefined {
  const text = readText(`/proc/${pid}/environ`);
  if (text === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const entry of text.split("\0")) {
    const at = entry.indexOf("=");
    if (at > 0) out[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return out;
}

/**
 * What a command line runs, for people: the script (or URL) after `deno run`'s flags, and its
 * arguments. The whole line when it is no `deno run`.
 */
export function scriptOf(argv: string[]): string {
  const run = argv.indexOf("run");
  if (run < 0) return argv.join(" ");
  const rest = argv.slice(run + 1);
  const script = rest.findIndex((a) => !a.startsWith("-"));
  return script < 0 ? argv.join(" ") : rest.slice(script).join(" ");
}

/** The file `pid`'s stderr goes to (a server's log, with `logFile`), if it is a file. */
export function logFileOf(pid: number): string | undefined {
  const target = readLink(`/proc/${pid}/fd/2`);
  if (target === undefined || !target.startsWith("/") || target.startsWith("/dev/")) {
    return undefined;
  }
  return target.endsWith(" (deleted)") ? undefined : target;
}

/** The pid file `pid` holds open: a file among its fds that holds its pid. */
export function pidFileOf(pid: number): string | undefined {
  for (const [fd, target] of openFiles(pid)) {
    if (fd <= 2 || !target.startsWith("/") || target.startsWith("/dev/")) continue;
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(target);
    } catch {
      continue;
    }
    if (!info.isFile || info.size > 32) continue;
    if (readText(target)?.trim() === String(pid)) return target;
  }
  return undefined;
}

/** A listening socket: `tcp 127.0.0.1:9501`, `udp [::1]:53`, `unix /run/app.sock`. */
export function listeningSockets(pid: number): string[] {
  const inodes = new Set<string>();
  for (const target of openFiles(pid).values()) {
    const match = /^socket:\[(\d+)\]$/.exec(target);
    if (match) inodes.add(match[1]);
  }
  const out: string[] = [];
  // TCP sockets listening (state 0A), UDP ones bound (07), in the process's own namespace.
  for (
    const [file, kind, state] of [["tcp", "tcp", "0A"], ["tcp6", "tcp", "0A"], [
      "udp",
      "udp",
      "07",
    ], ["udp6", "udp", "07"]] as const
  ) {
    const lines = (readText(`/proc/${pid}/net/${file}`) ?? "").split("\n").slice(1);
    for (const line of lines) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== state || !inodes.has(cols[9])) continue;
      out.push(`${kind} ${socketAddress(cols[1])}`);
    }
  }
  for (const line of (readText(`/proc/${pid}/net/unix`) ?? "").split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    // Listening (flag 00010000), with a path.
    if (cols.length >= 8 && inodes.has(cols[6]) && cols[3] === "00010000" && cols[7]) {
      out.push(`unix ${cols[7]}`);
    }
  }
  return out;
}

/** /proc/net's `HEXADDR:HEXPORT` (each 32-bit word of the address in host order). */
function socketAddress(hex: string): string {
  const [addr, port] = hex.split(":");
  const words = addr.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => [6, 4, 2, 0].map((i) => parseInt(w.slice(i, i + 2), 16)));
  const p = parseInt(port, 16);
  if (bytes.length === 4) return `${bytes.join(".")}:${p}`;
  // (An IPv4 address mapped into IPv6, as RFC 5952 writes it.)
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `[::ffff:${bytes.slice(12).join(".")}]:${p}`;
  }
  return `[${ipv6(new Uint8Array(bytes))}]:${p}`;
}

/** A duration for people: `4d 3h`, `2h 5m`, `3m 12s`, `45s`. */
export function readableDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

/** Bytes for people: `812 KiB`, `41.3 MiB`. */
export function readableBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}
