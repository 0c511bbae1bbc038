/**
 * The manager (Swoole's manager.cc): spawns the workers (event workers, task workers, user
 * processes: new Deno processes on the same entry module, see role.ts), respawns one that dies
 * under the same id, replaces them for a reload or `stop(workerId)`, and stops them all on
 * shutdown (SIGTERM, then SIGKILL after `maxWaitTime`). It runs in the master's process
 * (master.ts), which binds and owns what the workers inherit.
 *
 * - `run`: `managerStart`, the first spawns, `#supervise` until every worker is gone
 * - `stop`, `reload`, `restart`: what the master asks
 * - `#spawn`, `#supervise`, `#respawn`, `#replace`, `#advanceReload`: the workers' lives
 * - `#checkSignals`: SIGUSR1/SIGUSR2 reload, SIGRTMIN reopens every process's log
 * @module
 */

import { library, unwrap } from "../_ffi/library.ts";
import type { Library } from "../_ffi/library.ts";
import { layout } from "../_ffi/layout.ts";
import type { ResolvedOptions } from "../options.ts";
import type { Logger } from "../log.ts";
import { env, ownCommandLine, packArgv, packEnv, serverKey } from "./role.ts";
import { WorkerStatus } from "../ipc/region.ts";
import type { Region } from "../ipc/region.ts";
import { Signal, TakenSignals } from "../operations/signals.ts";
import { Rotation } from "../operations/rotation.ts";

/** The signals the manager takes over from Deno (see core/src/signals.zig). */
const taken = [Signal.usr1, Signal.usr2, Signal.rtmin, Signal.drain, Signal.undrain];
/** A worker that dies sooner than this after its start is respawned only after this long. */
const crashLoopMs = 1000;

/** What the fds of a spawn are: the master's, in the order the child inherits them. */
export interface SpawnFds {
  region: Region;
  /** Every endpoint's doorbell. */
  doorbells: number[];
  /** BASE mode: the listening sockets the event workers share (none with reuse port). */
  listenFds: number[];
  /** The bound ports: the server's, then each `listen()` port's. */
  ports: number[];
  /** PROCESS mode: each reactor thread's kick fd. */
  kickFds: number[];
}

/** What the manager needs of the master it runs in. */
export interface ManagerHost {
  readonly options: Readonly<ResolvedOptions>;
  readonly log: Logger;
  /**
   * Runs a callback of the server with `args` after the server (logged if it throws):
   * `workerError` gets `[workerId, workerPid, exitCode, signal]`, the others nothing.
   */
  call(
    event: "managerStart" | "managerStop" | "workerError" | "beforeReload" | "afterReload",
    args: number[],
  ): void;
  /** What every child inherits (the master has bound and created it all by `run()`). */
  spawnFds(): SpawnFds;
  /** A task worker died holding this task of endpoint `src`: tell its sender. */
  taskLost(src: number, taskId: number, taskWorkerId: number): void;
  /** SIGRTMIN: reopen the log file (every child is told to as well). */
  reopenLog(): void;
  /** SIGRTMIN+1 / +2 (`ziggurat drain [--undo]`): out of a balancer's rotation, or back in. */
  drain(out: boolean): void;
  /** Every worker was started: the tree listens. */
  started(): void;
  /** Event worker `id` is gone (its sessions: kept by the reactor threads, or gone with it). */
  workerExited(id: number): void;
  /**
   * Shutdown: PROCESS mode's reactor threads stop the event workers (true); false when they
   * are to be told by signal.
   */
  stopReactors(): boolean;
}

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
  #lib: Library;
  #supervisor: Deno.PointerValue = null;
  #workers = new Map<number, WorkerSlot>();
  /** Every worker id spawned at least once (its later processes are respawns). */
  #everSpawned = new Set<number>();
  #stopping = false;
  #killAt = 0;
  /** What every child inherits, once `run()` starts. */
  #fds!: SpawnFds;
  /** The command line workers run. */
  #argv: string[];
  #reload: Reload | undefined;
  #signals: TakenSignals;
  /**
   * BASE mode: for each event worker id, the socket pair end its current process's WebSockets
   * arrive on when it leaves, passed to its successor (core/src/carry.zig).
   */
  #carry = new Map<number, number>();
  /**
   * The predecessor's end each event worker process was given, kept until that process has run
   * (taken its WebSockets up): one that dies first leaves them to the next.
   */
  #carryGiven = new Map<number, number>();

  /** Throws when this process's command line cannot be run again (see `ownCommandLine`). */
  constructor(host: ManagerHost) {
    this.#host = host;
    this.#lib = library();
    this.#argv = ownCommandLine();
    this.#signals = new TakenSignals(this.#lib);
  }

  /** Spawns the workers and supervises them until `stop()` and every one of them is gone. */
  async run(): Promise<void> {
    const o = this.#host.options;
    this.#fds = this.#host.spawnFds();
    const handle = new BigUint64Array(1);
    unwrap(this.#lib.zg_supervisor_create(handle), "create the supervisor");
    this.#supervisor = Deno.UnsafePointer.create(handle[0]);
    // SIGUSR1, SIGUSR2, SIGRTMIN: counted natively, and they wake the supervision loop.
    this.#signals.take(taken, this.#lib.zg_supervisor_kick_fd(this.#supervisor), true);
    try {
      this.#host.call("managerStart", []);
      try {
        // Task workers first (event workers may hand them tasks at once), then event workers,
        // then user processes. shutdown() in managerStart stops the tree before it grows.
        const order = [
          ...range(o.workerNum, o.workerNum + o.taskWorkerNum),
          ...range(0, o.workerNum),
          ...range(o.workerNum + o.taskWorkerNum, this.#fds.region.slotCount),
        ];
        for (const id of order) {
          if (this.#stopping) break;
          this.#spawn(id);
        }
        if (!this.#stopping) this.#host.started();
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
      // The supervisor's fd closes below: the signals stay taken, waking nothing.
      this.#signals.release();
      this.#lib.zg_supervisor_destroy(this.#supervisor);
      this.#supervisor = null;
      this.#closeCarried();
    }
  }

  /** Asks every worker to stop (SIGTERM); those still running after `maxWaitTime` get SIGKILL. */
  stop(): void {
    if (this.#stopping || this.#supervisor === null) return;
    this.#stopping = true;
    // BASE workers that leave now close their WebSockets: no successor will take them up, and
    // those a worker carried just before end now.
    unwrap(this.#lib.zg_region_set_stopping(this.#fds.region.pointer), "mark the tree stopping");
    this.#closeCarried();
    const o = this.#host.options;
    const waitMs = o.maxWaitTime * 1000;
    if (this.#host.stopReactors()) {
      // The reactor threads wait up to maxWaitTime for the workers' answer and again for the
      // flush. Task workers and user processes have no reactor lanes: they are told directly.
      this.#killAt = performance.now() + 3 * waitMs + 1000;
      for (const id of this.#workers.keys()) {
        if (id >= o.workerNum) this.#lib.zg_supervisor_kill(this.#supervisor, id, Signal.term);
      }
    } else {
      this.#killAt = performance.now() + waitMs;
      for (const id of this.#workers.keys()) {
        this.#lib.zg_supervisor_kill(this.#supervisor, id, Signal.term);
      }
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
    if (this.#leaving()) {
      this.#host.log.warning(
        "reload asked for while the server waits out its shutdownDelay; ignored",
      );
      return false;
    }
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
    if (!slot || this.#stopping || this.#supervisor === null || this.#leaving()) return false;
    slot.retiring = true;
    this.#lib.zg_supervisor_kill(this.#supervisor, id, Signal.term);
    return true;
  }

  /**
   * The server shuts down after its shutdownDelay: a reload in progress ends here. The workers it
   * told to go leave or serve on as they decide (one that got its SIGTERM as the delay began
   * serves on until the stop); none is SIGKILLed for it, none is told next.
   */
  abandonReload(): void {
    if (!this.#reload) return;
    this.#host.log.info("reload abandoned: the server shuts down after its shutdownDelay");
    this.#reload = undefined;
  }

  /**
   * A SIGTERM's shutdown is on its way (src/operations/rotation.ts): the workers ignore a SIGTERM
   * meanwhile (one sent to the whole group, as systemd does), so none is replaced now.
   */
  #leaving(): boolean {
    return this.#fds?.region.rotation === Rotation.leaving;
  }

  /** Acts on the taken signals that arrived since the last look. */
  #checkSignals() {
    for (const signo of taken) {
      if (!this.#signals.arrived(signo)) continue;
      if (signo === Signal.usr1) this.reload(false);
      else if (signo === Signal.usr2) this.reload(true);
      else if (signo === Signal.drain || signo === Signal.undrain) {
        this.#host.drain(signo === Signal.drain);
      } else {
        this.#host.reopenLog();
        // Every child reopens too (each takes SIGRTMIN the same way, when it logs to a file;
        // otherwise SIGRTMIN would end it).
        if (this.#host.options.logFile) {
          for (const id of this.#workers.keys()) {
            // One still starting has not taken SIGRTMIN yet (it would die of it); it opens
            // the new file anyway.
            if (this.#fds.region.status(id) === WorkerStatus.notStarted) continue;
            this.#lib.zg_supervisor_kill(this.#supervisor, id, Signal.rtmin);
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
      this.#lib.zg_supervisor_kill(this.#supervisor, id, Signal.term);
    }
    if (reload.queue.length === 0 && reload.waiting.size === 0) {
      this.#reload = undefined;
      this.#host.log.info("reload done");
      this.#host.call("afterReload", []);
    }
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
    const inherit = this.#fds;
    const type = this.#typeOf(id);
    const shareSocket = !o.enableReusePort && inherit.listenFds.length > 0 && type === "event";
    // The child gets the region as fd 3, then (BASE event workers) the listening sockets, then
    // every endpoint's doorbell and (PROCESS) the reactor threads' kick fds (spawn.zig).
    const listenFds = shareSocket ? inherit.listenFds : [];
    const fds = [inherit.region.fd, ...listenFds];
    const doorbellAt = 3 + fds.length;
    fds.push(...inherit.doorbells);
    const kickAt = 3 + fds.length;
    const kicks = type === "event" ? inherit.kickFds : [];
    fds.push(...kicks);
    // A BASE event worker: a socket pair for its WebSockets when it leaves, and the end its
    // predecessor's arrive on.
    const carryPair = type === "event" && inherit.kickFds.length === 0
      ? new Int32Array(2)
      : undefined;
    const inbox = this.#carry.get(id);
    let carryAt = "";
    if (carryPair) {
      unwrap(this.#lib.zg_carry_pair(carryPair), "make a socket pair");
      carryAt = `${3 + fds.length},${inbox === undefined ? -1 : 4 + fds.length}`;
      fds.push(carryPair[1], ...(inbox === undefined ? [] : [inbox]));
    }
    const vars: Record<string, string> = {
      ...Deno.env.toObject(),
      [env.role]: "worker",
      [env.workerId]: String(id),
      [env.managerPid]: String(Deno.pid),
      [env.listenFd]: shareSocket
        ? listenFds.map((_, i) => 4 + i).join(",")
        : inherit.ports.map(() => "-1").join(","),
      [env.port]: inherit.ports.join(","),
      [env.regionFd]: "3",
      [env.server]: serverKey(o.host, o.port, o.workerNum),
      [env.workerType]: type,
      [env.doorbellFds]: inherit.doorbells.map((_, i) => doorbellAt + i).join(","),
      [env.kickFds]: kicks.map((_, i) => kickAt + i).join(","),
      [env.respawned]: this.#everSpawned.has(id) ? "1" : "0",
      [env.carryFds]: carryAt,
    };
    const argvBytes = packArgv(argv);
    const envBytes = packEnv(vars);
    const fdList = new Int32Array(fds);
    const pid = new Int32Array(1);
    const spawned = this.#lib.zg_supervisor_spawn(
      this.#supervisor,
      id,
      argvBytes,
      BigInt(argvBytes.length),
      envBytes,
      BigInt(envBytes.length),
      fdList,
      fdList.length,
      pid,
    );
    if (carryPair) {
      // The child has its end and the predecessor's; this process keeps the successor's (or,
      // when the spawn failed, the predecessor's still).
      this.#lib.zg_close_fd(carryPair[1]);
      if (spawned !== 0) {
        this.#lib.zg_close_fd(carryPair[0]);
      } else {
        if (inbox !== undefined) this.#carryGiven.set(id, inbox);
        this.#carry.set(id, carryPair[0]);
      }
    }
    unwrap(
      spawned,
      `spawn ${
        type === "event" ? "worker" : type === "task" ? "task worker" : "user process"
      } ${id}`,
    );
    this.#workers.set(id, { pid: pid[0], startedAt: performance.now() });
    this.#everSpawned.add(id);
    // Idle once it runs (it says so itself); until then it takes no signal but SIGTERM/SIGKILL.
    this.#fds.region.setWorker(id, pid[0], WorkerStatus.notStarted);
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
        const planned = this.#fds.region.status(id) === WorkerStatus.exited;
        this.#carryTaken(id, this.#fds.region.status(id) !== WorkerStatus.notStarted);
        // Exited, and no pid: gone (a worker that drains is exited with its pid).
        this.#fds.region.setWorker(id, 0, WorkerStatus.exited);
        this.#fds.region.clearGauges(id);
        if (this.#typeOf(id) === "event") this.#host.workerExited(id);
        if (this.#typeOf(id) === "task") {
          // Tasks it held are lost with it; their senders hear so instead of waiting forever.
          for (const { src, taskId } of this.#fds.region.takeRunning(id)) {
            this.#host.taskLost(src, taskId, id);
          }
          this.#fds.region.setTasking(id, 0);
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
          this.#lib.zg_supervisor_kill(this.#supervisor, id, Signal.kill);
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
          this.#lib.zg_supervisor_kill(this.#supervisor, id, Signal.kill);
        }
        reload.killAt = Infinity;
      }
    }
  }

  /**
   * Event worker `id`'s process is gone. If it ran, it took up what it was given; if it died
   * before, its successor gets that instead (what it was to carry on, it never had).
   */
  #carryTaken(id: number, ran: boolean) {
    const given = this.#carryGiven.get(id);
    if (given === undefined) return;
    this.#carryGiven.delete(id);
    if (ran) {
      this.#lib.zg_close_fd(given);
      return;
    }
    const unused = this.#carry.get(id);
    if (unused !== undefined) this.#lib.zg_close_fd(unused);
    this.#carry.set(id, given);
  }

  #closeCarried() {
    for (const fd of [...this.#carry.values(), ...this.#carryGiven.values()]) {
      this.#lib.zg_close_fd(fd);
    }
    this.#carry.clear();
    this.#carryGiven.clear();
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
