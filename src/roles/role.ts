/**
 * Which process of the tree this is. The manager spawns every worker as a new Deno process on
 * the same entry module with the same flags; the environment tells the worker its role, so
 * that `start()` in the re-run script attaches to it instead of binding.
 * @module
 */

import { library, unwrap } from "../_ffi/library.ts";

/** Environment variable names (part of the contract between manager and workers). */
export const env = {
  role: "ZIGGURAT_ROLE",
  workerId: "ZIGGURAT_WORKER_ID",
  managerPid: "ZIGGURAT_MANAGER_PID",
  listenFd: "ZIGGURAT_LISTEN_FD",
  port: "ZIGGURAT_PORT",
  regionFd: "ZIGGURAT_REGION_FD",
  /** Which server of the script the worker role is for: `host|port|workerNum` as configured. */
  server: "ZIGGURAT_SERVER",
  /** "event", "task" or "process" (a user process of `addProcess`). */
  workerType: "ZIGGURAT_WORKER_TYPE",
  /** The inherited doorbell eventfds of every endpoint of the tree, comma-separated. */
  doorbellFds: "ZIGGURAT_DOORBELL_FDS",
  /** PROCESS mode: the kick eventfd of each of the master's reactor threads. */
  kickFds: "ZIGGURAT_KICK_FDS",
  /** "1" in a worker that replaces an earlier process of its id. */
  respawned: "ZIGGURAT_RESPAWNED",
  /**
   * A BASE event worker: `out,in`, the socket pair ends its WebSockets leave on and its
   * predecessor's arrive on (-1: none; core/src/carry.zig).
   */
  carryFds: "ZIGGURAT_CARRY_FDS",
  /** Daemon mode, in the background server: the fd to report "listening" on to its launcher. */
  daemonReadyFd: "ZIGGURAT_DAEMON_READY_FD",
  /**
   * The options the `ziggurat start` of the master worked out (JSON): its workers, respawned
   * and reloaded ones too, and its background server take these instead of reading the
   * config file and flags again.
   */
  cliOptions: "ZIGGURAT_CLI_OPTIONS",
} as const;

export type Role =
  /** No manager: this process is the whole server (one BASE worker). */
  | { kind: "single" }
  /** Not started by a manager, but `workerNum` > 1: this process becomes the manager. */
  | { kind: "manager" }
  | {
    kind: "worker";
    workerId: number;
    managerPid: number;
    /**
     * The manager's listening sockets (the server's, then each `listen()` port's), inherited;
     * -1 for one each worker binds itself (reuse port).
     */
    listenFds: number[];
    /** The ports the manager bound, in the same order (the ones to bind with reuse port). */
    ports: number[];
    /** The tree's shared region (see region.ts), inherited. */
    regionFd: number;
    /** An event worker, a task worker, or a user process (`addProcess`). */
    workerType: "event" | "task" | "process";
    /** Every endpoint's doorbell (this process's own at index `workerId`). */
    doorbellFds: number[];
    /** PROCESS mode: each reactor thread's kick fd; empty in BASE mode. */
    kickFds: number[];
    /** It replaces an earlier process of its id (a respawn, a reload, a recycle). */
    respawned: boolean;
    /**
     * A BASE event worker: where its WebSockets go when it leaves, and where its
     * predecessor's come from (-1: none).
     */
    carry: { out: number; in: number };
  };

/** Swoole's worker id of a process in this role: 0 in a one-worker server, -1 in the master. */
export function workerIdOfRole(role: Role): number {
  if (role.kind === "worker") return role.workerId;
  return role.kind === "manager" ? -1 : 0;
}

/** How the log names a process in this role. */
export function roleName(role: Role): string {
  if (role.kind === "manager") return "manager";
  return `worker#${role.kind === "worker" ? role.workerId : 0}`;
}

/** The manager's pid, or -1 when there is none (one BASE worker). */
export function managerPidOf(role: Role): number {
  if (role.kind === "worker") return role.managerPid;
  return role.kind === "manager" ? Deno.pid : -1;
}

/** The pid of the process that called `start()`: the master, or the only process. */
export function masterPidOf(role: Role): number {
  return role.kind === "worker" ? role.managerPid : Deno.pid;
}

/** The key that matches a worker's role to the server of the script it is for. */
export function serverKey(host: string, port: number, workerNum: number): string {
  return `${host}|${port}|${workerNum}`;
}

/**
 * The role of this process for a server configured with `key` (see `serverKey`): what the
 * options given so far (constructor, `set()`) say, worked out again by each `set()`. A
 * worker's role goes to the one server it was spawned for, which claims it when it starts
 * (`claimWorkerRole`).
 */
export function currentRole(workerNum: number, key: string, tree = workerNum > 1): Role {
  if (Deno.env.get(env.role) === "worker" && Deno.env.get(env.server) === key) {
    const number = (name: string) => {
      const value = Number(Deno.env.get(name));
      if (!Number.isInteger(value)) {
        throw new Error(
          `${name} must be an integer in a worker process, got "${Deno.env.get(name)}"`,
        );
      }
      return value;
    };
    const role: Role = {
      kind: "worker",
      workerId: number(env.workerId),
      managerPid: number(env.managerPid),
      listenFds: fdList(env.listenFd),
      ports: fdList(env.port),
      regionFd: number(env.regionFd),
      workerType: workerType(Deno.env.get(env.workerType)),
      doorbellFds: fdList(env.doorbellFds),
      kickFds: fdList(env.kickFds),
      respawned: Deno.env.get(env.respawned) === "1",
      carry: carryFds(fdList(env.carryFds)),
    };
    return role;
  }
  return tree ? { kind: "manager" } : { kind: "single" };
}

/**
 * A worker's server starts: the variables that gave it its role are removed, so other servers
 * of the script, and this process's own children, see none of them.
 */
export function claimWorkerRole() {
  for (const name of Object.values(env)) Deno.env.delete(name);
}

function carryFds(fds: number[]): { out: number; in: number } {
  return { out: fds[0] ?? -1, in: fds[1] ?? -1 };
}

function fdList(name: string): number[] {
  return (Deno.env.get(name) ?? "").split(",").filter((f) => f !== "").map(Number);
}

function workerType(value: string | undefined): "event" | "task" | "process" {
  if (value === "task" || value === "process") return value;
  return "event";
}

const runnable =
  "with workerNum > 1 or in PROCESS mode the server must be started as `deno run [flags] <file or URL> [args]` " +
  "(each worker runs the same command line; under `deno test` or `deno bench`, start it in a " +
  'subprocess: `new Deno.Command(Deno.execPath(), { args: ["run", "-A", "server.ts"] })`)';

/**
 * This process's own command line, to run the same entry module with the same flags. Throws
 * when it is not `deno run … <file>`: `deno test` would run the tests again in every worker,
 * and a script from stdin cannot be read twice.
 */
export function ownCommandLine(): string[] {
  const buffer = new Uint8Array(256 * 1024);
  const length = new BigUint64Array(1);
  unwrap(
    library().zg_own_cmdline(buffer, BigInt(buffer.length), length),
    "read this process's command line",
  );
  const raw = buffer.subarray(0, Number(length[0]));
  const args = new TextDecoder().decode(raw).split("\0");
  if (args.at(-1) === "") args.pop();
  const main = new URL(Deno.mainModule);
  const mainPath = main.protocol === "file:" ? main.pathname : "";
  // A module from a URL (`deno run -A https://…/app.ts`, a `deno install`ed `jsr:` command):
  // the workers run the same URL.
  const isRemote = main.protocol !== "file:" && args[1] === "run";
  const isFile = mainPath !== "" && (() => {
    try {
      return Deno.statSync(mainPath).isFile;
    } catch {
      return false;
    }
  })();
  // `deno run … file` or the short form `deno file`.
  const shortForm = args[1] !== undefined && !args[1].startsWith("-") &&
    new URL(args[1], `file://${Deno.cwd()}/`).pathname === mainPath;
  if (!isRemote && (!isFile || (args[1] !== "run" && !shortForm))) {
    throw new TypeError(
      `Cannot start the workers: ${runnable}; this process is \`${args.join(" ")}\``,
    );
  }
  args[0] = Deno.execPath();
  return args;
}

const encoder = new TextEncoder();

/** A command line as the core's spawn takes it: each argument ends in a NUL byte. */
export function packArgv(argv: readonly string[]): Uint8Array {
  return encoder.encode(argv.map((a) => a + "\0").join(""));
}

/** An environment as the core's spawn takes it: `NAME=value` and a NUL byte each. */
export function packEnv(vars: Record<string, string>): Uint8Array {
  return encoder.encode(Object.entries(vars).map(([k, v]) => `${k}=${v}\0`).join(""));
}
