/**
 * The manager: binds the listening socket, spawns `workerNum` workers (new Deno processes on
 * the same entry module, see role.ts), respawns a worker that dies under the same id, and stops
 * them all on shutdown (SIGTERM, then SIGKILL after `maxWaitTime`).
 *
 * In PROCESS mode it is the master too: its `reactorNum` native reactor threads own every
 * socket and reach the workers through rings in the shared region. Swoole forks a separate
 * manager because a multi-threaded master cannot fork safely; here children are spawned, not
 * forked, so the master's JavaScript thread, idle while the reactor threads work, supervises
 * the workers itself and the tree saves a Deno process.
 * @module
 */

import { library, unwrap } from "../_ffi/library.ts";
import type { Library } from "../_ffi/library.ts";
import { layout, ListenFlag } from "../_ffi/layout.ts";
import {
  formatAddress,
  heartbeatMs,
  isDatagram,
  isUnix,
  listenFlags,
  nativeConfig,
  nativeFraming,
} from "../options.ts";
import type { ResolvedOptions } from "../options.ts";
import type { Logger } from "../log.ts";
import { env, ownCommandLine, serverKey } from "./role.ts";
import { Region, WorkerStatus } from "../ipc/region.ts";
import type { Port } from "../port.ts";

const encoder = new TextEncoder();
const sigterm = 15;
const sigkill = 9;
const sigusr1 = 10;
const sigusr2 = 12;
/** SIGRTMIN as glibc numbers it (the two below are the C library's own). */
export const sigrtmin = 34;
/** The signals the manager takes over from Deno (see core/src/signals.zig). */
const taken = [sigusr1, sigusr2, sigrtmin];
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
  call(
    event:
      | "start"
      | "managerStart"
      | "managerStop"
      | "workerError"
      | "beforeReload"
      | "afterReload",
    args: number[],
  ): void;
  /** The bound port, once known. */
  setPort(port: number): void;
  /** User processes (`addProcess`), each run under its own endpoint. */
  readonly userProcessNum: number;
  /** The region and every endpoint's doorbell exist: the master's own mailbox can start. */
  openMail(region: Region, doorbells: number[]): void;
  /** A task worker died holding this task of endpoint `src`: tell its sender. */
  taskLost(src: number, taskId: number, taskWorkerId: number): void;
  /** The server's `listen()` ports, in order. */
  readonly ports: readonly Port[];
  /** SIGRTMIN: reopen the log file (and have every child do the same). */
  reopenLog(): void;
  /** Every worker was started: the tree listens (the pid file is due). */
  listening(): void;
  /** Every child has exited: stop the master's mailbox before its doorbells close. */
  closeMail(): Promise<void>;
}

/** Mailbox ring size (each direction of each pair of processes). */
const mailSize = 256 * 1024;

interface WorkerSlot {
  pid: number;
  startedAt: number;
  /** Told to stop for a reload or `stop(workerId)`: its exit is expected, its successor due. */
  retiring?: boolean;
}

/** A reload in progress: the workers still to replace, oldest first. */
interface Reload {
  onlyTask: boolean;
  /** Ids whose old process has not exited yet (async) or not been told yet (one by one). */
  waiting: Set<number>;
  queue: number[];
  /** Old processes still running after this get SIGKILL. */
  killAt: number;
}

export class Manager {
  #host: ManagerHost;
  #lib!: Library;
  #supervisor: Deno.PointerValue = null;
  #listenFd = -1;
  #port = 0;
  /** The `listen()` ports' sockets and bound ports, after the server's own. */
  #extraFds: number[] = [];
  #extraPorts: number[] = [];
  #workers = new Map<number, WorkerSlot>();
  /** Every worker id spawned at least once (its later processes are respawns). */
  #everSpawned = new Set<number>();
  #stopping = false;
  #killAt = 0;
  #region: Region | undefined;
  /** The command line workers run (checked once, before anything is bound). */
  #argv: string[] = [];
  /** PROCESS mode: the master's reactor threads, their kick fds and the workers' doorbells. */
  #process: Deno.PointerValue = null;
  #kickFds: number[] = [];
  /** Every endpoint's doorbell: event workers, task workers, user processes, this process. */
  #doorbells: number[] = [];
  #joined: Promise<number> | undefined;
  #reload: Reload | undefined;
  /** Deliveries of the taken signals seen so far. */
  #signalsSeen = new Map<number, number>();

  constructor(host: ManagerHost) {
    this.#host = host;
  }

  /** Binds, spawns the workers and supervises them until `stop()`; then cleans up. */
  async run(): Promise<void> {
    this.#lib = library();
    this.#argv = ownCommandLine();
    this.#bind();
    const o = this.#host.options;
    const processMode = o.mode === "process";
    this.#region = Region.create({
      workerNum: o.workerNum,
      taskWorkerNum: o.taskWorkerNum,
      userProcessNum: this.#host.userProcessNum,
      reactorNum: processMode ? o.reactorNum : 0,
      ringSize: o.ringSize,
      mailSize,
      maxConnection: o.maxConnection,
      socketBufferSize: o.socketBufferSize,
    });
    const handle = new BigUint64Array(1);
    unwrap(this.#lib.zg_supervisor_create(handle), "create the supervisor");
    this.#supervisor = Deno.UnsafePointer.create(handle[0]);
    this.#takeSignals();
    // Deno installs its own SIGUSR1 handler (the inspector) half a second after it starts:
    // look every 50 ms for the first two seconds, and take the signal back.
    const retake = setInterval(() => this.#takeSignals(), 50);
    Deno.unrefTimer(retake);
    const retakeEnd = setTimeout(() => clearInterval(retake), 2000);
    Deno.unrefTimer(retakeEnd);
    try {
      const fd = new Int32Array(1);
      for (let i = 0; i < this.#region.endpointCount; i++) {
        unwrap(this.#lib.zg_eventfd(fd), "create a doorbell");
        this.#doorbells.push(fd[0]);
      }
      this.#host.openMail(this.#region, this.#doorbells);
      if (processMode) this.#startReactors();
      this.#host.call("managerStart", []);
      try {
        // Task workers first (event workers may hand them tasks at once), then event workers,
        // then user processes. shutdown() in managerStart stops the tree before it grows.
        const order = [
          ...range(o.workerNum, o.workerNum + o.taskWorkerNum),
          ...range(0, o.workerNum),
          ...range(o.workerNum + o.taskWorkerNum, this.#region.slotCount),
        ];
        for (const id of order) {
          if (this.#stopping) break;
          this.#spawn(id);
        }
        if (processMode && !this.#stopping) this.#host.call("start", []);
        if (!this.#stopping) this.#host.listening();
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
      clearInterval(retake);
      clearTimeout(retakeEnd);
      // The supervisor's fd closes below: the signals stay taken, waking nothing.
      for (const signo of taken) this.#lib.zg_signal_take(signo, -1);
      if (this.#process !== null) {
        this.#lib.zg_process_shutdown(this.#process);
        await (this.#joined ?? this.#lib.zg_process_join(this.#process));
        this.#lib.zg_process_destroy(this.#process);
        this.#process = null;
      }
      this.#lib.zg_supervisor_destroy(this.#supervisor);
      this.#supervisor = null;
      // The listening socket, or with reuse port the bound-only socket holding the port.
      if (this.#listenFd >= 0) this.#lib.zg_close_fd(this.#listenFd);
      this.#listenFd = -1;
      for (const fd of this.#extraFds) this.#lib.zg_close_fd(fd);
      this.#extraFds = [];
      // The region stays mapped (stats() still reads it); its fd is no longer passed on.
      if (this.#region) this.#lib.zg_close_fd(this.#region.fd);
      await this.#host.closeMail();
      for (const fd of this.#doorbells) this.#lib.zg_close_fd(fd);
      this.#doorbells = [];
    }
  }

  /** Asks every worker to stop (SIGTERM); those still running after `maxWaitTime` get SIGKILL. */
  stop(): void {
    if (this.#stopping || this.#supervisor === null) return;
    this.#stopping = true;
    const waitMs = this.#host.options.maxWaitTime * 1000;
    if (this.#process !== null) {
      // The reactor threads deliver `shutdown`, write what is queued, close every session and
      // end each worker's rings with `stopped`; the workers then exit by themselves. The
      // reactors wait up to maxWaitTime for the workers' answer and again for the flush.
      this.#lib.zg_process_shutdown(this.#process);
      this.#joined = this.#lib.zg_process_join(this.#process);
      this.#killAt = performance.now() + 3 * waitMs + 1000;
      // Task workers and user processes have no reactor lanes: they are told directly.
      for (const id of this.#workers.keys()) {
        if (id >= this.#host.options.workerNum) {
          this.#lib.zg_supervisor_kill(this.#supervisor, id, sigterm);
        }
      }
      this.#lib.zg_supervisor_kick(this.#supervisor);
      return;
    }
    this.#killAt = performance.now() + waitMs;
    for (const id of this.#workers.keys()) {
      this.#lib.zg_supervisor_kill(this.#supervisor, id, sigterm);
    }
    this.#lib.zg_supervisor_kick(this.#supervisor);
  }

  /**
   * Swoole's reload: replaces every event and task worker (`onlyTask`: task workers only; user
   * processes never) with a new process of the current code. With `reloadAsync` all of them are
   * told at once (SIGTERM: each hands what it queued to the rings and exits, and its successor
   * starts as soon as it is gone); without, one after the other. Old processes still running
   * after `maxWaitTime` get SIGKILL. False when a reload is already in progress or the server
   * is stopping.
   */
  reload(onlyTask: boolean): boolean {
    if (this.#stopping || this.#supervisor === null) return false;
    if (this.#reload) {
      this.#host.log.warning("reload asked for while one is in progress; ignored");
      return false;
    }
    const o = this.#host.options;
    const ids = [...this.#workers.keys()].filter((id) => {
      const type = this.#typeOf(id);
      return type === "task" || (type === "event" && !onlyTask);
    }).sort((a, b) => a - b);
    this.#host.log.info(`reloading ${ids.length} ${onlyTask ? "task " : ""}worker(s)`);
    this.#host.call("beforeReload", []);
    this.#reload = {
      onlyTask,
      waiting: new Set(),
      queue: ids,
      killAt: performance.now() + o.maxWaitTime * 1000,
    };
    this.#advanceReload();
    this.#lib.zg_supervisor_kick(this.#supervisor);
    return true;
  }

  /** Restarts one worker (Swoole's `stop(workerId)`): it exits cleanly and is replaced. */
  restart(id: number): boolean {
    const slot = this.#workers.get(id);
    if (!slot || this.#stopping || this.#supervisor === null) return false;
    slot.retiring = true;
    this.#lib.zg_supervisor_kill(this.#supervisor, id, sigterm);
    return true;
  }

  /** SIGUSR1, SIGUSR2, SIGRTMIN: counted natively, and they wake the supervision loop. */
  #takeSignals() {
    if (this.#supervisor === null) return;
    const wake = this.#lib.zg_supervisor_kick_fd(this.#supervisor);
    for (const signo of taken) {
      if (this.#lib.zg_signal_is_taken(signo) === 0) this.#lib.zg_signal_take(signo, wake);
      if (!this.#signalsSeen.has(signo)) {
        this.#signalsSeen.set(signo, this.#lib.zg_signal_count(signo));
      }
    }
  }

  /** Acts on the taken signals that arrived since the last look. */
  #checkSignals() {
    for (const signo of taken) {
      const count = this.#lib.zg_signal_count(signo);
      if (count === this.#signalsSeen.get(signo)) continue;
      this.#signalsSeen.set(signo, count);
      if (signo === sigusr1) this.reload(false);
      else if (signo === sigusr2) this.reload(true);
      else {
        this.#host.reopenLog();
        // Every child reopens too (each takes SIGRTMIN the same way, when it logs to a file;
        // otherwise SIGRTMIN would end it).
        if (this.#host.options.logFile) {
          for (const id of this.#workers.keys()) {
            // One still starting has not taken SIGRTMIN yet (it would die of it); it opens
            // the new file anyway.
            if (this.#region!.status(id) === WorkerStatus.notStarted) continue;
            this.#lib.zg_supervisor_kill(this.#supervisor, id, sigrtmin);
          }
        }
      }
    }
  }

  /** Tells the next workers of the reload to go: all at once (async) or the next one. */
  #advanceReload() {
    const reload = this.#reload!;
    const async = this.#host.options.reloadAsync;
    while (reload.queue.length > 0 && (async || reload.waiting.size === 0)) {
      const id = reload.queue.shift()!;
      const slot = this.#workers.get(id);
      if (!slot) continue;
      slot.retiring = true;
      reload.waiting.add(id);
      reload.killAt = performance.now() + this.#host.options.maxWaitTime * 1000;
      this.#lib.zg_supervisor_kill(this.#supervisor, id, sigterm);
    }
    if (reload.queue.length === 0 && reload.waiting.size === 0) {
      this.#reload = undefined;
      this.#host.log.info("reload done");
      this.#host.call("afterReload", []);
    }
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
      (isUnix(o.sockType) ? ListenFlag.unix : 0) |
      (isDatagram(o.sockType) ? ListenFlag.udp : 0) |
      (o.enableReusePort ? ListenFlag.reusePort : 0) |
      (o.enableReusePort && o.mode === "base" ? ListenFlag.bindOnly : 0);
    const where = formatAddress(o.host, o.port);
    unwrap(
      this.#lib.zg_listen(host, BigInt(host.length), o.port, o.backlog, flags, fd, port),
      `listen on "${where}"`,
    );
    this.#port = port[0];
    this.#host.setPort(this.#port);
    this.#listenFd = fd[0];
    for (const p of this.#host.ports) {
      const pFlags = listenFlags(p.sockType, o) |
        (o.enableReusePort && o.mode === "base" ? ListenFlag.bindOnly : 0);
      const bytes = encoder.encode(p.host);
      unwrap(
        this.#lib.zg_listen(bytes, BigInt(bytes.length), p.port, o.backlog, pFlags, fd, port),
        `listen on "${formatAddress(p.host, p.port)}"`,
      );
      this.#extraFds.push(fd[0]);
      this.#extraPorts.push(port[0]);
      p.bound(port[0]);
    }
    if (o.tcpDeferAccept || o.tcpFastopen) {
      unwrap(
        this.#lib.zg_listen_options(this.#listenFd, o.tcpDeferAccept, o.tcpFastopen),
        "set the listen options",
      );
    }
  }

  /** PROCESS mode: the reactor threads that own the sockets, in this process. */
  #startReactors() {
    const o = this.#host.options;
    const config = nativeConfig(o, 0, o.reactorNum);
    const handle = new BigUint64Array(1);
    const flags = o.openTcpNodelay ? ListenFlag.tcpNodelay : 0;
    unwrap(
      this.#lib.zg_process_create(
        config,
        this.#region!.pointer,
        this.#listenFd,
        this.#port,
        flags,
        new Int32Array(this.#doorbells.slice(0, o.workerNum)),
        handle,
      ),
      "create the reactor threads",
    );
    this.#process = Deno.UnsafePointer.create(handle[0]);
    const kick = new Int32Array(o.reactorNum);
    unwrap(this.#lib.zg_process_kick_fds(this.#process, kick), "get the reactor threads' fds");
    this.#kickFds = [...kick];
    unwrap(this.#lib.zg_process_framing(this.#process, nativeFraming(o)), "set the framing");
    this.#host.ports.forEach((p, i) => {
      unwrap(
        this.#lib.zg_process_add_listener(
          this.#process,
          this.#extraFds[i],
          this.#extraPorts[i],
          listenFlags(p.sockType, p.optionsOver(o) ?? o),
        ),
        `listen on "${formatAddress(p.host, p.port)}"`,
      );
      const own = p.optionsOver(o);
      if (own) {
        unwrap(
          this.#lib.zg_process_port_framing(
            this.#process,
            p.index,
            nativeFraming(own, p.ownHeartbeatIdleTime),
          ),
          "set a port's framing",
        );
      }
    });
    const heartbeat = heartbeatMs(o, this.#host.ports.map((p) => p.ownHeartbeatIdleTime));
    unwrap(
      this.#lib.zg_process_heartbeat(this.#process, heartbeat.intervalMs, heartbeat.idleMs),
      "set the heartbeat",
    );
    unwrap(this.#lib.zg_process_start(this.#process), "start the reactor threads");
  }

  /** What slot `id` runs: event workers, then task workers, then user processes. */
  #typeOf(id: number): "event" | "task" | "process" {
    const o = this.#host.options;
    if (id < o.workerNum) return "event";
    return id < o.workerNum + o.taskWorkerNum ? "task" : "process";
  }

  #spawn(id: number) {
    const argv = this.#argv;
    const o = this.#host.options;
    const processMode = this.#process !== null;
    const type = this.#typeOf(id);
    const shareSocket = !o.enableReusePort && !processMode && type === "event";
    // The child gets the region as fd 3, then (BASE event workers) the listening socket, then
    // every endpoint's doorbell and (PROCESS) the reactor threads' kick fds (spawn.zig).
    const listenFds = shareSocket ? [this.#listenFd, ...this.#extraFds] : [];
    const fds = [this.#region!.fd, ...listenFds];
    const doorbellAt = 3 + fds.length;
    fds.push(...this.#doorbells);
    const kickAt = 3 + fds.length;
    const kicks = processMode && type === "event" ? this.#kickFds : [];
    fds.push(...kicks);
    const vars: Record<string, string> = {
      ...Deno.env.toObject(),
      [env.role]: "worker",
      [env.workerId]: String(id),
      [env.managerPid]: String(Deno.pid),
      [env.listenFd]: shareSocket
        ? listenFds.map((_, i) => 4 + i).join(",")
        : [this.#port, ...this.#extraPorts].map(() => "-1").join(","),
      [env.port]: [this.#port, ...this.#extraPorts].join(","),
      [env.regionFd]: "3",
      [env.server]: serverKey(o.host, o.port, o.workerNum),
      [env.workerType]: type,
      [env.doorbellFds]: this.#doorbells.map((_, i) => doorbellAt + i).join(","),
      [env.kickFds]: kicks.map((_, i) => kickAt + i).join(","),
      [env.respawned]: this.#everSpawned.has(id) ? "1" : "0",
    };
    const argvBytes = encoder.encode(argv.map((a) => a + "\0").join(""));
    const envBytes = encoder.encode(Object.entries(vars).map(([k, v]) => `${k}=${v}\0`).join(""));
    const fdList = new Int32Array(fds);
    const pid = new Int32Array(1);
    unwrap(
      this.#lib.zg_supervisor_spawn(
        this.#supervisor,
        id,
        argvBytes,
        BigInt(argvBytes.length),
        envBytes,
        BigInt(envBytes.length),
        fdList,
        fdList.length,
        pid,
      ),
      `spawn ${
        type === "event" ? "worker" : type === "task" ? "task worker" : "user process"
      } ${id}`,
    );
    this.#workers.set(id, { pid: pid[0], startedAt: performance.now() });
    this.#everSpawned.add(id);
    // Idle once it runs (it says so itself); until then it takes no signal but SIGTERM/SIGKILL.
    this.#region!.setWorker(id, pid[0], WorkerStatus.notStarted);
  }

  async #supervise() {
    const exits = new Int32Array((16 * layout.childExitSize) / 4);
    while (this.#workers.size > 0) {
      // Until a deadline (maxWaitTime while stopping or reloading); otherwise until something
      // happens.
      const deadline = this.#stopping
        ? this.#killAt
        : this.#reload
        ? this.#reload.killAt
        : Infinity;
      const timeout = deadline !== Infinity
        ? Math.min(2 ** 31 - 1, Math.max(0, Math.ceil(deadline - performance.now())))
        : -1;
      const count = await this.#lib.zg_supervisor_wait(this.#supervisor, exits, 16, timeout);
      this.#checkSignals();
      for (let i = 0; i < count; i++) {
        const [id, pid, code, signal] = exits.subarray(i * 4, i * 4 + 4);
        const slot = this.#workers.get(id);
        this.#workers.delete(id);
        // A worker that left on purpose (maxRequest, taskMaxRequest) marked itself exited.
        const planned = this.#region!.status(id) === WorkerStatus.exited;
        // Exited, and no pid: gone (a worker that drains is exited with its pid).
        this.#region!.setWorker(id, 0, WorkerStatus.exited);
        this.#region!.clearGauges(id);
        if (this.#typeOf(id) === "event") {
          if (this.#process !== null) {
            // Its sockets live on; those waiting for its answer to a close do not wait forever.
            this.#lib.zg_process_worker_exited(this.#process, id);
          } else {
            // Its sockets died with it: gone from the shared table for every process now.
            this.#lib.zg_region_clear_table(this.#region!.pointer, id);
          }
        }
        if (this.#typeOf(id) === "task") {
          // Tasks it held are lost with it; their senders hear so instead of waiting forever.
          for (const { src, taskId } of this.#region!.takeRunning(id)) {
            this.#host.taskLost(src, taskId, id);
          }
          this.#region!.setTasking(id, 0);
        }
        if (this.#stopping) continue;
        if (slot?.retiring) {
          this.#replace(id, pid);
        } else {
          await this.#respawn(id, pid, code, signal, slot?.startedAt ?? 0, planned && code === 0);
        }
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
      const reload = this.#reload;
      if (reload && !this.#stopping && performance.now() >= reload.killAt) {
        for (const id of reload.waiting) {
          const w = this.#workers.get(id);
          if (!w?.retiring) continue;
          this.#host.log.warning(
            `worker ${id} (pid ${w.pid}) still running ${this.#host.options.maxWaitTime} s after the reload told it to stop: SIGKILL`,
          );
          this.#lib.zg_supervisor_kill(this.#supervisor, id, sigkill);
        }
        reload.killAt = Infinity;
      }
    }
  }

  /** A worker that was told to go (reload, `stop(workerId)`) went: its successor starts now. */
  #replace(id: number, pid: number) {
    try {
      this.#spawn(id);
    } catch (error) {
      this.#host.log.error(`cannot start the successor of worker ${id} (pid ${pid})`, error);
      this.#respawn(id, pid, 1, 0, 0);
    }
    const reload = this.#reload;
    if (reload?.waiting.delete(id)) this.#advanceReload();
  }

  async #respawn(
    id: number,
    pid: number,
    code: number,
    signal: number,
    startedAt: number,
    planned = false,
  ) {
    const what =
      { event: "worker", task: "task worker", process: "user process" }[this.#typeOf(id)];
    if (code !== 0) {
      this.#host.log.warning(
        `${what} ${id} (pid ${pid}) exited abnormally: code ${code}, signal ${signal}; respawning it`,
      );
      this.#host.call("workerError", [id, pid, code, signal]);
    } else {
      this.#host.log.info(`${what} ${id} (pid ${pid}) exited (code 0); respawning it`);
    }
    // A planned exit (maxRequest, taskMaxRequest) is no crash: no crash-loop delay for it.
    let lived = planned ? crashLoopMs : performance.now() - startedAt;
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

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}
