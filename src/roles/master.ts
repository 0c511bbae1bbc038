/**
 * The master (Swoole's master.cc and reactor_thread.cc): the process that called `start()`
 * in a tree. It binds every listening socket, creates the tree's region and doorbells, runs
 * its own mailbox (results of the tasks it sent, workers' requests to stop or reload) and, in
 * PROCESS mode, the `reactorNum` reactor threads that own every socket; the manager
 * (manager.ts) spawns and supervises the workers in this same process.
 *
 * Swoole forks a separate manager because a multi-threaded master cannot fork safely; here
 * children are spawned, not forked, so the master's JavaScript thread, idle while the reactor
 * threads work, supervises the workers itself and the tree saves a Deno process.
 *
 * - `start`: bind, region, mailbox, reactor threads, then the manager until every worker is gone
 * - `stop`, `reload`, `restart`: `beforeShutdown`, then the manager's
 * - `#bind`, `#startReactors`, `#mailLoop`: the master's own
 * @module
 */

import { activatedSockets, adoptSocket } from "../operations/systemd.ts";
import { library, unwrap } from "../_ffi/library.ts";
import { ListenFlag } from "../_ffi/layout.ts";
import type { ServerContext } from "../context.ts";
import { Mailbox } from "../ipc/mailbox.ts";
import type { MailHandler } from "../ipc/mailbox.ts";
import { Region } from "../ipc/region.ts";
import { Control, mailHandler } from "../messages.ts";
import type { Operations } from "../operations/operations.ts";
import { formatAddress } from "../options.ts";
import { listenFlags, nativeConfig } from "../_ffi/native_options.ts";
import type { SockType } from "../options.ts";
import { configureReactors, kickFds } from "./reactor_set.ts";
import type { TaskSender } from "../tasks.ts";
import { Manager } from "./manager.ts";
import { DelayedStop, drain } from "../operations/rotation.ts";
import { Signal } from "../operations/signals.ts";
import type { ProcessRole } from "./process_role.ts";

const encoder = new TextEncoder();
/** Mailbox ring size (each direction of each pair of processes). */
const mailSize = 256 * 1024;

export class Master implements ProcessRole {
  #ctx: ServerContext;
  #ops: Operations;
  #sender: TaskSender;
  #manager: Manager | undefined;
  /** The server's listening socket, then the `listen()` ports', and their bound ports. */
  #listenFds: number[] = [];
  #boundPorts: number[] = [];
  /** Every endpoint's doorbell: event workers, task workers, user processes, this process. */
  #doorbells: number[] = [];
  /** PROCESS mode: the reactor threads and their kick fds. */
  #reactors: Deno.PointerValue = null;
  #kickFds: number[] = [];
  #joined: Promise<number> | undefined;
  #mail: MailHandler;
  /** The mailbox loop runs, until `#mailClosing`. */
  #mailLoopDone: Promise<void> | undefined;
  #mailClosing = false;
  /** SIGTERM: the stop, after `shutdownDelay` out of rotation. */
  #delayedStop: DelayedStop | undefined;
  #onSigterm = () => {
    this.#delayedStop ??= new DelayedStop(
      this.#ctx,
      () => this.stop(),
      () => this.#manager?.abandonReload(),
    );
    this.#delayedStop.sigterm();
  };

  constructor(ctx: ServerContext, ops: Operations, sender: TaskSender) {
    this.#ctx = ctx;
    this.#ops = ops;
    this.#sender = sender;
    this.#mail = mailHandler(ctx, {
      sender,
      control: (what) => {
        if (what === Control.shutdown) this.stop();
        else if (what === Control.reload) this.reload(false);
        else if (what === Control.reloadTasks) this.reload(true);
      },
    });
  }

  /** A master is never a draining worker. */
  get exiting(): boolean {
    return false;
  }

  /** Binds, spawns the workers and supervises them until they are all gone; then cleans up. */
  async start(): Promise<void> {
    const ctx = this.#ctx;
    const o = ctx.options;
    ctx.lib = library();
    const processMode = o.mode === "process";
    try {
      // The command line workers run is checked before anything is bound.
      const manager = new Manager({
        options: o,
        log: ctx.log,
        call: (event, args) => {
          const callback = ctx.callbacks.events[event] as
            | ((...a: unknown[]) => unknown)
            | undefined;
          ctx.callbacks.call(event, -1, () => callback?.(ctx.server, ...args));
        },
        spawnFds: () => ({
          region: ctx.region!,
          doorbells: this.#doorbells,
          listenFds: processMode ? [] : this.#listenFds,
          ports: this.#boundPorts,
          kickFds: this.#kickFds,
        }),
        taskLost: (src, taskId, taskWorkerId) => this.#sender.reportLost(src, taskId, taskWorkerId),
        reopenLog: () => this.#ops.reopenLog(),
        drain: (out) => drain(ctx, out),
        started: () => {
          const { callbacks, server } = ctx;
          if (processMode) callbacks.call("start", -1, () => callbacks.events.start?.(server));
          this.#ops.listening();
        },
        workerExited: (id) => {
          if (this.#reactors !== null) {
            // Its sockets live on; those waiting for its answer to a close do not wait forever.
            ctx.lib.zg_reactor_threads_worker_exited(this.#reactors, id);
          } else {
            // Its sockets died with it: gone from the shared table for every process now.
            ctx.lib.zg_region_clear_table(ctx.region!.pointer, id);
          }
        },
        stopReactors: () => {
          if (this.#reactors === null) return false;
          // The reactor threads deliver `shutdown`, write what is queued, close every session
          // and end each worker's rings with `stopped`; the workers then exit by themselves.
          ctx.lib.zg_reactor_threads_shutdown(this.#reactors);
          this.#joined = ctx.lib.zg_reactor_threads_join(this.#reactors);
          return true;
        },
      });
      this.#manager = manager;
      // SIGRTMIN+1/+2 (`ziggurat drain`) end a process that has not taken them: from before the
      // region exists (which is how the CLI knows a server), never (the manager acts on them).
      for (const signo of [Signal.drain, Signal.undrain]) ctx.lib.zg_signal_take(signo, -1);
      this.#bind();
      ctx.region = Region.create({
        workerNum: o.workerNum,
        taskWorkerNum: o.taskWorkerNum,
        userProcessNum: ctx.processes.length,
        reactorNum: processMode ? o.reactorNum : 0,
        ringSize: o.ringSize,
        mailSize,
        maxConnection: o.maxConnection,
        socketBufferSize: o.socketBufferSize,
      });
      const fd = new Int32Array(1);
      for (let i = 0; i < ctx.region.endpointCount; i++) {
        unwrap(ctx.lib.zg_eventfd(fd), "create a doorbell");
        this.#doorbells.push(fd[0]);
      }
      this.#openMail();
      if (processMode) this.#startReactors();
      ctx.state = "running";
      // SIGUSR1/SIGUSR2 (reload) and SIGRTMIN (reopen the log) the manager takes natively.
      Deno.addSignalListener("SIGTERM", this.#onSigterm);
      await this.#manager.run();
    } finally {
      Deno.removeSignalListener("SIGTERM", this.#onSigterm);
      this.#delayedStop?.cancel();
      await this.#close();
      this.#ops.release();
      ctx.state = "stopped";
    }
    const { callbacks, server } = ctx;
    callbacks.call("shutdown", -1, () => callbacks.events.shutdown?.(server));
  }

  /** Stops the tree: `beforeShutdown`, then every worker (SIGKILL after `maxWaitTime`). */
  stop(): void {
    const ctx = this.#ctx;
    if (ctx.state === "stopped" || ctx.state === "new" || !this.#manager) return;
    this.#delayedStop?.cancel();
    if (ctx.state === "running") {
      const { callbacks, server } = ctx;
      callbacks.call("beforeShutdown", -1, () => callbacks.events.beforeShutdown?.(server));
    }
    ctx.state = "stopping";
    this.#ops.stopping();
    this.#manager.stop();
  }

  shutdown(): void {
    this.stop();
  }

  reload(onlyTask: boolean): boolean {
    return this.#manager?.reload(onlyTask) ?? false;
  }

  restart(workerId: number): boolean {
    return this.#manager?.restart(workerId) ?? false;
  }

  /**
   * Binds the server's socket and each port's. With reuse port in BASE mode each worker binds
   * its own socket; the master's stays bound but does not listen, so it holds the port (between
   * a worker's death and its respawn too) and takes no connections.
   */
  #bind() {
    const ctx = this.#ctx;
    const o = ctx.options;
    const bindOnly = o.enableReusePort && o.mode === "base" ? ListenFlag.bindOnly : 0;
    const fd = new Int32Array(1);
    const port = new Uint32Array(1);
    // Socket activation: the supervisor's sockets, in order, instead of binding.
    const handed = activatedSockets();
    if (handed.length > 0 && o.enableReusePort) {
      throw new TypeError(
        'Option "enableReusePort" does not apply to sockets a supervisor hands over (LISTEN_FDS)',
      );
    }
    const listen = (host: string, number: number, sockType: SockType, flags: number) => {
      const given = handed[this.#listenFds.length];
      if (given !== undefined) {
        port[0] = adoptSocket(given);
        this.#listenFds.push(given);
        this.#boundPorts.push(port[0]);
        return;
      }
      const bytes = encoder.encode(host);
      unwrap(
        ctx.lib.zg_listen(bytes, BigInt(bytes.length), number, o.backlog, flags, fd, port),
        `listen on "${formatAddress(host, number)}"`,
      );
      this.#listenFds.push(fd[0]);
      this.#boundPorts.push(port[0]);
      this.#ops.madeSocketFiles([{ sockType, host }]);
    };
    // The server's own socket takes reuse port whatever its type (a port's only for TCP).
    const reusePort = o.enableReusePort ? ListenFlag.reusePort : 0;
    listen(o.host, o.port, o.sockType, listenFlags(o.sockType, o) | reusePort | bindOnly);
    ctx.port = this.#boundPorts[0];
    for (const p of ctx.ports) {
      listen(p.host, p.port, p.sockType, listenFlags(p.sockType, o) | bindOnly);
      p.bound(port[0]);
    }
    if (o.tcpDeferAccept || o.tcpFastopen) {
      unwrap(
        ctx.lib.zg_listen_options(this.#listenFds[0], o.tcpDeferAccept, o.tcpFastopen),
        "set the listen options",
      );
    }
  }

  /** The master's mailbox: results of its tasks, workers' requests. Runs beside the manager. */
  #openMail() {
    const ctx = this.#ctx;
    const region = ctx.region!;
    const self = region.endpointCount - 1;
    ctx.mailbox = new Mailbox(region, self, this.#doorbells, ctx.lib);
    this.#mailLoopDone = this.#mailLoop(ctx.mailbox, this.#doorbells[self]);
  }

  async #mailLoop(mailbox: Mailbox, doorbell: number): Promise<void> {
    const lib = this.#ctx.lib;
    while (!this.#mailClosing) {
      const handled = mailbox.drain(this.#mail);
      mailbox.flushPending();
      mailbox.publish();
      if (handled > 0) {
        await lib.zg_yield();
        continue;
      }
      if (!mailbox.prepareParking()) continue;
      if (this.#mailClosing) break;
      unwrap(await lib.zg_fd_wait(doorbell), "wait for mail");
      mailbox.unpark();
    }
  }

  /** PROCESS mode: the reactor threads that own the sockets, in this process. */
  #startReactors() {
    const ctx = this.#ctx;
    const { lib, options: o } = ctx;
    const config = nativeConfig(o, 0, o.reactorNum);
    const handle = new BigUint64Array(1);
    const flags = o.openTcpNodelay ? ListenFlag.tcpNodelay : 0;
    unwrap(
      lib.zg_reactor_threads_create(
        config,
        ctx.region!.pointer,
        this.#listenFds[0],
        this.#boundPorts[0],
        flags,
        new Int32Array(this.#doorbells.slice(0, o.workerNum)),
        handle,
      ),
      "create the reactor threads",
    );
    const reactors = Deno.UnsafePointer.create(handle[0]);
    this.#reactors = reactors;
    const set = lib.zg_reactor_threads_set(reactors);
    this.#kickFds = kickFds(lib, set);
    for (const p of ctx.ports) {
      unwrap(
        lib.zg_reactor_threads_add_listener(
          reactors,
          this.#listenFds[p.index],
          this.#boundPorts[p.index],
          listenFlags(p.sockType, p.optionsOver(o) ?? o),
        ),
        `listen on "${formatAddress(p.host, p.port)}"`,
      );
    }
    configureReactors(lib, set, o, ctx.ports, ctx.callbacks.events.handshake !== undefined);
    unwrap(lib.zg_reactor_threads_start(reactors), "start the reactor threads");
  }

  /** Every worker is gone: the reactor threads, the sockets, the mailbox and the doorbells. */
  async #close() {
    const ctx = this.#ctx;
    const lib = ctx.lib;
    if (this.#reactors !== null) {
      lib.zg_reactor_threads_shutdown(this.#reactors);
      await (this.#joined ?? lib.zg_reactor_threads_join(this.#reactors));
      lib.zg_reactor_threads_destroy(this.#reactors);
      this.#reactors = null;
    }
    // The listening sockets, or with reuse port the bound-only ones holding the ports.
    for (const fd of this.#listenFds) lib.zg_close_fd(fd);
    this.#listenFds = [];
    // The region stays mapped (stats() still reads it); its fd is no longer passed on.
    if (ctx.region) lib.zg_close_fd(ctx.region.fd);
    const mailbox = ctx.mailbox;
    if (mailbox) {
      // Every child has exited: the mailbox loop stops before its doorbells close.
      mailbox.flushPending();
      mailbox.publish();
      this.#mailClosing = true;
      lib.zg_fd_kick(this.#doorbells[ctx.region!.endpointCount - 1]);
      await this.#mailLoopDone;
      ctx.mailbox = undefined;
    }
    for (const fd of this.#doorbells) lib.zg_close_fd(fd);
    this.#doorbells = [];
  }
}
