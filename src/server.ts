/**
 * The `Server`: Swoole's server API over the native core.
 *
 * A reactor (this worker's own in BASE mode, the master's reactor threads in PROCESS mode)
 * reads sockets into inbound rings and writes what this side queues in outbound rings; each
 * reactor is a `Lane`. This module drains the inbound rings in batches on the JS thread and
 * calls the user's callbacks (`#dispatch` is the one path from native events to typed
 * callbacks); it parks in one pending `nonblocking` FFI wait only when every ring is empty.
 * @module
 */

import { library, unwrap } from "./_ffi/library.ts";
import type { Library } from "./_ffi/library.ts";
import { layout, PollFlag, RecordType, statsFields } from "./_ffi/layout.ts";
import { ErrorCode } from "./errors.ts";
import { PidFile } from "./operations/pid_file.ts";
import { checkIds, dropPrivileges } from "./operations/privileges.ts";
import { Logger } from "./log.ts";
import { Callbacks } from "./callbacks.ts";
import { AsyncExit } from "./roles/async_exit.ts";
import { formatAddress, isDatagram, isUnix, resolveOptions, sockTypes } from "./options.ts";
import { decode, encode } from "./ipc/codec.ts";
import { Lane, letGoOfHeld, publishTails } from "./ipc/lane.ts";
import { Mailbox } from "./ipc/mailbox.ts";
import { Connections } from "./connections.ts";
import { Unsent } from "./ipc/unsent.ts";
import type { MailHandler } from "./ipc/mailbox.ts";
import { Manager, sigrtmin } from "./roles/manager.ts";
import { Port } from "./port.ts";
import type { PortStats } from "./port.ts";
import { currentRole, env, serverKey } from "./roles/role.ts";
import type { Role } from "./roles/role.ts";
import { Region, sumPortCounters, WorkerStatus } from "./ipc/region.ts";
import type { ResolvedOptions, ServerOptions, SockType } from "./options.ts";
import { eventNames } from "./events.ts";
import type { ServerEvent, ServerEvents } from "./events.ts";
import type { ClientInfo } from "./client_info.ts";
import { Counters, singleStats, treeStats } from "./stats.ts";
import type { ServerStats } from "./stats.ts";
import { startInBackground } from "./operations/daemon.ts";
import { openLogFile } from "./operations/log_file.ts";
import { TaskRunner, TaskSender, workerIdOf } from "./tasks.ts";
import { Sessions } from "./sessions.ts";
import { Records } from "./records.ts";
import { createReactor, startReactor } from "./roles/base_reactor.ts";
import type { TaskContext, TaskWaitOptions } from "./tasks.ts";

type State = "new" | "starting" | "running" | "stopping" | "stopped";

const encoder = new TextEncoder();
const empty = new Uint8Array(0);
/** What a `control` mail asks of the master. */
const Control = { shutdown: 1, reload: 2, reloadTasks: 3 } as const;
/** Yield to Deno's event loop (timers, I/O) at least this often while events keep coming. */
const yieldEveryMs = 4;
/** A PROCESS worker woken less than this ago waits up to `hotWaitUs` on the JS thread first. */
const hotParkMs = 2;
const hotWaitUs = 1000;

/**
 * A Swoole-style TCP server.
 *
 * @example Echo server
 * ```ts
 * import { Server } from "@ziggurat/server";
 *
 * const server = new Server({ host: "127.0.0.1", port: 0 });
 * server.on("start", (s) => console.log(`listening on ${s.host}:${s.port}`));
 * server.on("receive", (s, sessionId, _reactorId, data) => s.send(sessionId, data));
 * setTimeout(() => server.shutdown(), 10);
 * await server.start();
 * ```
 */
export class Server {
  /** The options after defaults. */
  readonly options: Readonly<ResolvedOptions>;
  /** The user's callbacks, and how they are called. */
  #callbacks: Callbacks;
  #state: State = "new";
  #log: Logger;
  #lib!: Library;
  #handle: Deno.PointerValue = null;
  #port = 0;
  #lastError = 0;
  #done!: PromiseWithResolvers<void>;
  #onSigterm = () => {
    this.#log.info("SIGTERM: shutting down");
    this.#stop();
  };
  #role: Role;
  /** The tree's shared region, in a worker; the manager's is `#manager.region`. */
  #region: Region | undefined;
  #manager: Manager | undefined;

  /** One per reactor: BASE mode this worker's own, PROCESS mode each of the master's. */
  #lanes: Lane[] = [];
  /** A PROCESS-mode worker: sessions live in the master, found through the region. */
  #attached = false;
  /** The doorbell this process waits on: a PROCESS worker's, a task worker's, a user process's. */
  #wakeFd = -1;
  /** In a tree: the mailboxes to every other process. */
  #mailbox: Mailbox | undefined;
  /** `listen()` ports, in order (listener 1, 2, … of the reactor). */
  #ports: Port[] = [];
  /** `addProcess` bodies, in order (the same in every process of the script). */
  #processes: ((server: Server) => unknown)[] = [];
  /** Swoole's async exit, once this worker was told to go. */
  #exit: AsyncExit;
  /** A worker without a reactor of its own that is leaving: it takes no more records. */
  #leaving = false;
  /** The master's mailbox loop runs, until `#mailboxClosing`. */
  #mailLoopDone: Promise<void> | undefined;
  #mailboxClosing = false;
  /** BASE mode: the counters in the channel. */
  #stats: BigUint64Array | undefined;
  /** The channel's header (one-worker server), where the port counters are. */
  #channelU64: BigUint64Array | undefined;
  #finalPortStats: PortStats[] | undefined;
  #inBatch = false;
  /** Daemon mode: the fd to tell the launcher on (in the background server), or -1. */
  #readyFd = -1;
  #daemonPid = -1;
  /**
   * SIGRTMIN deliveries seen (log reopen), counted from the first time this process took the
   * signal (a worker takes it early in `start()`, before its loop runs); SIGUSR1 + SIGUSR2 seen
   * (one-process server).
   */
  #rtminSeen = 0;
  #reloadsSeen = 0;
  /** This process is a background server (`daemonize`). */
  #daemonized = false;
  /** Signals this process took natively, to give back when it stops. */
  #takenSignals: number[] = [];
  /** `maxRequest`: this worker leaves once it handled this many requests (0: never). */
  #requestLimit = 0;
  /** When the last park ended (PROCESS worker): a recent one means load. */
  #lastWake = 0;
  #stoppedRecord = false;
  /** The pid file this process holds while it runs (the master's). */
  #pidFile: PidFile | undefined;
  /** The counters when the server stopped; `stats()` returns them from then on. */
  #finalStats: ServerStats | undefined;
  /** What this process counts of its own work (requests, responses, errors …). */
  #counters = new Counters();

  /** Creates a server; nothing is bound until `start()`. Throws on invalid options. */
  constructor(options: ServerOptions = {}) {
    this.options = Object.freeze(resolveOptions(options));
    const o = this.options;
    this.#role = currentRole(
      o.workerNum,
      serverKey(o.host, o.port, o.workerNum),
      o.workerNum > 1 || o.mode === "process" || o.taskWorkerNum > 0,
    );
    const who = this.#role.kind === "manager"
      ? "manager"
      : `worker#${this.#role.kind === "worker" ? this.#role.workerId : 0}`;
    this.#log = new Logger(this.options.logLevel, `${who} pid ${Deno.pid}`);
    this.#callbacks = new Callbacks(this.#log, this.#counters);
    this.#exit = new AsyncExit({
      options: o,
      log: this.#log,
      pending: () => this.#callbacks.unsettled + this.#runner.tasking,
      abandon: () => {
        this.#callbacks.unsettled = this.#runner.tasking = 0;
      },
      began: (waits) => {
        this.#region?.setStatus(this.getWorkerId(), WorkerStatus.exited);
        if (!waits) return;
        const id = this.getWorkerId();
        this.#callbacks.call("workerExit", -1, () => this.#callbacks.events.workerExit?.(this, id));
      },
    });
    this.#callbacks.onSettled = () => this.#exit.settled();
    const tasks: TaskContext = {
      server: this,
      options: o,
      log: this.#log,
      callbacks: this.#callbacks.events,
      mailbox: () => this.#mailbox,
      region: () => this.#treeRegion(),
      workerId: () => this.getWorkerId(),
      inBatch: () => this.#inBatch,
      canSend: () => this.#state === "running" || this.#state === "stopping",
      leaving: () => this.#leaving,
      call: (event, fn) => this.#callbacks.call(event, -1, fn),
      callbackFailed: (event, error) => this.#callbacks.failed(event, -1, error),
      setLastError: (code) => (this.#lastError = code),
      countRequest: () => this.#counters.request++,
    };
    this.#sender = new TaskSender(tasks);
    this.#sessions = new Sessions({
      options: o,
      log: this.#log,
      lib: () => this.#lib,
      handle: () => this.#handle,
      region: () => this.#treeRegion(),
      lanes: () => this.#lanes,
      mailbox: () => this.#mailbox,
      ports: () => this.#ports,
      role: () => this.#role,
      attached: () => this.#attached,
      inBatch: () => this.#inBatch,
      live: () => this.#live(),
      canLookUp: () => this.#canLookUp(),
      countResponse: () => this.#counters.response++,
      setLastError: (code) => (this.#lastError = code),
    });
    this.#records = new Records({
      server: this,
      options: o,
      log: this.#log,
      callbacks: this.#callbacks,
      counters: this.#counters,
      sessions: this.#sessions,
      ports: this.#ports,
      lib: () => this.#lib,
      lanes: () => this.#lanes,
    });
    this.#runner = new TaskRunner(tasks, () => this.#exit.settled(), () => {
      // After the batch in hand: every task of it gets its answer first.
      if (this.#state !== "running") return false;
      this.#state = "stopping";
      queueMicrotask(() => this.#leave());
      return true;
    });
  }
  /** Records from the reactors to the callbacks. */
  #records: Records;
  /** The connection API: sends, closes and lookups, routed to each session's owner. */
  #sessions: Sessions;
  /** Tasks this process sends, and (a task worker) runs. */
  #sender: TaskSender;
  #runner: TaskRunner;

  /** The host the server listens on. */
  get host(): string {
    return this.options.host;
  }

  /** The port the server listens on (the bound port once started, when `port` was 0). */
  get port(): number {
    return this.#port || this.options.port;
  }

  /** This process's worker id: 0 in a one-worker server, -1 in the manager. */
  get workerId(): number {
    return this.getWorkerId();
  }

  /** This process's worker id: 0 in a one-worker server, -1 in the manager. */
  getWorkerId(): number {
    if (this.#role.kind === "worker") return this.#role.workerId;
    return this.#role.kind === "manager" ? -1 : 0;
  }

  /**
   * The pid of worker `workerId` (default: this worker), from the tree's shared worker table;
   * -1 when there is no such worker or it has exited.
   */
  getWorkerPid(workerId: number = this.getWorkerId()): number {
    if (workerId === this.getWorkerId() && this.#role.kind !== "manager") return Deno.pid;
    const region = this.#region ?? this.#manager?.region;
    if (!region || !Number.isInteger(workerId) || workerId < 0 || workerId >= region.slotCount) {
      return -1;
    }
    // (A draining worker is exited but still has its pid; the master clears it once it is gone.)
    return region.pid(workerId) === 0 ? -1 : region.pid(workerId);
  }

  /**
   * Swoole's status of worker `workerId` (default: this worker): 1 busy, 2 idle, 3 exited; -1
   * for no such worker.
   */
  getWorkerStatus(workerId: number = this.getWorkerId()): number {
    const region = this.#region ?? this.#manager?.region;
    if (!region) {
      if (workerId !== 0 || this.#role.kind !== "single") return -1;
      return this.#exit.began ? WorkerStatus.exited : WorkerStatus.idle;
    }
    if (!Number.isInteger(workerId) || workerId < 0 || workerId >= region.slotCount) return -1;
    return region.status(workerId);
  }

  /** The manager's pid, or -1 when there is none (one BASE worker). */
  getManagerPid(): number {
    if (this.#role.kind === "worker") return this.#role.managerPid;
    return this.#role.kind === "manager" ? Deno.pid : -1;
  }

  /** The pid of the process that called `start()`: the manager, or the only process. */
  getMasterPid(): number {
    return this.#role.kind === "worker" ? this.#role.managerPid : Deno.pid;
  }

  /** Registers a callback; names are Swoole's, in camelCase (`"receive"`, `"workerStart"`). */
  on<E extends ServerEvent>(event: E, callback: ServerEvents[E]): this {
    if (!eventNames.includes(event)) {
      throw new TypeError(`Unknown event "${event}"; events are: ${eventNames.join(", ")}`);
    }
    if (typeof callback !== "function") {
      throw new TypeError(`The callback for "${event}" must be a function`);
    }
    if (this.#state !== "new") {
      throw new Deno.errors.BadResource(
        `Cannot register "${event}": the server has already started`,
      );
    }
    (this.#callbacks.events as Record<string, unknown>)[event] = callback;
    return this;
  }

  /** The callback registered for an event, if any. */
  getCallback<E extends ServerEvent>(event: E): ServerEvents[E] | undefined {
    return this.#callbacks.events[event];
  }

  /**
   * Binds, starts the reactor and runs callbacks until `shutdown()` (or SIGTERM). Resolves
   * once everything has stopped. Rejects when a required callback is missing, the server was
   * already started, or the address cannot be bound.
   */
  start(): Promise<void> {
    if (this.#state !== "new") {
      return Promise.reject(
        new Deno.errors.BadResource("Cannot start the server: it has already been started"),
      );
    }
    // Each socket's type needs its callback: its own (a port's) or the server's.
    const sockets = [
      { what: "the server", sockType: this.options.sockType, own: undefined },
      ...this.#ports.map((port) => ({
        what: `the port ${formatAddress(port.host, port.port)}`,
        sockType: port.sockType,
        own: port.callbacks,
      })),
    ];
    for (const { what, sockType, own } of sockets) {
      const event = isDatagram(sockType) ? "packet" : "receive";
      if (own?.[event] || this.#callbacks.events[event]) continue;
      return Promise.reject(
        new TypeError(
          `Cannot start the server: ${what} is a ${
            event === "packet" ? "datagram" : "stream"
          } socket (${sockType}) and needs a "${event}" callback, of its own or the server's`,
        ),
      );
    }
    if (this.options.taskWorkerNum > 0 && !this.#callbacks.events.task) {
      return Promise.reject(
        new TypeError('Cannot start the server: taskWorkerNum > 0 needs a "task" callback'),
      );
    }
    // User processes need a manager to run them.
    if (this.#role.kind === "single" && this.#processes.length > 0) {
      this.#role = { kind: "manager" };
    }
    if (this.#role.kind !== "worker") {
      try {
        checkIds(this.options.user, this.options.group);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (this.options.daemonize && this.#role.kind !== "worker") {
      const ready = Deno.env.get(env.daemonReadyFd);
      if (ready === undefined) return this.#daemonize();
      // This is the background server: it tells its launcher once it listens.
      Deno.env.delete(env.daemonReadyFd);
      this.#readyFd = Number(ready);
      this.#daemonized = true;
      library().zg_set_cloexec(this.#readyFd);
    }
    try {
      this.#openLog();
      // Before anything listens: a pid file a running server holds, a symbolic link or a
      // directory we cannot write fails start().
      if (this.#role.kind !== "worker" && this.options.pidFile) {
        this.#pidFile = PidFile.acquire(this.options.pidFile);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    this.#state = "starting";
    if (this.#role.kind === "manager") return this.#manage();
    const role = this.#role;
    if (role.kind === "worker") {
      // The manager's death (even by SIGKILL) sends us SIGTERM: no orphan keeps serving.
      if (library().zg_die_with_parent(15, role.managerPid) !== 0) {
        this.#log.error(`the manager (pid ${role.managerPid}) is gone; exiting`);
        Deno.exit(1);
      }
    }
    if (role.kind === "worker" && this.options.logFile) {
      // The master may forward SIGRTMIN any time from now on: never die of it, and reopen the
      // log for one that comes before the loop runs (counted from here, not from the loop).
      library().zg_signal_take(sigrtmin, -1);
    }
    try {
      if (role.kind === "worker" && (role.workerType !== "event" || role.kickFds.length > 0)) {
        this.#attach(role);
        this.#openMail(role);
      } else {
        this.#open();
      }
    } catch (error) {
      this.#state = "stopped";
      this.#removePidFile();
      return Promise.reject(error);
    }
    this.#done = Promise.withResolvers<void>();
    this.#state = "running";
    Deno.addSignalListener("SIGTERM", this.#onSigterm);
    const workerId = this.getWorkerId();
    // Running: idle until its first batch (the master spawned it as "not started").
    if (role.kind === "worker") this.#region?.setStatus(workerId, WorkerStatus.idle);
    // No callback runs before the process gives up root.
    dropPrivileges(this.options.user, this.options.group, this.#log, role);
    // As in Swoole's BASE mode, `start` runs once: in the first worker 0, not in its successors
    // (PROCESS mode: in the manager).
    if (workerId === 0 && !this.#attached && !(role.kind === "worker" && role.respawned)) {
      this.#callbacks.call("start", -1, () => this.#callbacks.events.start?.(this));
    }
    if (role.kind === "single") this.#listening();
    // maxRequest: this worker leaves after that many requests, plus up to the grace more.
    if (role.kind === "worker" && role.workerType === "event" && this.options.maxRequest > 0) {
      const grace = this.options.maxRequestGrace;
      const extra = grace > 0 ? 1 + Math.floor(Math.random() * grace) : 0;
      this.#requestLimit = this.options.maxRequest + extra;
    }
    if (role.kind === "worker" && role.workerType === "process") {
      this.#runUserProcess(role.workerId);
    } else {
      this.#callbacks.call(
        "workerStart",
        -1,
        () => this.#callbacks.events.workerStart?.(this, workerId),
      );
    }
    this.#run().catch((error) => {
      this.#log.error("the event loop failed", error);
      this.#done.reject(error);
    });
    return this.#done.promise;
  }

  /**
   * Runs a user process's body (`addProcess`); when it returns (or its Promise settles) the
   * process exits and the manager starts it again.
   */
  async #runUserProcess(workerId: number) {
    const index = workerId - this.options.workerNum - this.options.taskWorkerNum;
    const body = this.#processes[index];
    if (!body) {
      this.#log.error(`no addProcess body number ${index} in this script; exiting`);
      Deno.exit(1);
    }
    let code = 0;
    try {
      await body(this);
    } catch (error) {
      this.#callbacks.failed("addProcess", -1, error);
      code = 1;
    }
    this.#drainOutboxes();
    Deno.exit(code);
  }

  /** In a tree: the mailboxes to every other process, and this process's doorbell. */
  #openMail(role: Extract<Role, { kind: "worker" }>) {
    const region = this.#region!;
    this.#mailbox = new Mailbox(region, role.workerId, role.doorbellFds, this.#lib);
    if (role.workerType === "task") this.#mailbox.admit = this.#runner.admit;
    this.#wakeFd = role.doorbellFds[role.workerId];
    // Inherited for this process only: its own children must not get them.
    for (const fd of [...role.doorbellFds, ...role.kickFds]) this.#lib.zg_set_cloexec(fd);
    // A BASE worker's reactor wakes it through the same doorbell its peers ring.
    if (this.#handle !== null) {
      unwrap(this.#lib.zg_server_use_doorbell(this.#handle, this.#wakeFd), "use the doorbell");
    }
  }

  /**
   * Registers a user process: after `start()` the manager runs `body(server)` in a process of
   * its own (this script, run again), starts it again whenever it exits, and stops it on
   * shutdown. In it, `send`, `close`, `task`, `taskwait` and `sendMessage` work. Call it before
   * `start()`, the same way in every run of the script; returns its id (0, 1, …).
   */
  addProcess(body: (server: Server) => unknown): number {
    if (typeof body !== "function") throw new TypeError("addProcess() takes a function");
    if (this.#state !== "new") {
      throw new Deno.errors.BadResource("Cannot add a process: the server has already started");
    }
    this.#processes.push(body);
    return this.#processes.length - 1;
  }

  /**
   * Swoole's `listen(host, port, type)`: one more port for the same server (before `start()`,
   * in the same order in every run of the script). Its own settings (`port.set({...})`:
   * framing) and callbacks (`port.on("receive", …)`) apply to its sessions; it takes the
   * server's for the rest. Port 0 picks a free one (`port.port` once started).
   */
  listen(host: string, port: number, sockType: SockType = "tcp"): Port {
    if (this.#state !== "new") {
      throw new Deno.errors.BadResource("Cannot add a port: the server has already started");
    }
    if (typeof host !== "string" || host.length === 0) {
      throw new TypeError(`listen() takes a host, got ${host}`);
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(`listen() takes a port from 0 to 65535, got ${port}`);
    }
    if (!sockTypes.includes(sockType)) {
      throw new RangeError(
        `listen() takes the type "tcp", "udp", "unix" or "unixDgram", got ${sockType}`,
      );
    }
    if (isUnix(sockType) && !host.startsWith("/") && !host.startsWith(".")) {
      throw new TypeError(`listen() takes a socket's path as the host of a "${sockType}" port`);
    }
    if (this.#ports.length >= 7) throw new RangeError("A server has at most 8 ports");
    const index = this.#ports.length + 1;
    const p = new Port(
      host === "localhost" ? "127.0.0.1" : host,
      port,
      sockType,
      index,
      () => this.#portCounters(index),
    );
    this.#ports.push(p);
    return p;
  }

  /** Listener `index`'s counters over the whole server (0 is the server's own socket). */
  #portCounters(index: number): PortStats {
    if (this.#finalPortStats) return { ...this.#finalPortStats[index] };
    const region = this.#treeRegion();
    if (region && this.#canLookUp()) return region.portCounters(index) as unknown as PortStats;
    const u64 = this.#channelU64;
    return sumPortCounters(
      u64 ?? new BigUint64Array(layout.channelHeaderSize / 8),
      [layout.channelStats],
      index,
    ) as unknown as PortStats;
  }

  /** Swoole's alias of `listen`. */
  addListener(host: string, port: number, sockType: SockType = "tcp"): Port {
    return this.listen(host, port, sockType);
  }

  /** The ports added with `listen()`. */
  get ports(): readonly Port[] {
    return this.#ports;
  }

  /** Whether this process is a task worker. */
  get taskworker(): boolean {
    return this.#role.kind === "worker" && this.#role.workerType === "task";
  }

  /** `workerNum` > 1: this process supervises the workers; `start()` resolves after them. */
  async #manage(): Promise<void> {
    this.#lib = library();
    const manager = new Manager({
      options: this.options,
      log: this.#log,
      call: (event, args) => {
        const callback = this.#callbacks.events[event] as
          | ((...a: unknown[]) => unknown)
          | undefined;
        this.#callbacks.call(event, -1, () => callback?.(this, ...args));
      },
      setPort: (port) => {
        this.#port = port;
      },
      userProcessNum: this.#processes.length,
      ports: this.#ports,
      openMail: (region, doorbells) => {
        const self = region.endpointCount - 1;
        this.#mailbox = new Mailbox(region, self, doorbells, this.#lib);
        this.#wakeFd = doorbells[self];
        this.#mailLoopDone = this.#mailLoop();
      },
      taskLost: (src, taskId, taskWorkerId) => this.#sender.reportLost(src, taskId, taskWorkerId),
      listening: () => this.#listening(),
      reopenLog: () => this.#reopenLog(),
      closeMail: async () => {
        if (!this.#mailbox) return;
        this.#mailbox.flushPending();
        this.#mailbox.publish();
        this.#mailboxClosing = true;
        this.#lib.zg_fd_kick(this.#wakeFd);
        await this.#mailLoopDone;
        this.#mailbox = undefined;
      },
    });
    this.#manager = manager;
    this.#state = "running";
    // SIGUSR1/SIGUSR2 (reload) and SIGRTMIN (reopen the log) the manager takes natively.
    Deno.addSignalListener("SIGTERM", this.#onSigterm);
    try {
      await manager.run();
    } finally {
      Deno.removeSignalListener("SIGTERM", this.#onSigterm);
      this.#removePidFile();
      this.#removeSocketFile();
      this.#state = "stopped";
    }
    this.#callbacks.call("shutdown", -1, () => this.#callbacks.events.shutdown?.(this));
  }

  /**
   * `logFile`: stderr (and so every log line, the core's too) goes to the file from now on. Each
   * process opens it by path, so after a rotation renamed it, SIGRTMIN makes a new one.
   */
  #openLog() {
    const o = this.options;
    if (!o.logFile) return;
    // A background server's stdout goes to the log too (its launcher pointed it there). The
    // master (root) makes the file for workers that give up root.
    const chown = this.#role.kind === "manager" && (o.user || o.group);
    openLogFile(o.logFile, this.#readyFd >= 0 || this.#daemonized, chown ? o : undefined);
  }

  /**
   * Signals taken natively (see core/src/signals.zig) that arrived since the last look:
   * SIGRTMIN reopens the log; SIGUSR1/SIGUSR2 to a server without workers are only noted (they
   * are taken so that they neither start Deno's inspector nor end the process).
   */
  #checkSignals() {
    const lib = this.#lib;
    const count = lib.zg_signal_count(sigrtmin);
    if (count !== this.#rtminSeen) {
      this.#rtminSeen = count;
      if (this.options.logFile) this.#reopenLog();
    }
    if (this.#role.kind !== "single") return;
    const reloads = lib.zg_signal_count(10) + lib.zg_signal_count(12);
    if (reloads !== this.#reloadsSeen) {
      this.#reloadsSeen = reloads;
      this.#log.warning("reload asked for, but this server runs no worker processes to replace");
    }
  }

  #reopenLog() {
    try {
      this.#openLog();
      this.#log.info("log file reopened");
    } catch (error) {
      this.#log.error("cannot reopen the log file", error);
    }
  }

  /** The server listens: the pid file, and a background server's word to its launcher. */
  #listening() {
    if (this.#readyFd < 0) return;
    const line = encoder.encode(`listening ${this.port}\n`);
    this.#lib.zg_write_all(this.#readyFd, line, BigInt(line.length));
    this.#lib.zg_close_fd(this.#readyFd);
    this.#readyFd = -1;
  }

  /**
   * `daemonize`: starts this program again in the background (a new session, detached; stdout
   * and stderr to `logFile` or nowhere) and resolves once that server listens; this process is
   * then free to exit. Rejects when it exits before it listens.
   */
  async #daemonize(): Promise<void> {
    this.#lib = library();
    const { port, pid } = await startInBackground(this.options);
    this.#port = port;
    this.#daemonPid = pid;
    this.#state = "stopped";
  }

  /** After `start()` with `daemonize`, in the launching process: the background server's pid. */
  get daemonPid(): number {
    return this.#daemonPid;
  }

  /** A Unix socket's file goes with the server that made it (the main one's and the ports'). */
  #removeSocketFile() {
    const listeners = [this.options, ...this.#ports];
    for (const { sockType, host } of listeners) {
      if (!isUnix(sockType)) continue;
      try {
        if (Deno.lstatSync(host).isSocket) Deno.removeSync(host);
      } catch {
        // Gone already.
      }
    }
  }

  /** The pid file goes with the server (if it is still the one this server wrote). */
  #removePidFile() {
    this.#pidFile?.release();
    this.#pidFile = undefined;
  }

  /**
   * Swoole's reload: every event and task worker (`onlyTask`: task workers only) is replaced by
   * a new process that loads the entry module's current code; sessions stay open in PROCESS
   * mode. Same as SIGUSR1 (SIGUSR2 for `onlyTask`) to the master. False when the server does not
   * run as a tree or a reload is in progress.
   */
  reload(onlyTask = false): boolean {
    if (this.#manager) return this.#manager.reload(onlyTask);
    if (this.#role.kind !== "worker") return false;
    return onlyTask
      ? this.#tellMaster(Control.reloadTasks, "SIGUSR2")
      : this.#tellMaster(Control.reload, "SIGUSR1");
  }

  /**
   * Swoole's `stop(workerId)`: worker `workerId` (default: this one) leaves and is replaced.
   * False when there is no such worker or the server does not run as a tree.
   */
  stop(workerId: number = this.getWorkerId()): boolean {
    if (this.#manager) return this.#manager.restart(workerId);
    if (this.#role.kind !== "worker") return false;
    if (workerId === this.#role.workerId) {
      this.#stop();
      return true;
    }
    const pid = this.getWorkerPid(workerId);
    if (pid <= 0) return false;
    try {
      Deno.kill(pid, "SIGTERM");
      return true;
    } catch {
      return false;
    }
  }

  #open() {
    const lib = library();
    this.#lib = lib;
    const o = this.options;
    const role = this.#role;
    const { handle, handleBits, port } = createReactor(
      lib,
      o,
      role,
      this.#ports,
      this.getWorkerId(),
    );
    this.#handle = handle;
    this.#port = port;
    try {
      this.#mapChannel(handleBits);
      if (role.kind === "worker") {
        // Count into this worker's slot of the tree's region, where every process reads.
        this.#region = Region.map(role.regionFd);
        this.#region.adopt(role.workerId);
        unwrap(
          lib.zg_server_use_region(this.#handle, this.#region.pointer, role.workerId),
          "use the shared region",
        );
        this.#openMail(role);
      }
      startReactor(lib, this.#handle, o, this.#ports);
    } catch (error) {
      lib.zg_server_destroy(this.#handle);
      this.#handle = null;
      throw error;
    }
  }

  #mapChannel(handle: bigint) {
    const ptr = new BigUint64Array(1);
    const len = new BigUint64Array(1);
    unwrap(this.#lib.zg_server_channel(this.#handle, ptr, len), "map the channel");
    const memory = Deno.UnsafePointerView.getArrayBuffer(
      Deno.UnsafePointer.create(ptr[0])!,
      Number(len[0]),
    );
    this.#stats = new BigUint64Array(memory, layout.channelStats, statsFields.length);
    this.#channelU64 = new BigUint64Array(memory, 0, layout.channelHeaderSize / 8);
    const lib = this.#lib;
    const pointer = Deno.UnsafePointer.create(handle);
    this.#lanes = [new Lane(memory, 0, () => lib.zg_server_kick(pointer))];
    this.#lanes[0].unsent = new Unsent();
  }

  /**
   * A process without a reactor of its own: a PROCESS-mode event worker attaches to the
   * master's reactor threads through its rings in the region (one lane per reactor thread;
   * sockets stay in the master); a task worker or user process has mailboxes only.
   */
  #attach(role: Extract<Role, { kind: "worker" }>) {
    const lib = library();
    this.#lib = lib;
    const region = Region.map(role.regionFd);
    this.#region = region;
    region.adopt(role.workerId);
    const kickFds = role.kickFds;
    if (role.workerType === "event" && kickFds.length !== region.reactorNum) {
      throw new Error(
        `expected ${region.reactorNum} reactor kick fds from the manager, got ${kickFds.length}`,
      );
    }
    this.#lanes = kickFds.map((fd, reactor) => {
      const lane = new Lane(
        region.memory,
        region.channelOffset(reactor, role.workerId),
        () => lib.zg_fd_kick(fd),
      );
      lane.unsent = new Unsent();
      return lane;
    });
    this.#port = role.ports[0];
    this.#attached = true;
    this.#records.attach(this.options.maxQueuedBytes > 0 ? region.pointer : null);
  }

  /** The master's mailbox: results of its tasks. Runs beside the supervision. */
  async #mailLoop(): Promise<void> {
    const mailbox = this.#mailbox!;
    const handler = this.#onMail;
    while (!this.#mailboxClosing) {
      const handled = mailbox.drain(handler);
      mailbox.flushPending();
      mailbox.publish();
      if (handled > 0) {
        await this.#lib.zg_yield();
        continue;
      }
      if (!mailbox.prepareParking()) continue;
      if (this.#mailboxClosing) break;
      unwrap(await this.#lib.zg_fd_wait(this.#wakeFd), "wait for mail");
      mailbox.unpark();
    }
  }

  /** Drains, dispatches, parks; until the reactor reports `stopped`. */
  async #run(): Promise<void> {
    const inline = this.options.inlineReactor && !this.#attached;
    const lib = this.#lib;
    const single = this.#role.kind === "single";
    const watch = this.options.logFile !== "" || single;
    if (watch) {
      // The signals wake this loop through the fd it waits on.
      const wake = this.#handle !== null
        ? lib.zg_server_wake_fd(this.#handle, inline ? 1 : 0)
        : this.#wakeFd;
      this.#takenSignals = [
        ...(this.options.logFile ? [sigrtmin] : []),
        ...(single ? [10, 12] : []),
      ];
      for (const signo of this.#takenSignals) lib.zg_signal_take(signo, wake);
      if (single) {
        // Deno installs its SIGUSR1 handler (the inspector) half a second after it starts:
        // look every 50 ms for the first two seconds, and take the signal back.
        const retake = setInterval(() => {
          for (const signo of [10, 12]) {
            if (lib.zg_signal_is_taken(signo) === 0) lib.zg_signal_take(signo, wake);
          }
        }, 50);
        Deno.unrefTimer(retake);
        const end = setTimeout(() => clearInterval(retake), 2000);
        Deno.unrefTimer(end);
      }
      this.#reloadsSeen = lib.zg_signal_count(10) + lib.zg_signal_count(12);
      // One that came before the loop woke nothing.
      this.#checkSignals();
    }
    let lastYield = performance.now();
    while (true) {
      // Inline mode: this thread is the reactor; one turn writes what we queued, accepts and
      // reads into the ring without blocking.
      const flags = inline ? lib.zg_server_poll(this.#handle) : 0;
      const handled = this.#drain();
      this.#flushPending();
      if (this.#stoppedRecord) break;
      // Inline mode: what we queued is written by the next turn, not by a thread, so queued
      // records count as work too.
      const queued = inline && this.#lanes[0].hasOutput();
      if (handled > 0 || (flags & PollFlag.more) !== 0 || queued) {
        // Let promise continuations of async callbacks run; now and then, timers and I/O too.
        const now = performance.now();
        if (now - lastYield >= yieldEveryMs) {
          await lib.zg_yield();
          // Signals are rare: looked at every few ms under load, and after every wait (they
          // wake it), not on every turn.
          if (watch) this.#checkSignals();
          lastYield = performance.now();
        } else {
          await undefined;
        }
        continue;
      }
      if (inline) {
        // Mail peers ring the doorbell (which the reactor polls) only if asked to.
        const mailbox = this.#mailbox;
        if (mailbox && !mailbox.prepareParking()) continue;
        unwrap(await lib.zg_server_wait_io(this.#handle), "wait for events");
        mailbox?.unpark();
      } else {
        await this.#park();
      }
      if (watch) this.#checkSignals();
      lastYield = performance.now();
    }
    this.#finish();
  }

  /** Sleeps until a reactor rings (re-checking every ring after announcing it). */
  async #park(): Promise<void> {
    const lanes = this.#lanes;
    // Leaving: the records published now are the successor's; they need not wake us.
    if (!this.#leaving) { for (const lane of lanes) Atomics.store(lane.u32, lane.inParked, 1); }
    const unpark = () => {
      for (const lane of lanes) Atomics.store(lane.u32, lane.inParked, 0);
    };
    let progress = false;
    for (const lane of lanes) {
      if (lane.pending.length === 0) continue;
      // Sends wait for room in an outbound ring: ask its reactor to wake us when it frees.
      Atomics.store(lane.u32, lane.outProducerWaiting, 1);
      const before = lane.pending.length;
      lane.flushPending();
      if (lane.pending.length < before) {
        Atomics.store(lane.u32, lane.outProducerWaiting, 0);
        progress = true;
      }
    }
    // PROCESS mode takes no records while sends wait for room: until then input is no work.
    const inputCounts = !this.#leaving && (!this.#attached || letGoOfHeld(lanes));
    if (progress || (inputCounts && lanes.some((lane) => lane.hasInput()))) return unpark();
    const mailbox = this.#mailbox;
    if (mailbox && !mailbox.prepareParking()) return unpark();
    const unparkAll = () => {
      unpark();
      mailbox?.unpark();
    };
    // Under load a PROCESS worker waits a moment on its own thread first (see zg_fd_wait_for):
    // the next records are usually microseconds away. Timers and I/O wait at most that long.
    if (this.#attached && performance.now() - this.#lastWake < hotParkMs) {
      const rang = this.#lib.zg_fd_wait_for(this.#wakeFd, hotWaitUs);
      this.#lastWake = performance.now();
      if (rang === 1) return unparkAll();
    }
    const waited = this.#attached
      ? await this.#lib.zg_fd_wait(this.#wakeFd)
      : await this.#lib.zg_server_wait(this.#handle);
    unwrap(waited, "wait for events");
    this.#lastWake = performance.now();
    unparkAll();
  }

  #finish() {
    Deno.removeSignalListener("SIGTERM", this.#onSigterm);
    // The fds the handlers write are about to close: the signals stay taken, waking nothing.
    for (const signo of this.#takenSignals) this.#lib.zg_signal_take(signo, -1);
    this.#finalStats = this.stats();
    this.#finalPortStats = [0, ...this.#ports.map((p) => p.index)].map((i) =>
      this.#portCounters(i)
    );
    if (this.#handle !== null) this.#lib.zg_server_destroy(this.#handle);
    this.#handle = null;
    this.#attached = false;
    this.#state = "stopped";
    // Results, messages and forwarded sends still queued for other processes go out first.
    if (this.#mailbox) this.#drainOutboxes();
    if (this.#role.kind !== "worker") {
      this.#removePidFile();
      this.#removeSocketFile();
      this.#callbacks.call("shutdown", -1, () => this.#callbacks.events.shutdown?.(this));
    }
    this.#done.resolve();
    if (this.#role.kind === "worker") {
      // A worker that stopped is done, whatever timers its script still holds: the master
      // replaces it (a planned exit: no crash-loop delay) or is stopping. Code after
      // `await start()` still runs first.
      this.#region?.setStatus(this.getWorkerId(), WorkerStatus.exited);
      setTimeout(() => Deno.exit(0), 0);
    }
  }

  /** A reactor's `shutdown` (the drain starts) or `stopped` (its rings end) record. */
  #lifecycle(lane: Lane, type: number) {
    switch (type) {
      case RecordType.shutdown: {
        // Every reactor sends one; the drain starts at the first, and each is answered once
        // the async callbacks in hand have settled (the reactors wait up to maxWaitTime).
        const first = !this.#lanes.some((l) => l.shutdownSeen);
        lane.shutdownSeen = true;
        // (Stopping: a maxRequest or SIGTERM meanwhile does not start a second way out.)
        if (this.#state === "running") this.#state = "stopping";
        if (first) this.#exit.begin(() => this.#stopWorker());
        else if (this.#workerStopped) lane.push(RecordType.shutdownAck, 0, 0, new Uint8Array(0));
        return;
      }
      case RecordType.stopped:
        lane.stopped = true;
        this.#stoppedRecord = this.#lanes.every((l) => l.stopped);
        return;
    }
  }

  /** Busy or idle in the region, except that a draining worker stays exiting (3). */
  #setStatus(status: number) {
    this.#region?.setStatus(this.getWorkerId(), this.#exit.began ? WorkerStatus.exited : status);
  }

  /** Dispatches every record published so far; returns how many. */
  #drain(): number {
    let handled = 0;
    const lanes = this.#lanes;
    // PROCESS mode: one record in hand at a time, let go of once what it sent is in the rings
    // (see the end of lane.ts).
    const claim = this.#attached;
    // Leaving: the records stay in the rings for this worker's successor.
    for (let l = 0; l < lanes.length && !this.#leaving; l++) {
      const lane = lanes[l];
      const u32 = lane.u32;
      const tail = Atomics.load(u32, lane.inTail);
      let pos = lane.readPos;
      if (pos === tail) continue;
      if (claim && !letGoOfHeld(lanes)) break;
      if (!this.#inBatch) {
        this.#inBatch = true;
        this.#setStatus(WorkerStatus.busy);
      }
      try {
        while (pos !== tail) {
          const at = lane.inBase + (pos & lane.mask);
          const word = at >>> 2;
          const len = u32[word];
          pos = (pos + ((layout.recordHeaderSize + len + 15) & ~15)) >>> 0;
          if (claim) lane.take(pos);
          const type = lane.u8[at + layout.recordType];
          if (type !== RecordType.pad) {
            if (type === RecordType.shutdown || type === RecordType.stopped) {
              this.#counters.dispatch++;
              this.#lifecycle(lane, type);
            } else {
              this.#records.dispatch(lane, type, at, len, u32[word + 2], u32[word + 3]);
            }
            handled++;
          }
          if (claim) {
            if (!publishTails(lanes)) break;
            lane.finish(pos);
          }
        }
      } finally {
        if (claim) {
          lane.readPos = pos;
          lane.kickIfSet(lane.inProducerWaiting);
        } else {
          lane.release(pos);
        }
      }
    }
    const mailbox = this.#mailbox;
    if (mailbox && mailbox.hasInput()) {
      if (!this.#inBatch) {
        this.#inBatch = true;
        this.#setStatus(WorkerStatus.busy);
      }
      handled += mailbox.drain(this.#onMail);
    }
    if (this.#requestLimit > 0 && this.#counters.request >= this.#requestLimit) {
      this.#requestLimit = 0;
      this.#log.info(`maxRequest: ${this.#counters.request} requests handled; this worker leaves`);
      queueMicrotask(() => this.#stop());
    }
    if (this.#inBatch) {
      this.#inBatch = false;
      mailbox?.publish();
      this.#setStatus(WorkerStatus.idle);
      this.#region?.publish(
        this.getWorkerId(),
        this.#counters.request,
        this.#counters.response,
        this.#counters.dispatch,
        this.#counters.callbackErrors,
        this.#counters.discards,
      );
      for (const lane of lanes) lane.publishOut();
    }
    return handled;
  }

  /**
   * Queues data for a session. Returns false (see `getLastError()`) when the session is gone
   * or closing, its output buffer is over `socketBufferSize`, or `data` is empty.
   */
  send(sessionId: number, data: Uint8Array | string): boolean {
    return this.#sessions.send(sessionId, data);
  }

  /**
   * Closes a session: gracefully (queued output is written first) or, with `reset`, at once
   * with a TCP RST. The `close` callback follows. Returns false when the session is gone or
   * already closing.
   */
  close(sessionId: number, reset = false): boolean {
    return this.#sessions.close(sessionId, reset);
  }

  /**
   * Swoole's `bind(fd, uid)`, for dispatch mode 5 in PROCESS mode: from now on the session's
   * data goes to worker `uid % workerNum`. A session is bound once: false when it already has a
   * uid, is gone, or the server is not in that mode.
   */
  bind(sessionId: number, uid: number): boolean {
    return this.#sessions.bind(sessionId, uid);
  }

  /** The tree's shared region, in the manager or a worker; undefined in a one-worker server. */
  #treeRegion(): Region | undefined {
    return this.#region ?? this.#manager?.region;
  }

  /** Whether sessions can be looked up here: a live worker, or a running manager. */
  #canLookUp(): boolean {
    return this.#live() ||
      (this.#treeRegion() !== undefined && this.#role.kind === "manager" &&
        (this.#state === "running" || this.#state === "stopping"));
  }

  // --- tasks and messages between processes ---------------------------------------------

  /**
   * Hands `data` (any structured-cloneable value, of any size) to a task worker: `dstWorkerId`
   * (0 to taskWorkerNum - 1) or, by default, an idle one. Returns the task id at once; its
   * result reaches `onFinish` if given, else the `finish` callback, in this process. Works in
   * event workers, user processes and the master (e.g. in `start`), not in task workers.
   */
  task(
    data: unknown,
    dstWorkerId = -1,
    onFinish?: (server: Server, taskId: number, result: unknown) => void,
  ): number | false {
    return this.#sender.send(data, dstWorkerId, onFinish);
  }

  /**
   * A task whose result this Promise resolves to. It rejects with `Deno.errors.TimedOut` after
   * `timeout` seconds (default 0.5; a result that comes later is logged and dropped), and with
   * the task's `Error` when the handler threw or its task worker died.
   */
  taskwait(data: unknown, options: TaskWaitOptions = {}): Promise<unknown> {
    return this.#sender.wait(data, options);
  }

  /**
   * Several tasks at once. Resolves after every result arrived or `timeout` seconds (default
   * 0.5) passed, with an array where index `i` holds the result of `tasks[i]`, and no entry
   * (`i in results` is false) for a task that failed or is not done in time.
   */
  taskWaitMulti(tasks: unknown[], options: TaskWaitOptions = {}): Promise<unknown[]> {
    return this.#sender.waitMulti(tasks, options);
  }

  /**
   * In a task worker, while the `task` handler runs: sends `result` back to the task's sender
   * (as returning it would). Once per task.
   */
  finish(result: unknown): void {
    this.#runner.finish(result);
  }

  /**
   * Sends `message` (any structured-cloneable value, of any size) to process `dstWorkerId` of
   * the tree (not this one): an event worker, a task worker, or a user process (their ids come
   * after the task workers') → its `pipeMessage` callback. Messages between two processes
   * arrive in order.
   */
  sendMessage(message: unknown, dstWorkerId: number): boolean {
    const o = this.options;
    // Event workers, task workers, then user processes (`addProcess`), as in Swoole.
    const userProcesses = this.#treeRegion()?.userProcessNum ?? this.#processes.length;
    const last = o.workerNum + o.taskWorkerNum + userProcesses - 1;
    if (!Number.isInteger(dstWorkerId) || dstWorkerId < 0 || dstWorkerId > last) {
      throw new RangeError(
        `sendMessage() takes a worker id from 0 to ${last} (event workers, task workers, user processes), got ${dstWorkerId}`,
      );
    }
    if (!this.#mailbox || dstWorkerId === this.#mailbox.self) {
      this.#lastError = ErrorCode.invalidParams;
      return false;
    }
    this.#mailbox.send(dstWorkerId, RecordType.pipeMessage, 0, 0, encode(message));
    if (!this.#inBatch) this.#mailbox.publish();
    return true;
  }

  /** One whole mailbox message. */
  #onMail: MailHandler = (peer, type, flags, id, aux, payload) => {
    switch (type) {
      case RecordType.task:
        this.#runner.run(peer, id, payload);
        return;
      case RecordType.finish:
        this.#sender.resultArrived(id, flags, payload);
        return;
      case RecordType.control:
        // (Only the master has `#manager`.)
        if (aux === Control.shutdown) this.#stop();
        else if (aux === Control.reload) this.#manager?.reload(false);
        else if (aux === Control.reloadTasks) this.#manager?.reload(true);
        return;
      case RecordType.taskLost:
        this.#sender.lost(id, aux);
        return;
      case RecordType.pipeMessage: {
        let message: unknown;
        try {
          message = decode(payload);
        } catch (error) {
          this.#log.error(
            `a pipe message from worker ${
              workerIdOf(this.#treeRegion()!, peer)
            } cannot be decoded; dropped`,
            error,
          );
          return;
        }
        this.#callbacks.call(
          "pipeMessage",
          -1,
          () =>
            this.#callbacks.events.pipeMessage?.(
              this,
              workerIdOf(this.#treeRegion()!, peer),
              message,
            ),
        );
        return;
      }
      case RecordType.forwardSend:
        if (!this.send(id, payload)) {
          this.#log.debug(`a send forwarded to session ${id} failed: ${this.#lastError}`);
        }
        return;
      case RecordType.forwardClose:
        this.close(id, aux === 1);
        return;
      default:
        this.#log.error(`unexpected mailbox record type ${type} from endpoint ${peer}`);
    }
  };

  /** Whether this process serves sessions now (running, or stopping but not yet stopped). */
  #live(): boolean {
    return (this.#handle !== null || this.#attached || this.#mailbox !== undefined) &&
      (this.#state === "running" || this.#state === "stopping");
  }

  /**
   * Swoole's `sendto(address, port, data, serverSocket)`: one UDP datagram (at most 65,507
   * bytes) to `address:port` (IPv4 or IPv6 literal), from the server's UDP socket. False when
   * this is not a UDP server or the address is not an IP literal.
   */
  sendto(address: string, port: number, data: Uint8Array | string, serverSocket = 0): boolean {
    return this.#sessions.sendto(address, port, data, serverSocket);
  }

  /**
   * Swoole's `sendwait` as a Promise: sends `data` and resolves true once everything queued for
   * the session (this included) is written to the socket; false when it could not be sent, or
   * the session ended first.
   */
  sendwait(sessionId: number, data: Uint8Array | string): Promise<boolean> {
    return this.#sessions.sendwait(sessionId, data);
  }

  /**
   * Swoole's `sendfile(sessionId, path, offset, length)`: sends the file (from `offset`,
   * `length` bytes, 0: to its end) with the kernel's zero-copy sendfile, after whatever was
   * sent before and before whatever is sent after. The process that owns the socket opens the
   * file (PROCESS mode: the master). False when the session is gone or closing, the file does
   * not exist, or the session lives in another BASE worker.
   */
  sendfile(sessionId: number, path: string, offset = 0, length = 0): boolean {
    return this.#sessions.sendfile(sessionId, path, offset, length);
  }

  /**
   * Swoole's `pause(sessionId)`: stop reading the session (what the peer sends waits in the
   * kernel, and TCP pushes back) until `resume()`. False when the session is gone, or lives in
   * another BASE worker.
   */
  pause(sessionId: number): boolean {
    return this.#sessions.setPaused(sessionId, true);
  }

  /** Swoole's `resume(sessionId)`: read the session again. */
  resume(sessionId: number): boolean {
    return this.#sessions.setPaused(sessionId, false);
  }

  /** Swoole's `confirm(sessionId)`: with `enableDelayReceive`, start reading a new session. */
  confirm(sessionId: number): boolean {
    return this.#sessions.setPaused(sessionId, false);
  }

  /**
   * Swoole's `protect(sessionId, on)`: the heartbeat never closes this session (until
   * `protect(sessionId, false)`). From any process. False when the session is gone.
   */
  protect(sessionId: number, on = true): boolean {
    return this.#sessions.protect(sessionId, on);
  }

  /**
   * Swoole's `heartbeat(ifCloseConnection)`: the ids of open sessions that received nothing
   * for `heartbeatIdleTime` (a port's own, where it has one), `protect()`ed ones left out;
   * closes them too unless asked not to. False when no heartbeat is configured. (The automatic
   * heartbeat of `heartbeatCheckInterval` runs in the core, by the same rules.)
   */
  heartbeat(ifCloseConnection = true): number[] | false {
    return this.#sessions.heartbeat(ifCloseConnection);
  }

  /** Whether the session is open (and not closing). */
  exists(sessionId: number): boolean {
    return this.#sessions.exists(sessionId);
  }

  /** Connection details of an open session, or null when it does not exist. */
  getClientInfo(sessionId: number): ClientInfo | null {
    return this.#sessions.getClientInfo(sessionId);
  }

  /**
   * Swoole's `getClientList`: ids of open sessions greater than `startSessionId`, ascending, at
   * most `count` (1 to 100) of them, across the whole server (every worker's, in a tree). Page
   * through with the last id returned; an empty array means no more.
   */
  getClientList(startSessionId = 0, count = 10): number[] {
    return this.#sessions.getClientList(startSessionId, count);
  }

  /**
   * Swoole's `connections`: the ids of every open session of the server (every worker's, in a
   * tree), iterable from any process in id order; `has(id)` and `size` as well.
   */
  get connections(): Connections {
    return this.#connections ??= new Connections(this);
  }
  #connections: Connections | undefined;

  /** The code of the last failed call (`ErrorCode`), as Swoole's `getLastError()`. */
  getLastError(): number {
    return this.#lastError;
  }

  /** Server counters (Swoole's `stats()` fields in camelCase). */
  stats(): ServerStats {
    if (this.#finalStats) return { ...this.#finalStats };
    const region = this.#treeRegion();
    if (region) return treeStats(region, this.getWorkerId(), this.#counters, this.#inBatch);
    const fds = new Int32Array(2);
    if (this.#handle !== null) this.#lib.zg_fd_range(this.#handle, null, fds);
    return singleStats(this.#stats, this.#counters, this.#inBatch, this.options.workerNum, fds);
  }

  /**
   * Stops the server gracefully: stop accepting and reading, run `workerStop`, write queued
   * output (up to `maxWaitTime`), close every session, run `shutdown`, resolve `start()`.
   * From a worker of a manager it stops the whole tree (the manager is told, as by SIGTERM).
   */
  shutdown(): void {
    if (this.#role.kind === "worker") {
      this.#tellMaster(Control.shutdown, "SIGTERM");
      return;
    }
    this.#stop();
  }

  /**
   * A worker asks the master to shut down or reload: through the mailbox (a worker that gave
   * up root may not signal it), else by signal.
   */
  #tellMaster(control: number, signal: Deno.Signal): boolean {
    const role = this.#role as Extract<Role, { kind: "worker" }>;
    const mailbox = this.#mailbox;
    if (mailbox) {
      mailbox.send(mailbox.lanes.length - 1, RecordType.control, 0, control, empty);
      mailbox.publish();
      return true;
    }
    try {
      Deno.kill(role.managerPid, signal);
      return true;
    } catch (error) {
      this.#log.error(`cannot signal the manager (pid ${role.managerPid})`, error);
      return false;
    }
  }

  /** Stops this process's part: the manager its workers, a worker itself. */
  #stop(): void {
    if (this.#state === "stopped" || this.#state === "new") return;
    if (this.#manager) {
      if (this.#state === "running") {
        this.#callbacks.call(
          "beforeShutdown",
          -1,
          () => this.#callbacks.events.beforeShutdown?.(this),
        );
      }
      this.#state = "stopping";
      this.#manager.stop();
      return;
    }
    if (this.#state !== "running") return;
    if (this.#attached) return this.#leave();
    this.#state = "stopping";
    // beforeShutdown and shutdown belong to the process that called start() first: in a tree,
    // the manager; its workers only stop (workerStop).
    if (this.#role.kind !== "worker") {
      this.#callbacks.call(
        "beforeShutdown",
        -1,
        () => this.#callbacks.events.beforeShutdown?.(this),
      );
    }
    unwrap(this.#lib.zg_server_shutdown(this.#handle), "shut down");
  }

  #workerStopped = false;

  /** After a shutdown's drain: `workerStop`, then the answer to each reactor's `shutdown`. */
  #stopWorker() {
    this.#workerStopped = true;
    this.#callbacks.call(
      "workerStop",
      -1,
      () => this.#callbacks.events.workerStop?.(this, this.getWorkerId()),
    );
    for (const lane of this.#lanes) {
      if (lane.shutdownSeen) lane.push(RecordType.shutdownAck, 0, 0, new Uint8Array(0));
    }
    if (!this.#inBatch) { for (const lane of this.#lanes) lane.publishOut(); }
  }

  #flushPending() {
    for (const lane of this.#lanes) lane.flushPending();
    if (this.#attached) letGoOfHeld(this.#lanes);
  }

  /**
   * A PROCESS-mode worker told to stop on its own (SIGTERM while the tree runs): it runs
   * `workerStop`, hands what it queued to the rings as far as they have room, and exits; the
   * manager starts its successor on the same rings, and no connection notices.
   */
  /**
   * Before this process exits: what was sent must reach the rings (lanes and mailboxes). It
   * waits for room (it does nothing else any more), up to maxWaitTime.
   */
  #drainOutboxes() {
    const deadline = performance.now() + this.options.maxWaitTime * 1000;
    const outboxes = [...this.#lanes, ...(this.#mailbox?.lanes ?? [])].filter(
      (l) => l !== undefined,
    );
    while (true) {
      for (const lane of outboxes) {
        lane.flushPending();
        lane.publishOut();
      }
      if (this.#attached) letGoOfHeld(this.#lanes);
      if (outboxes.every((lane) => lane.pending.length === 0)) return;
      if (performance.now() >= deadline || this.#wakeFd < 0) {
        this.#log.warning("exiting with sends still queued: maxWaitTime ran out");
        return;
      }
      this.#lib.zg_fd_wait_for(this.#wakeFd, 10_000);
    }
  }

  #leave() {
    if (this.#leaving) return;
    this.#leaving = true;
    this.#state = "stopping";
    this.#exit.begin(() => {
      this.#callbacks.call(
        "workerStop",
        -1,
        () => this.#callbacks.events.workerStop?.(this, this.getWorkerId()),
      );
      this.#drainOutboxes();
      this.#log.debug("this worker exits; the manager starts another unless the server stops");
      Deno.exit(0);
    });
  }
}
