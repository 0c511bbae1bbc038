/**
 * An event worker (Swoole's worker.cc, for the connection callbacks): a one-worker server or a
 * BASE worker with a reactor of its own, or a PROCESS worker whose lanes reach the master's
 * reactor threads. Its records go to `Records.dispatch`; a reactor's `shutdown` and `stopped`
 * records are its own way out.
 *
 * - `open`: its reactor (`#openReactor`) or its lanes to the master's (`#attach`)
 * - `begin`: `start` (BASE mode, the first worker 0), `workerStart`, the `maxRequest` budget
 * - `onRecord`, `#lifecycle`, `#stopWorker`: the records and the drain a shutdown starts
 * - `stop`: a reactor of its own shuts down; a PROCESS worker leaves
 * @module
 */

import { unwrap } from "../_ffi/library.ts";
import { layout, RecordType, statsFields } from "../_ffi/layout.ts";
import type { ServerContext } from "../context.ts";
import { Lane } from "../ipc/lane.ts";
import { publishedView } from "../ipc/published.ts";
import { Unsent } from "../ipc/unsent.ts";
import type { Operations } from "../operations/operations.ts";
import { Signal } from "../operations/signals.ts";
import { drain } from "../operations/rotation.ts";
import { Records } from "../records.ts";
import { httpListeners } from "../port.ts";
import { HttpLayer } from "../http/http_layer.ts";
import type { Sessions } from "../sessions.ts";
import type { TaskSender } from "../tasks.ts";
import { createReactor, startReactor } from "./base_reactor.ts";
import { kickFds } from "./reactor_set.ts";
import { Worker } from "./worker.ts";
import type { WorkerRole } from "./worker.ts";

const empty = new Uint8Array(0);

export class EventWorker extends Worker {
  /** Records from the reactors to the callbacks. */
  #records: Records;
  #sessions: Sessions;
  /** `maxRequest`: this worker leaves once it handled this many requests (0: never). */
  #requestLimit = 0;
  /** The drain is over: `workerStop` ran, and each reactor's `shutdown` gets its answer. */
  #workerStopped = false;
  /** Its WebSockets go on in its successor when it leaves (`#carry`). */
  #carries = false;

  constructor(ctx: ServerContext, ops: Operations, sender: TaskSender, sessions: Sessions) {
    super(ctx, ops, sender);
    this.#sessions = sessions;
    this.#records = new Records(ctx, sessions);
  }

  protected open() {
    const { options: o, ports } = this.ctx;
    // An HTTP socket's messages are requests (src/http/).
    if (httpListeners(o, ports).some(Boolean)) {
      this.ctx.http = new HttpLayer(this.ctx, this.#sessions);
    }
    const role = this.ctx.role;
    if (role.kind === "worker" && role.kickFds.length > 0) this.#attach(role);
    else this.#openReactor();
  }

  /** A reactor of this process's own: a one-worker server's, a BASE worker's. */
  #openReactor() {
    const ctx = this.ctx;
    const { lib, options: o, role } = ctx;
    const { handle, port } = createReactor(lib, o, role, ctx.ports, ctx.workerId);
    ctx.handle = handle;
    ctx.port = port;
    if (role.kind === "single") this.ops.madeSocketFiles([o, ...ctx.ports]);
    try {
      this.#mapChannel();
      if (role.kind === "worker") {
        // Count into this worker's slot of the tree's region, where every process reads.
        const region = this.mapRegion(role);
        unwrap(
          lib.zg_server_use_region(handle, region.pointer, role.workerId),
          "use the shared region",
        );
        this.openMail(role);
      }
      startReactor(
        lib,
        handle,
        o,
        ctx.ports,
        ctx.callbacks.events.handshake !== undefined,
        this.#carry(),
      );
    } catch (error) {
      lib.zg_server_destroy(handle);
      ctx.handle = null;
      throw error;
    }
  }

  /**
   * A BASE worker of a WebSocket server: its predecessor's WebSockets to take up, and the way
   * its own go on (core/src/carry.zig). Ends it does not use are closed here.
   */
  #carry(): { out: number; in: number } | undefined {
    const { role, lib } = this.ctx;
    if (role.kind !== "worker") return undefined;
    const carries = this.ctx.carryWebSockets && this.ctx.pubsub !== undefined;
    if (carries) {
      this.#carries = role.carry.out >= 0;
      return role.carry;
    }
    for (const fd of [role.carry.out, role.carry.in]) if (fd >= 0) lib.zg_close_fd(fd);
    return { out: -1, in: -1 };
  }

  #mapChannel() {
    const ctx = this.ctx;
    const lib = ctx.lib;
    const ptr = new BigUint64Array(1);
    const len = new BigUint64Array(1);
    unwrap(lib.zg_server_channel(ctx.handle, ptr, len), "map the channel");
    const memory = Deno.UnsafePointerView.getArrayBuffer(
      Deno.UnsafePointer.create(ptr[0])!,
      Number(len[0]),
    );
    ctx.channelStats = new BigUint64Array(memory, layout.channelStats, statsFields.length);
    ctx.channelHeader = new BigUint64Array(memory, 0, layout.channelHeaderSize / 8);
    if (ctx.role.kind === "single") ctx.published = publishedView(memory);
    const [kick] = kickFds(lib, lib.zg_server_reactors(ctx.handle));
    const lane = new Lane(memory, 0, () => lib.zg_fd_kick(kick));
    lane.unsent = new Unsent();
    ctx.lanes = [lane];
  }

  /**
   * A PROCESS-mode worker attaches to the master's reactor threads through its rings in the
   * region (one lane per reactor thread; the sockets stay in the master).
   */
  #attach(role: WorkerRole) {
    const ctx = this.ctx;
    const lib = ctx.lib;
    const region = this.mapRegion(role);
    const kickFds = role.kickFds;
    if (kickFds.length !== region.reactorNum) {
      throw new Error(
        `expected ${region.reactorNum} reactor kick fds from the manager, got ${kickFds.length}`,
      );
    }
    ctx.lanes = kickFds.map((fd, reactor) => {
      const lane = new Lane(
        region.memory,
        region.channelOffset(reactor, role.workerId),
        () => lib.zg_fd_kick(fd),
      );
      lane.unsent = new Unsent();
      return lane;
    });
    ctx.port = role.ports[0];
    ctx.noReactor = true;
    this.#records.attach(ctx.options.maxQueuedBytes > 0 ? region.pointer : null);
    this.openMail(role);
  }

  protected begin() {
    const ctx = this.ctx;
    const { callbacks, server, workerId, role, options: o } = ctx;
    // As in Swoole's BASE mode, `start` runs once: in the first worker 0, not in its successors
    // (PROCESS mode: in the master).
    const respawned = role.kind === "worker" && role.respawned;
    if (workerId === 0 && !ctx.noReactor && !respawned) {
      callbacks.call("start", -1, () => callbacks.events.start?.(server));
    }
    if (role.kind === "single") this.ops.listening();
    // maxRequest: this worker leaves after that many requests, plus up to the grace more.
    if (role.kind === "worker" && o.maxRequest > 0) {
      const grace = o.maxRequestGrace;
      const extra = grace > 0 ? 1 + Math.floor(Math.random() * grace) : 0;
      this.#requestLimit = o.maxRequest + extra;
    }
    callbacks.call("workerStart", -1, () => callbacks.events.workerStart?.(server, workerId));
  }

  protected override onRecord(
    lane: Lane,
    type: number,
    at: number,
    len: number,
    a: number,
    b: number,
  ) {
    if (type === RecordType.shutdown || type === RecordType.stopped) {
      this.ctx.counters.dispatch++;
      this.#lifecycle(lane, type);
    } else {
      this.#records.dispatch(lane, type, at, len, a, b);
    }
  }

  protected override afterBatch() {
    const ctx = this.ctx;
    if (this.#requestLimit > 0 && ctx.counters.request >= this.#requestLimit) {
      this.#requestLimit = 0;
      ctx.log.info(`maxRequest: ${ctx.counters.request} requests handled; this worker leaves`);
      queueMicrotask(() => this.stop());
    }
  }

  /**
   * A one-worker server takes SIGUSR1/SIGUSR2 too, only to note them, and SIGRTMIN+1/+2
   * (`ziggurat drain`).
   */
  protected override watchedSignals(): number[] {
    const single = this.ctx.role.kind === "single";
    return [
      ...super.watchedSignals(),
      ...(single ? [Signal.usr1, Signal.usr2, Signal.drain, Signal.undrain] : []),
    ];
  }

  protected override checkSignals() {
    super.checkSignals();
    if (this.ctx.role.kind !== "single") return;
    const usr1 = this.signals.arrived(Signal.usr1);
    const usr2 = this.signals.arrived(Signal.usr2);
    if (usr1 || usr2) {
      this.ctx.log.warning("reload asked for, but this server runs no worker processes to replace");
    }
    if (this.signals.arrived(Signal.drain)) drain(this.ctx, true);
    if (this.signals.arrived(Signal.undrain)) drain(this.ctx, false);
  }

  /** A reactor's `shutdown` (the drain starts) or `stopped` (its rings end) record. */
  #lifecycle(lane: Lane, type: number) {
    const ctx = this.ctx;
    switch (type) {
      case RecordType.shutdown: {
        // Every reactor sends one; the drain starts at the first, and each is answered once
        // the async callbacks in hand have settled (the reactors wait up to maxWaitTime).
        const first = !ctx.lanes.some((l) => l.shutdownSeen);
        lane.shutdownSeen = true;
        // (Stopping: a maxRequest or SIGTERM meanwhile does not start a second way out.)
        if (ctx.state === "running") ctx.state = "stopping";
        if (first) this.exit.begin(() => this.#stopWorker());
        else if (this.#workerStopped) lane.push(RecordType.shutdownAck, 0, 0, empty);
        return;
      }
      case RecordType.stopped:
        lane.stopped = true;
        this.ended = ctx.lanes.every((l) => l.stopped);
        return;
    }
  }

  /** After a shutdown's drain: `workerStop`, then the answer to each reactor's `shutdown`. */
  #stopWorker() {
    const ctx = this.ctx;
    this.#workerStopped = true;
    const { callbacks, server, workerId } = ctx;
    callbacks.call("workerStop", -1, () => callbacks.events.workerStop?.(server, workerId));
    // Carrying its WebSockets on (the tree runs): what is forwarded to them from now on waits
    // in the mailbox for the successor (a message begun before is still taken whole).
    if (this.#carries && ctx.mailbox && !ctx.region!.stopping) {
      ctx.mailbox.admit = () => false;
    }
    for (const lane of ctx.lanes) {
      if (lane.shutdownSeen) lane.push(RecordType.shutdownAck, 0, 0, empty);
    }
    for (const lane of ctx.lanes) ctx.sentOn(lane);
  }

  /**
   * This worker stops: a reactor of its own shuts down (the drain, `workerStop`, then the
   * sessions close); a PROCESS worker leaves, its sessions staying with the master.
   */
  override stop(): void {
    const ctx = this.ctx;
    if (ctx.state !== "running") return;
    if (ctx.noReactor) return this.leave();
    ctx.state = "stopping";
    // beforeShutdown and shutdown belong to the process that called start() first: in a tree,
    // the master; its workers only stop (workerStop).
    if (ctx.role.kind !== "worker") {
      const { callbacks, server } = ctx;
      callbacks.call("beforeShutdown", -1, () => callbacks.events.beforeShutdown?.(server));
      this.ops.stopping();
    }
    unwrap(ctx.lib.zg_server_shutdown(ctx.handle), "shut down");
  }
}
