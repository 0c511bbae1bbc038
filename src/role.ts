/**
 * Which process of the tree this is. The manager spawns every worker as a new Deno process on
 * the same entry module with the same flags; the environment tells the worker its role, so
 * that `start()` in the re-run script attaches to it instead of binding.
 * @module
 */

/** Environment variable names (part of the contract between manager and workers). */
export const env = {
  role: "ZIGGURAT_ROLE",
  workerId: "ZIGGURAT_WORKER_ID",
  managerPid: "ZIGGURAT_MANAGER_PID",
  listenFd: "ZIGGURAT_LISTEN_FD",
  port: "ZIGGURAT_PORT",
  regionFd: "ZIGGURAT_REGION_FD",
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
    /** The manager's listening socket, inherited; -1 when each worker binds (reuse port). */
    listenFd: number;
    /** The port the manager bound (the one to bind with reuse port). */
    port: number;
    /** The tree's shared region (see region.ts), inherited. */
    regionFd: number;
  };

/** The role of this process for a server with `workerNum` workers. */
export function currentRole(workerNum: number): Role {
  if (Deno.env.get(env.role) === "worker") {
    const number = (name: string) => {
      const value = Number(Deno.env.get(name));
      if (!Number.isInteger(value)) {
        throw new Error(
          `${name} must be an integer in a worker process, got "${Deno.env.get(name)}"`,
        );
      }
      return value;
    };
    return {
      kind: "worker",
      workerId: number(env.workerId),
      managerPid: number(env.managerPid),
      listenFd: number(env.listenFd),
      port: number(env.port),
      regionFd: number(env.regionFd),
    };
  }
  return workerNum > 1 ? { kind: "manager" } : { kind: "single" };
}

/** This process's own command line, to run the same entry module with the same flags. */
export function ownCommandLine(): string[] {
  const raw = Deno.readFileSync("/proc/self/cmdline");
  const args = new TextDecoder().decode(raw).split("\0");
  if (args.at(-1) === "") args.pop();
  args[0] = Deno.execPath();
  return args;
}
