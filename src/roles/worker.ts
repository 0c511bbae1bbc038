/**
 * The worker loop, common to every process that runs callbacks (Swoole's worker.cc): a
 * one-worker server, an event worker, a task worker, a user process. It drains the inbound
 * rings (its lanes to reactors, its mailboxes) in batches on the JS thread, publishes what the
 * batch sent at its end, and parks in one pending `nonblocking` FFI wait only when every ring
 * is empty; then the way out (a drain, the workers' exit).
 *
 * - `start`: the start-up every worker shares (the manager's death, privileges, the loop)
 * - `stop`, `shutdown`, `reload`, `restart`: this process's part, and its word to the master
 * - `#run`, `#park`, `#drain`: the loop
 * - `#finish`, `leave`, `drainOutboxes`: the way out
 * @module
 */

import { library, unwrap } from "../_ffi/library.ts";
import { layout, PollFlag, published, RecordType } from "../_ffi/layout.ts";
import type { ServerContext } from "../context.ts";
import type { Lane } from "../ipc/lane.ts";
import { letGoOfHeld, publishTails, recordEnd } from "../ipc/lane.ts";
import { Mailbox } from "../ipc/mailbox.ts";
import { publishOwn } from "../ipc/published.ts";
import type { MailHandler } from "../ipc/mailbox.ts";
import { Region, WorkerStatus } from "../ipc/region.ts";
import { Control, mailHandler } from "../messages.ts";
import type { Operations } from "../operations/operations.ts";
import { dropPrivileges } from "../operations/privileges.ts";
import { Signal, TakenSignals } from "../operations/signals.ts";
import { DelayedStop, Rotation } from "../operations/rotation.ts";
import { keepFinalStats } from "../stats.ts";
import type { TaskRunner, TaskSender } from "../tasks.ts";
import { AsyncExit } from "./async_exit.ts";
import type { ProcessRole } from "./process_role.ts";
import type { Role } from "./role.ts";

/** A worker's role, as its manager spawned it. */
export type WorkerRole = Extract<Role, { kind: "worker" }>;

const empty = new Uint8Array(0);
/** Yield to Deno's event loop (timers, I/O) at least this often while events keep coming. */
const yieldEveryMs = 4;
/** A PROCESS worker woken less than this ago waits up to `hotWaitUs` on the JS thread first. */
const hotParkMs = 2;
const hotWaitUs = 1000;
/**
 * A worker's SIGTERM with a `shutdownDelay` is looked at this much later: one sent to the whole
 * process group reaches the master at the same time, which must have begun its delay by then.
 */
const groupSignalGraceMs = 250;

export abstract class Worker implements ProcessRole {
  protected readonly ctx: ServerContext;
  protected readonly ops: Operations;
  protected readonly sender: TaskSender;
  /** Swoole's async exit, once this worker was told to go. */
  protected readonly exit: AsyncExit;
  /** A task worker's. */
  protected runner: TaskRunner | undefined;
  protected signals!: TakenSignals;
  /** The doorbell this process waits on (a tree's worker; mail peers ring it too). */
  protected doorbell = -1;
  /** Every reactor sent its `stopped` record: the loop ends. */
  protected ended = false;
  #mail!: MailHandler;
  #done!: PromiseWithResolvers<void>;
  /** When the last park ended (PROCESS worker): a recent one means load. */
  #lastWake = 0;
  /** A one-worker server's SIGTERM: the stop, after `shutdownDelay` out of rotation. */
  #delayedStop: DelayedStop | undefined;
  #onSigterm = () => {
    if (this.ctx.role.kind === "single") {
      this.#delayedStop ??= new DelayedStop(this.ctx, () => this.stop());
      this.#delayedStop.sigterm();
      return;
    }
    // A SIGTERM to the whole process group (systemd's default) reaches the master and every
    // worker at once: with a shutdownDelay, give the master a moment to begin its delay first.
    if (this.ctx.options.shutdownDelay > 0 && !this.#treeStops()) {
      setTimeout(() => this.#sigtermDecided(), groupSignalGraceMs);
      return;
    }
    this.#sigtermDecided();
  };

  #treeStops(): boolean {
    return this.ctx.region?.stopping ?? true;
  }

  /** A tree worker's SIGTERM: from the master (the tree stops, or this worker goes), or not. */
  #sigtermDecided() {
    if (this.ctx.state !== "running") return;
    const treeStops = this.#treeStops();
    const role = this.ctx.role;
    const managerLives = role.kind === "worker" && Deno.ppid === role.managerPid;
    if (!treeStops && this.ctx.region?.rotation === Rotation.leaving && managerLives) {
      // The master waits out its shutdownDelay (the SIGTERM reached this worker too): it stops
      // the workers when the delay is over. (A manager that died sent this SIGTERM by the
      // kernel: that one is obeyed.)
      this.ctx.log.info(
        "SIGTERM while the server waits out its shutdownDelay: serving on until then",
      );
      return;
    }
    this.ctx.log.info(
      treeStops
        ? "SIGTERM: shutting down"
        : "SIGTERM: this worker leaves (a reload or stop(workerId)); a successor takes over",
    );
    this.stop();
  }

  constructor(ctx: ServerContext, ops: Operations, sender: TaskSender) {
    this.ctx = ctx;
    this.ops = ops;
    this.sender = sender;
    this.exit = new AsyncExit({
      options: ctx.options,
      log: ctx.log,
      pending: () => ctx.callbacks.unsettled + (this.runner?.tasking ?? 0),
      abandon: () => {
        ctx.callbacks.unsettled = 0;
        if (this.runner) this.runner.tasking = 0;
      },
      began: (waits) => {
        ctx.region?.setStatus(ctx.workerId, WorkerStatus.exited);
        if (!waits) return;
        const { callbacks, server, workerId } = ctx;
        callbacks.call("workerExit", -1, () => callbacks.events.workerExit?.(server, workerId));
      },
    });
    ctx.callbacks.onSettled = () => this.exit.settled();
  }

  /** Whether this worker was told to go and is draining. */
  get exiting(): boolean {
    return this.exit.began;
  }

  /** Opens this worker's rings: its reactor's, its lanes to the master's, its mailboxes. */
  protected abstract open(): void;

  /** Running: the callbacks of a worker's start (`workerStart`, a user process's body …). */
  protected abstract begin(): void;

  /** A record from a reactor (an event worker's). */
  protected onRecord(_lane: Lane, type: number, _at: number, _len: number, _a: number, _b: number) {
    this.ctx.log.error(`unexpected record type ${type} in a worker without reactors`);
  }

  /** After each batch (an event worker counts its requests). */
  protected afterBatch() {}

  /** The signals the loop takes, and what it does when they come. */
  protected watchedSignals(): number[] {
    return this.ctx.options.logFile ? [Signal.rtmin] : [];
  }

  protected checkSignals() {
    if (this.signals.arrived(Signal.rtmin) && this.ctx.options.logFile) this.ops.reopenLog();
  }

  /** Starts this worker; resolves once it has stopped. */
  start(): Promise<void> {
    const ctx = this.ctx;
    const role = ctx.role;
    ctx.lib = library();
    this.signals = new TakenSignals(ctx.lib);
    // A one-worker server is known to the CLI from its channel on: SIGRTMIN+1/+2 (`ziggurat
    // drain`) must not end it before the loop takes them for real.
    if (role.kind === "single") this.signals.take([Signal.drain, Signal.undrain], -1);
    this.#mail = mailHandler(ctx, { sender: this.sender, runner: this.runner });
    if (role.kind === "worker") {
      // The manager's death (even by SIGKILL) sends us SIGTERM: no orphan keeps serving.
      if (ctx.lib.zg_die_with_parent(Signal.term, role.managerPid) !== 0) {
        ctx.log.error(`the manager (pid ${role.managerPid}) is gone; exiting`);
        Deno.exit(1);
      }
      // The master may forward SIGRTMIN any time from now on: never die of it, and reopen the
      // log for one that comes before the loop runs (counted from here, not from the loop).
      if (ctx.options.logFile) this.signals.take([Signal.rtmin], -1);
    }
    try {
      this.open();
    } catch (error) {
      ctx.state = "stopped";
      this.ops.releasePidFile();
      return Promise.reject(error);
    }
    this.#done = Promise.withResolvers<void>();
    ctx.state = "running";
    Deno.addSignalListener("SIGTERM", this.#onSigterm);
    // Running: idle until its first batch (the master spawned it as "not started").
    ctx.region?.setStatus(ctx.workerId, WorkerStatus.idle);
    // No callback runs before the process gives up root.
    dropPrivileges(ctx.options.user, ctx.options.group, ctx.log, role);
    this.begin();
    this.#run().catch((error) => {
      ctx.log.error("the event loop failed", error);
      this.#done.reject(error);
    });
    return this.#done.promise;
  }

  /** The region of the tree this worker belongs to, mapped and adopted. */
  protected mapRegion(role: WorkerRole): Region {
    const region = Region.map(role.regionFd);
    this.ctx.region = region;
    region.adopt(role.workerId);
    return region;
  }

  /**
   * A task worker or user process: the region and the mailboxes only (no reactor, no lanes);
   * its `port` is the one the master bound.
   */
  protected attachMailOnly() {
    const role = this.ctx.role as WorkerRole;
    this.mapRegion(role);
    this.ctx.port = role.ports[0];
    this.ctx.noReactor = true;
    this.openMail(role);
  }

  /** In a tree: the mailboxes to every other process, and this process's doorbell. */
  protected openMail(role: WorkerRole) {
    const ctx = this.ctx;
    ctx.mailbox = new Mailbox(ctx.region!, role.workerId, role.doorbellFds, ctx.lib);
    this.doorbell = role.doorbellFds[role.workerId];
    // Inherited for this process only: its own children must not get them.
    const carry = [role.carry.out, role.carry.in].filter((fd) => fd >= 0);
    for (const fd of [...role.doorbellFds, ...role.kickFds, ...carry]) ctx.lib.zg_set_cloexec(fd);
    // A BASE worker's reactor wakes it through the same doorbell its peers ring.
    if (ctx.handle !== null) {
      unwrap(ctx.lib.zg_server_use_doorbell(ctx.handle, this.doorbell), "use the doorbell");
    }
  }

  /** This process's part of a stop: a worker without a reactor of its own leaves. */
  stop(): void {
    if (this.ctx.state !== "running") return;
    this.leave();
  }

  /** The whole server stops: a worker of a tree asks the master; the only process stops. */
  shutdown(): void {
    if (this.ctx.role.kind === "worker") this.#tellMaster(Control.shutdown, "SIGTERM");
    else this.stop();
  }

  reload(onlyTask: boolean): boolean {
    if (this.ctx.role.kind !== "worker") return false;
    return onlyTask
      ? this.#tellMaster(Control.reloadTasks, "SIGUSR2")
      : this.#tellMaster(Control.reload, "SIGUSR1");
  }

  restart(workerId: number): boolean {
    const ctx = this.ctx;
    if (ctx.role.kind !== "worker") return false;
    if (workerId === ctx.workerId) {
      this.stop();
      return true;
    }
    const pid = ctx.server.getWorkerPid(workerId);
    // (While the server waits out its shutdownDelay, a worker ignores the SIGTERM.)
    if (pid <= 0 || ctx.region?.rotation === Rotation.leaving) return false;
    try {
      Deno.kill(pid, "SIGTERM");
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A worker asks the master to shut down or reload: through the mailbox (a worker that gave
   * up root may not signal it), else by signal.
   */
  #tellMaster(control: number, signal: Deno.Signal): boolean {
    const role = this.ctx.role as WorkerRole;
    const mailbox = this.ctx.mailbox;
    if (mailbox) {
      mailbox.send(mailbox.lanes.length - 1, RecordType.control, 0, control, empty);
      mailbox.publish();
      return true;
    }
    try {
      Deno.kill(role.managerPid, signal);
      return true;
    } catch (error) {
      this.ctx.log.error(`cannot signal the manager (pid ${role.managerPid})`, error);
      return false;
    }
  }

  /** Drains, dispatches, parks; until every reactor reports `stopped`. */
  async #run(): Promise<void> {
    const ctx = this.ctx;
    const inline = ctx.options.inlineReactor && !ctx.noReactor;
    const lib = ctx.lib;
    const watched = this.watchedSignals();
    const watch = watched.length > 0;
    if (watch) {
      // The signals wake this loop through the fd it waits on.
      const wake = ctx.handle !== null
        ? lib.zg_server_wait_fd(ctx.handle, inline ? 1 : 0)
        : this.doorbell;
      this.signals.take(watched, wake, ctx.role.kind === "single");
      // One that came before the loop woke nothing.
      this.checkSignals();
    }
    let lastYield = performance.now();
    while (true) {
      // Inline mode: this thread is the reactor; one turn writes what we queued, accepts and
      // reads into the ring without blocking.
      const flags = inline ? lib.zg_server_poll(ctx.handle) : 0;
      const handled = this.#drain();
      this.#flushPending();
      if (this.ended) break;
      // Inline mode: what we queued is written by the next turn, not by a thread, so queued
      // records count as work too.
      const queued = inline && ctx.lanes[0].hasOutput();
      if (handled > 0 || (flags & PollFlag.more) !== 0 || queued) {
        // Let promise continuations of async callbacks run; now and then, timers and I/O too.
        const now = performance.now();
        if (now - lastYield >= yieldEveryMs) {
          await lib.zg_yield();
          // Signals are rare: looked at every few ms under load, and after every wait (they
          // wake it), not on every turn.
          if (watch) this.checkSignals();
          lastYield = performance.now();
        } else {
          await undefined;
        }
        continue;
      }
      if (inline) {
        // Mail peers ring the doorbell (which the reactor polls) only if asked to.
        const mailbox = ctx.mailbox;
        if (mailbox && !mailbox.prepareParking()) continue;
        unwrap(await lib.zg_server_wait_io(ctx.handle), "wait for events");
        mailbox?.unpark();
      } else {
        await this.#park();
      }
      if (watch) this.checkSignals();
      lastYield = performance.now();
    }
    this.#finish();
  }

  /** Sleeps until a reactor or a mail peer rings (re-checking every ring after announcing it). */
  async #park(): Promise<void> {
    const ctx = this.ctx;
    const lanes = ctx.lanes;
    // Leaving: the records published now are the successor's; they need not wake us.
    if (!ctx.leaving) { for (const lane of lanes) Atomics.store(lane.u32, lane.inParked, 1); }
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
    const inputCounts = !ctx.leaving && (!ctx.noReactor || letGoOfHeld(lanes));
    if (progress || (inputCounts && lanes.some((lane) => lane.hasInput()))) return unpark();
    const mailbox = ctx.mailbox;
    if (mailbox && !mailbox.prepareParking()) return unpark();
    const unparkAll = () => {
      unpark();
      mailbox?.unpark();
    };
    // Under load a PROCESS worker waits a moment on its own thread first (see zg_fd_wait_for):
    // the next records are usually microseconds away. Timers and I/O wait at most that long.
    if (ctx.noReactor && performance.now() - this.#lastWake < hotParkMs) {
      const rang = ctx.lib.zg_fd_wait_for(this.doorbell, hotWaitUs);
      this.#lastWake = performance.now();
      if (rang === 1) return unparkAll();
    }
    const waited = ctx.noReactor
      ? await ctx.lib.zg_fd_wait(this.doorbell)
      : await ctx.lib.zg_server_wait(ctx.handle);
    unwrap(waited, "wait for events");
    this.#lastWake = performance.now();
    unparkAll();
  }

  /** Busy or idle in the region, except that a draining worker stays exiting (3). */
  #setStatus(status: number) {
    const ctx = this.ctx;
    ctx.region?.setStatus(ctx.workerId, this.exit.began ? WorkerStatus.exited : status);
    if (ctx.published) ctx.published[published.busy / 8] = status === WorkerStatus.busy ? 1 : 0;
  }

  /** Dispatches every record published so far; returns how many. */
  #drain(): number {
    const ctx = this.ctx;
    let handled = 0;
    const lanes = ctx.lanes;
    // PROCESS mode: one record in hand at a time, let go of once what it sent is in the rings
    // (see the end of ipc/lane.ts).
    const claim = ctx.noReactor;
    // Leaving: the records stay in the rings for this worker's successor.
    for (let l = 0; l < lanes.length && !ctx.leaving; l++) {
      const lane = lanes[l];
      const u32 = lane.u32;
      const tail = Atomics.load(u32, lane.inTail);
      let pos = lane.readPos;
      if (pos === tail) continue;
      if (claim && !letGoOfHeld(lanes)) break;
      if (!ctx.inBatch) {
        ctx.inBatch = true;
        this.#setStatus(WorkerStatus.busy);
      }
      try {
        while (pos !== tail) {
          const at = lane.inAt(pos);
          const word = at >>> 2;
          const len = u32[word];
          pos = recordEnd(pos, len);
          if (claim) lane.take(pos);
          const type = lane.u8[at + layout.recordType];
          if (type !== RecordType.pad) {
            this.onRecord(lane, type, at, len, u32[word + 2], u32[word + 3]);
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
    const mailbox = ctx.mailbox;
    if (mailbox && mailbox.hasInput()) {
      if (!ctx.inBatch) {
        ctx.inBatch = true;
        this.#setStatus(WorkerStatus.busy);
      }
      handled += mailbox.drain(this.#mail);
    }
    this.afterBatch();
    if (ctx.inBatch) {
      ctx.inBatch = false;
      mailbox?.publish();
      this.#setStatus(WorkerStatus.idle);
      const { counters } = ctx;
      ctx.region?.publish(
        ctx.workerId,
        counters.request,
        counters.response,
        counters.dispatch,
        counters.callbackErrors,
        counters.discards,
      );
      if (ctx.published) publishOwn(ctx.published, counters);
      for (const lane of lanes) lane.publishOut();
    }
    return handled;
  }

  #flushPending() {
    for (const lane of this.ctx.lanes) lane.flushPending();
    if (this.ctx.noReactor) letGoOfHeld(this.ctx.lanes);
  }

  #finish() {
    const ctx = this.ctx;
    Deno.removeSignalListener("SIGTERM", this.#onSigterm);
    this.#delayedStop?.cancel();
    // The fds the handlers write are about to close.
    this.signals.release();
    keepFinalStats(ctx);
    if (ctx.handle !== null) {
      ctx.lib.zg_server_destroy(ctx.handle);
      // Its channel (the lane's rings) is unmapped with it.
      ctx.lanes = [];
    }
    ctx.handle = null;
    ctx.noReactor = false;
    ctx.state = "stopped";
    // Results, messages and forwarded sends still queued for other processes go out first.
    if (ctx.mailbox) this.drainOutboxes();
    const { callbacks, server } = ctx;
    if (ctx.role.kind !== "worker") {
      this.ops.release();
      callbacks.call("shutdown", -1, () => callbacks.events.shutdown?.(server));
    }
    this.#done.resolve();
    if (ctx.role.kind === "worker") {
      // A worker that stopped is done, whatever timers its script still holds: the master
      // replaces it (a planned exit: no crash-loop delay) or is stopping. Code after
      // `await start()` still runs first.
      ctx.region?.setStatus(ctx.workerId, WorkerStatus.exited);
      setTimeout(() => Deno.exit(0), 0);
    }
  }

  /**
   * Before this process exits: what was sent must reach the rings (lanes and mailboxes). It
   * waits for room (it does nothing else any more), up to maxWaitTime.
   */
  protected drainOutboxes() {
    const ctx = this.ctx;
    const deadline = performance.now() + ctx.options.maxWaitTime * 1000;
    const outboxes = [...ctx.lanes, ...(ctx.mailbox?.lanes ?? [])].filter((l) => l !== undefined);
    while (true) {
      for (const lane of outboxes) {
        lane.flushPending();
        lane.publishOut();
      }
      if (ctx.noReactor) letGoOfHeld(ctx.lanes);
      if (outboxes.every((lane) => lane.pending.length === 0)) return;
      if (performance.now() >= deadline || this.doorbell < 0) {
        ctx.log.warning("exiting with sends still queued: maxWaitTime ran out");
        return;
      }
      ctx.lib.zg_fd_wait_for(this.doorbell, 10_000);
    }
  }

  /**
   * A worker without a reactor of its own told to stop on its own (SIGTERM while the tree
   * runs, a recycle): it runs `workerStop`, hands what it queued to the rings as far as they
   * have room, and exits; the manager starts its successor on the same rings, and no
   * connection notices.
   */
  protected leave() {
    const ctx = this.ctx;
    if (ctx.leaving) return;
    ctx.leaving = true;
    ctx.state = "stopping";
    this.exit.begin(() => {
      const { callbacks, server, workerId } = ctx;
      callbacks.call("workerStop", -1, () => callbacks.events.workerStop?.(server, workerId));
      this.drainOutboxes();
      ctx.log.debug("this worker exits; the manager starts another unless the server stops");
      Deno.exit(0);
    });
  }
}
