/**
 * The `Server`: Swoole's server API over the native core. It is a facade: each public method
 * says what it does, and hands the work to the part that owns it — the role of this process
 * (src/roles/: the master of a tree, or an event worker, task worker or user process), the
 * connection API (sessions.ts), tasks (tasks.ts), pipe messages (messages.ts), ports (port.ts),
 * stats (stats.ts) or operations (src/operations/).
 * @module
 */

import { library } from "./_ffi/library.ts";
import { WorkerStatus } from "./ipc/region.ts";
import { Logger } from "./log.ts";
import { Callbacks, missingCallback } from "./callbacks.ts";
import { contexts, ServerContext } from "./context.ts";
import { Connections } from "./connections.ts";
import { eventNames } from "./events.ts";
import type { ServerEvent, ServerEvents } from "./events.ts";
import type { ClientInfo } from "./client_info.ts";
import { sendMessage } from "./messages.ts";
import { Operations } from "./operations/operations.ts";
import { drain, healthOf } from "./operations/rotation.ts";
import { resolveOptions } from "./options.ts";
import type { ResolvedOptions, ServerOptions, SockType } from "./options.ts";
import { addPort } from "./port.ts";
import { addAdminPort } from "./admin/admin_port.ts";
import type { Port } from "./port.ts";
import { roleFor } from "./roles/process_role.ts";
import type { ProcessRole } from "./roles/process_role.ts";
import {
  claimWorkerRole,
  currentRole,
  managerPidOf,
  masterPidOf,
  roleName,
  serverKey,
  workerIdOfRole,
} from "./roles/role.ts";
import type { Role } from "./roles/role.ts";
import { Sessions } from "./sessions.ts";
import { Counters, portStats, serverStats } from "./stats.ts";
import type { ServerStats } from "./stats.ts";
import { TaskSender } from "./tasks.ts";
import type { TaskWaitOptions } from "./tasks.ts";

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
  /** The options given so far (the constructor's, then each `set()`'s). */
  #given: ServerOptions;
  /** What the parts of this process's server share. */
  #ctx: ServerContext;
  /** The role of this process: a tree's master, or one of its workers, or the only process. */
  #role: ProcessRole;
  #ops: Operations;
  /** The connection API: sends, closes and lookups, routed to each session's owner. */
  #sessions: Sessions;
  /** Tasks this process sends. */
  #sender: TaskSender;
  #connections: Connections | undefined;

  /** Creates a server; nothing is bound until `start()`. Throws on invalid options. */
  constructor(options: ServerOptions = {}) {
    const o = Object.freeze(resolveOptions(options));
    this.#given = { ...options };
    const role = roleOf(o);
    const log = new Logger(o.logLevel, roleName(role), o.logFormat);
    const counters = new Counters();
    const ctx = new ServerContext(this, o, role, log, new Callbacks(log, counters), counters);
    this.#ctx = ctx;
    contexts.set(this, ctx);
    this.#ops = new Operations(ctx);
    this.#sender = new TaskSender(ctx);
    this.#sessions = new Sessions(ctx);
    ctx.sessions = this.#sessions;
    this.#role = roleFor(ctx, this.#ops, this.#sender, this.#sessions);
  }

  /** The options after defaults. */
  get options(): Readonly<ResolvedOptions> {
    return this.#ctx.options;
  }

  /**
   * Swoole's `$server->set([...])`: more options, merged over those given so far and checked
   * as the constructor checks them (a throw leaves the server as it was). Before `start()`
   * only, the same way in every run of the script (each worker runs it too).
   */
  set(options: ServerOptions): this {
    this.#mustBeNew("set options");
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`set() takes an object of options, got ${String(options)}`);
    }
    const given = { ...this.#given, ...options };
    const o = Object.freeze(resolveOptions(given));
    this.#given = given;
    const ctx = this.#ctx;
    ctx.options = o;
    // (The key a worker's manager spawned it with matches the final options only.)
    ctx.role = roleOf(o);
    ctx.workerId = workerIdOfRole(ctx.role);
    ctx.log.reset(o.logLevel, roleName(ctx.role), o.logFormat);
    this.#role = roleFor(ctx, this.#ops, this.#sender, this.#sessions);
    return this;
  }

  /** The host the server listens on. */
  get host(): string {
    return this.options.host;
  }

  /** The port the server listens on (the bound port once started, when `port` was 0). */
  get port(): number {
    return this.#ctx.port || this.options.port;
  }

  /**
   * The address the server listens on, as `Deno.serve`'s `addr`: TCP or UDP with the bound port
   * once it listens (`port` before), or the Unix socket's path.
   */
  get addr(): Deno.NetAddr | Deno.UnixAddr {
    const o = this.options;
    if (o.sockType === "unix") return { transport: "unix", path: o.host };
    if (o.sockType === "unixDgram") return { transport: "unixpacket", path: o.host };
    return { transport: o.sockType, hostname: o.host, port: this.port };
  }

  /**
   * Settles as `start()` does, as `Deno.serve`'s `finished`: resolves once the server has
   * stopped, rejects when it could not start.
   */
  get finished(): Promise<void> {
    return this.#ctx.finished.promise;
  }

  /** This process's worker id: 0 in a one-worker server, -1 in the manager. */
  get workerId(): number {
    return this.#ctx.workerId;
  }

  /** This process's worker id: 0 in a one-worker server, -1 in the manager. */
  getWorkerId(): number {
    return this.#ctx.workerId;
  }

  /**
   * The pid of worker `workerId` (default: this worker), from the tree's shared worker table;
   * -1 when there is no such worker or it has exited.
   */
  getWorkerPid(workerId: number = this.getWorkerId()): number {
    if (workerId === this.#ctx.workerId && workerId >= 0) return Deno.pid;
    const region = this.#ctx.region;
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
    const region = this.#ctx.region;
    if (!region) {
      // A one-worker server, or a master before it started.
      if (workerId !== 0 || this.#ctx.role.kind !== "single") return -1;
      return this.#role.exiting ? WorkerStatus.exited : WorkerStatus.idle;
    }
    if (!Number.isInteger(workerId) || workerId < 0 || workerId >= region.slotCount) return -1;
    return region.status(workerId);
  }

  /** The manager's pid, or -1 when there is none (one BASE worker). */
  getManagerPid(): number {
    return managerPidOf(this.#ctx.role);
  }

  /** The pid of the process that called `start()`: the manager, or the only process. */
  getMasterPid(): number {
    return masterPidOf(this.#ctx.role);
  }

  /** Registers a callback; names are Swoole's, in camelCase (`"receive"`, `"workerStart"`). */
  on<E extends ServerEvent>(event: E, callback: ServerEvents[E]): this {
    if (!eventNames.includes(event)) {
      throw new TypeError(`Unknown event "${event}"; events are: ${eventNames.join(", ")}`);
    }
    if (typeof callback !== "function") {
      throw new TypeError(`The callback for "${event}" must be a function`);
    }
    this.#mustBeNew(`register "${event}"`);
    (this.#ctx.callbacks.events as Record<string, unknown>)[event] = callback;
    return this;
  }

  /** The callback registered for an event, if any. */
  getCallback<E extends ServerEvent>(event: E): ServerEvents[E] | undefined {
    return this.#ctx.callbacks.events[event];
  }

  /**
   * Binds, starts the reactor and runs callbacks until `shutdown()` (or SIGTERM). Resolves
   * once everything has stopped. Rejects when a required callback is missing, the server was
   * already started, or the address cannot be bound.
   */
  start(): Promise<void> {
    const ctx = this.#ctx;
    if (ctx.state !== "new") {
      return Promise.reject(
        new Deno.errors.BadResource("Cannot start the server: it has already been started"),
      );
    }
    // The admin listener is one more port (the last), in every process alike.
    if (this.options.adminServer && !ctx.ports.some((p) => p.admin)) {
      try {
        addAdminPort(ctx, this.options.adminServer);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const missing = missingCallback(this.options, ctx.ports, ctx.callbacks.events);
    if (missing) return Promise.reject(missing);
    // User processes need a manager to run them.
    if (ctx.role.kind === "single" && ctx.processes.length > 0) {
      ctx.role = { kind: "manager" };
      ctx.workerId = -1;
      this.#role = roleFor(ctx, this.#ops, this.#sender, this.#sessions);
    }
    let started: Promise<void>;
    try {
      started = this.#ops.prepare() ? this.#ops.daemonize() : this.#begin();
    } catch (error) {
      started = Promise.reject(error);
    }
    // (The caller's promise still rejects on its own: an unawaited failed start is reported.)
    return started.then(() => ctx.finished.resolve(), (error) => {
      ctx.finished.reject(error);
      throw error;
    });
  }

  #begin(): Promise<void> {
    const ctx = this.#ctx;
    ctx.state = "starting";
    if (ctx.role.kind === "worker") claimWorkerRole();
    // The core's lines name this process as this process's own do, in the same format.
    const { who, json } = ctx.log.identity;
    const name = new TextEncoder().encode(who);
    library().zg_log_identity(name, BigInt(name.length), json ? 1 : 0);
    // (Only in the process that was started, and let go of once the server has stopped.)
    const signal = ctx.options.signal;
    if (signal && ctx.role.kind !== "worker") {
      const abort = () => this.shutdown();
      signal.addEventListener("abort", abort, { once: true });
      ctx.finished.promise.finally(() => signal.removeEventListener("abort", abort)).catch(
        () => {},
      );
    }
    return this.#role.start();
  }

  /**
   * Registers a user process: after `start()` the manager runs `body(server)` in a process of
   * its own (this script, run again), starts it again whenever it exits, and stops it on
   * shutdown. In it, `send`, `close`, `task`, `taskwait` and `sendMessage` work. Call it before
   * `start()`, the same way in every run of the script; returns its id (0, 1, …).
   */
  addProcess(body: (server: Server) => unknown): number {
    if (typeof body !== "function") throw new TypeError("addProcess() takes a function");
    this.#mustBeNew("add a process");
    this.#ctx.processes.push(body);
    return this.#ctx.processes.length - 1;
  }

  /**
   * Swoole's `listen(host, port, type)`: one more port for the same server (before `start()`,
   * in the same order in every run of the script). Its own settings (`port.set({...})`:
   * framing) and callbacks (`port.on("receive", …)`) apply to its sessions; it takes the
   * server's for the rest. Port 0 picks a free one (`port.port` once started).
   */
  listen(host: string, port: number, sockType: SockType = "tcp"): Port {
    this.#mustBeNew("add a port");
    return addPort(this.#ctx.ports, host, port, sockType, (index) => portStats(this.#ctx, index));
  }

  /** Swoole's alias of `listen`. */
  addListener(host: string, port: number, sockType: SockType = "tcp"): Port {
    return this.listen(host, port, sockType);
  }

  /** The ports added with `listen()`. */
  get ports(): readonly Port[] {
    return this.#ctx.ports;
  }

  /** Whether this process is a task worker. */
  get taskworker(): boolean {
    return this.#ctx.taskRunner !== undefined;
  }

  /** After `start()` with `daemonize`, in the launching process: the background server's pid. */
  get daemonPid(): number {
    return this.#ops.daemonPid;
  }

  /**
   * Swoole's reload: every event and task worker (`onlyTask`: task workers only) is replaced by
   * a new process that loads the entry module's current code; sessions stay open in PROCESS
   * mode. Same as SIGUSR1 (SIGUSR2 for `onlyTask`) to the master. False when the server does not
   * run as a tree or a reload is in progress.
   */
  reload(onlyTask = false): boolean {
    return this.#role.reload(onlyTask);
  }

  /**
   * Swoole's `stop(workerId)`: worker `workerId` (default: this one) leaves and is replaced.
   * False when there is no such worker or the server does not run as a tree.
   */
  stop(workerId: number = this.getWorkerId()): boolean {
    return this.#role.restart(workerId);
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
    const runner = this.#ctx.taskRunner;
    if (!runner) {
      throw new Deno.errors.BadResource(
        "finish() works only while a task handler runs; an async handler returns its result",
      );
    }
    runner.finish(result);
  }

  /**
   * Sends `message` (any structured-cloneable value, of any size) to process `dstWorkerId` of
   * the tree (not this one): an event worker, a task worker, or a user process (their ids come
   * after the task workers') → its `pipeMessage` callback. Messages between two processes
   * arrive in order.
   */
  sendMessage(message: unknown, dstWorkerId: number): boolean {
    return sendMessage(this.#ctx, message, dstWorkerId);
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

  /** The code of the last failed call (`ErrorCode`), as Swoole's `getLastError()`. */
  getLastError(): number {
    return this.#ctx.lastError;
  }

  /** Server counters (Swoole's `stats()` fields in camelCase). */
  stats(): ServerStats {
    return serverStats(this.#ctx);
  }

  /**
   * Stops the server gracefully: stop accepting and reading, run `workerStop`, write queued
   * output (up to `maxWaitTime`), close every session, run `shutdown`, resolve `start()`.
   * From a worker of a manager it stops the whole tree (the manager is told, as by SIGTERM).
   * Resolves, as `Deno.serve`'s does, once this process's server has stopped (its ports
   * closed): at once when it never started. (Awaited inside a callback, it waits for that
   * callback's own drain: up to `maxWaitTime`.)
   */
  shutdown(): Promise<void> {
    const ctx = this.#ctx;
    if (ctx.state === "new") return Promise.resolve();
    this.#role.shutdown();
    return ctx.finished.promise.then(() => {}, () => {});
  }

  /**
   * Takes the server out of a load balancer's rotation without stopping it: the admin
   * listener's `GET /health` answers 503 `{"status":"draining"}` from now on, while the server
   * accepts and serves as before (`undrain()` puts it back; `ziggurat drain` does the same from
   * outside). Works from any process of the tree. False when the server does not run.
   *
   * @example Out of rotation for maintenance, then back
   * ```ts
   * server.drain();
   * setTimeout(() => server.undrain(), 60_000);
   * ```
   */
  drain(): boolean {
    return drain(this.#ctx, true);
  }

  /**
   * Puts a drained server back in rotation (`/health` answers 200 again). False when it does not
   * run, or a SIGTERM's shutdown is on its way (see `shutdownDelay`).
   */
  undrain(): boolean {
    return drain(this.#ctx, false);
  }

  /**
   * What the health check says now: `"ok"`, `"draining"` (`drain()`), or `"stopping"` (a SIGTERM
   * waits out its `shutdownDelay`, or the server stops or does not run).
   */
  get health(): "ok" | "draining" | "stopping" {
    return healthOf(this.#ctx);
  }

  /** `await using server = …`: shuts the server down and waits until it has stopped. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  /** Registration (callbacks, ports, processes) is over once the server started. */
  #mustBeNew(what: string) {
    if (this.#ctx.state !== "new") {
      throw new Deno.errors.BadResource(`Cannot ${what}: the server has already started`);
    }
  }
}

/** This process's role for a server of options `o` (role.ts). */
function roleOf(o: Readonly<ResolvedOptions>): Role {
  return currentRole(
    o.workerNum,
    serverKey(o.host, o.port, o.workerNum),
    o.workerNum > 1 || o.mode === "process" || o.taskWorkerNum > 0,
  );
}
