/**
 * The manager: binds the listening socket, spawns `workerNum` workers (new Deno processes on
 * the same entry module, see role.ts), respawns a worker that dies under the same id, and stops
 * them all on shutdown (SIGTERM, then SIGKILL after `maxWaitTime`).
 * @module
 */

import { library, unwrap } from "./_ffi/library.ts";
import type { Library } from "./_ffi/library.ts";
import { layout, ListenFlag } from "./_ffi/layout.ts";
import { formatAddress } from "./options.ts";
import type { ResolvedOptions } from "./options.ts";
import type { Logger } from "./log.ts";
import { env, ownCommandLine, serverKey } from "./role.ts";
import { Region, WorkerStatus } from "./region.ts";

const encoder = new TextEncoder();
const sigterm = 15;
const sigkill = 9;
/** A worker that dies sooner than this after its start is respawned only after this long. */
const crashLoopMs = 1000;

/** What the manager needs of the server it runs for. */
export interface ManagerHost {
  readonly options: Readonly<ResolvedOptions>;
  readonly log: Logger;
  /**
   * Runs a callback of the server with `args` after the server (logged if it throws):
   * `workerError` gets `[workerId, workerPid, exitCode, signal]`, the others nothing.
   */
  call(event: "managerStart" | "managerStop" | "workerError", args: number[]): void;
  /** The bound port, once known. */
  setPort(port: number): void;
}

interface WorkerSlot {
  pid: number;
  startedAt: number;
}

export class Manager {
  #host: ManagerHost;
  #lib!: Library;
  #supervisor: Deno.PointerValue = null;
  #listenFd = -1;
  #port = 0;
  #workers = new Map<number, WorkerSlot>();
  #stopping = false;
  #killAt = 0;
  #region: Region | undefined;
  /** The command line workers run (checked once, before anything is bound). */
  #argv: string[] = [];

  constructor(host: ManagerHost) {
    this.#host = host;
  }

  /** Binds, spawns the workers and supervises them until `stop()`; then cleans up. */
  async run(): Promise<void> {
    this.#lib = library();
    this.#argv = ownCommandLine();
    this.#bind();
    this.#region = Region.create(this.#host.options.workerNum);
    const handle = new BigUint64Array(1);
    unwrap(this.#lib.zg_supervisor_create(handle), "create the supervisor");
    this.#supervisor = Deno.UnsafePointer.create(handle[0]);
    try {
      this.#host.call("managerStart", []);
      try {
        // shutdown() in managerStart stops the tree before it grows.
        for (let id = 0; id < this.#host.options.workerNum && !this.#stopping; id++) {
          this.#spawn(id);
        }
      } catch (error) {
        // Take down the workers already running, then report.
        this.#stopping = true;
        this.#killAt = performance.now();
        await this.#supervise();
        throw error;
      }
      await this.#supervise();
      this.#host.call("managerStop", []);
    } finally {
      this.#lib.zg_supervisor_destroy(this.#supervisor);
      this.#supervisor = null;
      // The listening socket, or with reuse port the bound-only socket holding the port.
      if (this.#listenFd >= 0) this.#lib.zg_close_fd(this.#listenFd);
      this.#listenFd = -1;
      // The region stays mapped (stats() still reads it); its fd is no longer passed on.
      if (this.#region) this.#lib.zg_close_fd(this.#region.fd);
    }
  }

  /** Asks every worker to stop (SIGTERM); those still running after `maxWaitTime` get SIGKILL. */
  stop(): void {
    if (this.#stopping || this.#supervisor === null) return;
    this.#stopping = true;
    this.#killAt = performance.now() + this.#host.options.maxWaitTime * 1000;
    for (const id of this.#workers.keys()) {
      this.#lib.zg_supervisor_kill(this.#supervisor, id, sigterm);
    }
    this.#lib.zg_supervisor_kick(this.#supervisor);
  }

  /** The shared region (worker table and counters). */
  get region(): Region | undefined {
    return this.#region;
  }

  #bind() {
    const o = this.#host.options;
    const host = encoder.encode(o.host);
    const fd = new Int32Array(1);
    const port = new Uint32Array(1);
    // With reuse port each worker binds its own socket; the manager's stays bound but does
    // not listen, so it holds the port (between a worker's death and its respawn too) and
    // takes no connections.
    const flags = (o.ipv6Only ? ListenFlag.ipv6Only : 0) |
      (o.enableReusePort ? ListenFlag.reusePort | ListenFlag.bindOnly : 0);
    const where = formatAddress(o.host, o.port);
    unwrap(
      this.#lib.zg_listen(host, BigInt(host.length), o.port, o.backlog, flags, fd, port),
      `listen on "${where}"`,
    );
    this.#port = port[0];
    this.#host.setPort(this.#port);
    this.#listenFd = fd[0];
  }

  #spawn(id: number) {
    const argv = this.#argv;
    const o = this.#host.options;
    const shareSocket = !o.enableReusePort;
    // The child gets the region as fd 3 and the listening socket as fd 4 (spawn.zig).
    const vars: Record<string, string> = {
      ...Deno.env.toObject(),
      [env.role]: "worker",
      [env.workerId]: String(id),
      [env.managerPid]: String(Deno.pid),
      [env.listenFd]: shareSocket ? "4" : "-1",
      [env.port]: String(this.#port),
      [env.regionFd]: "3",
      [env.server]: serverKey(o.host, o.port, o.workerNum),
    };
    const argvBytes = encoder.encode(argv.map((a) => a + "\0").join(""));
    const envBytes = encoder.encode(Object.entries(vars).map(([k, v]) => `${k}=${v}\0`).join(""));
    const fds = new Int32Array([this.#region!.fd, ...(shareSocket ? [this.#listenFd] : [])]);
    const pid = new Int32Array(1);
    unwrap(
      this.#lib.zg_supervisor_spawn(
        this.#supervisor,
        id,
        argvBytes,
        BigInt(argvBytes.length),
        envBytes,
        BigInt(envBytes.length),
        fds,
        fds.length,
        pid,
      ),
      `spawn worker ${id}`,
    );
    this.#workers.set(id, { pid: pid[0], startedAt: performance.now() });
    this.#region!.setWorker(id, pid[0], WorkerStatus.idle);
  }

  async #supervise() {
    const exits = new Int32Array((16 * layout.childExitSize) / 4);
    while (this.#workers.size > 0) {
      // Until maxWaitTime runs out while stopping; otherwise until something happens.
      const timeout = this.#stopping && this.#killAt !== Infinity
        ? Math.min(2 ** 31 - 1, Math.max(0, Math.ceil(this.#killAt - performance.now())))
        : -1;
      const count = await this.#lib.zg_supervisor_wait(this.#supervisor, exits, 16, timeout);
      for (let i = 0; i < count; i++) {
        const [id, pid, code, signal] = exits.subarray(i * 4, i * 4 + 4);
        const slot = this.#workers.get(id);
        this.#workers.delete(id);
        this.#region!.setStatus(id, WorkerStatus.exited);
        this.#region!.clearGauges(id);
        if (this.#stopping) continue;
        await this.#respawn(id, pid, code, signal, slot?.startedAt ?? 0);
      }
      if (this.#stopping && this.#workers.size > 0 && performance.now() >= this.#killAt) {
        for (const [id, w] of this.#workers) {
          this.#host.log.warning(
            `worker ${id} (pid ${w.pid}) still running after maxWaitTime: SIGKILL`,
          );
          this.#lib.zg_supervisor_kill(this.#supervisor, id, sigkill);
        }
        this.#killAt = Infinity;
      }
    }
  }

  async #respawn(id: number, pid: number, code: number, signal: number, startedAt: number) {
    if (code !== 0) {
      this.#host.log.warning(
        `worker ${id} (pid ${pid}) exited abnormally: code ${code}, signal ${signal}; respawning it`,
      );
      this.#host.call("workerError", [id, pid, code, signal]);
    } else {
      this.#host.log.warning(`worker ${id} (pid ${pid}) exited on its own (code 0); respawning it`);
    }
    let lived = performance.now() - startedAt;
    while (!this.#stopping) {
      if (lived < crashLoopMs) {
        // A worker that dies at once would otherwise be respawned in a tight loop.
        await new Promise((resolve) => setTimeout(resolve, crashLoopMs - lived));
        if (this.#stopping) return;
      }
      try {
        this.#spawn(id);
        return;
      } catch (error) {
        this.#host.log.error(
          `cannot respawn worker ${id}; trying again in ${crashLoopMs} ms`,
          error,
        );
        lived = 0;
      }
    }
  }
}
