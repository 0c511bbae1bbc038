/**
 * The tree's shared region: one slot per worker with its pid, status and counters, mapped by
 * the manager and every worker (see `abi.RegionHeader` and `abi.WorkerSlot`). `stats()` and
 * `getWorkerPid()` read it from any process.
 * @module
 */

import { library, unwrap } from "../_ffi/library.ts";
import { layout, portsMax, portStatsFields, statsFields, workerSlot } from "../_ffi/layout.ts";

/** A worker slot's JavaScript counters (f64 each), in the order `publish` takes them. */
const counterFields = [
  "requestCount",
  "responseCount",
  "dispatchCount",
  "callbackErrorCount",
  "discardCount",
] as const;

/** Swoole's worker status values. */
export const WorkerStatus = { notStarted: 0, busy: 1, idle: 2, exited: 3 } as const;

export class Region {
  /** The mapping, for `zg_server_use_region`. */
  readonly pointer: Deno.PointerObject;
  /** The memfd to pass to workers (the manager's), or -1. */
  readonly fd: number;
  readonly workerNum: number;
  /** PROCESS mode: the master's reactor threads (0 in BASE mode). */
  readonly reactorNum: number;
  readonly taskWorkerNum: number;
  readonly userProcessNum: number;
  /** Mailbox endpoints: event workers, task workers, user processes, then the master. */
  readonly endpointCount: number;
  /** The whole region, for the lanes of a PROCESS-mode worker. */
  readonly memory: ArrayBuffer;
  #i32: Int32Array;
  #u16: Uint16Array;
  #f64: Float64Array;
  #u64: BigUint64Array;
  #base = [0, 0, 0, 0, 0];

  private constructor(pointer: Deno.PointerObject, length: number, fd: number) {
    this.pointer = pointer;
    this.fd = fd;
    const memory = Deno.UnsafePointerView.getArrayBuffer(pointer, length);
    this.memory = memory;
    this.#i32 = new Int32Array(memory);
    this.#u16 = new Uint16Array(memory);
    this.#f64 = new Float64Array(memory);
    this.#u64 = new BigUint64Array(memory);
    this.workerNum = this.#i32[1];
    this.reactorNum = this.#i32[layout.regionReactorNum / 4];
    this.taskWorkerNum = this.#i32[layout.regionTaskWorkerNum / 4];
    this.userProcessNum = this.#i32[layout.regionTaskWorkerNum / 4 + 1];
    this.endpointCount = this.workerNum + this.taskWorkerNum + this.userProcessNum + 1;
  }

  /** The tree stops (`zg_region_set_stopping`): no worker carries its WebSockets on. */
  get stopping(): boolean {
    return library().zg_region_stopping(this.pointer) !== 0;
  }

  /** The tree's place in a balancer's rotation (`abi.RegionHeader.rotation`). */
  get rotation(): number {
    return Atomics.load(this.#u16, layout.regionRotation / 2);
  }

  set rotation(state: number) {
    Atomics.store(this.#u16, layout.regionRotation / 2, state);
  }

  /** Worker slots: event workers, task workers, user processes. */
  get slotCount(): number {
    return this.endpointCount - 1;
  }

  /** Byte offset of the mailbox channel of endpoints `a` and `b`. */
  mailChannelOffset(a: number, b: number): number {
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    const first = Number(this.#u64[layout.regionMailOffset / 8]);
    const stride = Number(this.#u64[layout.regionMailStride / 8]);
    return first + ((hi * (hi - 1)) / 2 + lo) * stride;
  }

  /** A task worker notes a task in hand (false when its table is full: then it is untracked). */
  trackTask(workerId: number, src: number, taskId: number): boolean {
    const at = (this.#slot(workerId) + layout.workerSlotRunning) / 4;
    for (let i = 0; i < layout.runningMax; i++) {
      if (Atomics.load(this.#i32, at + 2 * i + 1) === 0) {
        Atomics.store(this.#i32, at + 2 * i, src);
        Atomics.store(this.#i32, at + 2 * i + 1, taskId);
        return true;
      }
    }
    return false;
  }

  untrackTask(workerId: number, src: number, taskId: number): void {
    const at = (this.#slot(workerId) + layout.workerSlotRunning) / 4;
    for (let i = 0; i < layout.runningMax; i++) {
      if (
        Atomics.load(this.#i32, at + 2 * i + 1) === taskId &&
        Atomics.load(this.#i32, at + 2 * i) === src
      ) {
        Atomics.store(this.#i32, at + 2 * i + 1, 0);
        return;
      }
    }
  }

  /** The tasks a (dead) task worker had in hand; clears its table. */
  takeRunning(workerId: number): { src: number; taskId: number }[] {
    const at = (this.#slot(workerId) + layout.workerSlotRunning) / 4;
    const out: { src: number; taskId: number }[] = [];
    for (let i = 0; i < layout.runningMax; i++) {
      const taskId = Atomics.exchange(this.#i32, at + 2 * i + 1, 0);
      if (taskId !== 0) out.push({ src: Atomics.load(this.#i32, at + 2 * i), taskId });
    }
    return out;
  }

  /** The next task id of the sender in slot `workerId` (1 up, wrapping below 2^31). */
  nextTaskId(workerId: number): number {
    const at = (this.#slot(workerId) + layout.workerSlotTaskSeq) / 4;
    const id = (Atomics.add(this.#i32, at, 1) + 1) & 0x7fff_ffff;
    return id === 0 ? this.nextTaskId(workerId) : id;
  }

  /** A task worker's tasks in hand (Swoole's `tasking_num`) and taken in all. */
  setTasking(workerId: number, tasking: number): void {
    Atomics.store(this.#i32, (this.#slot(workerId) + layout.workerSlotTasking) / 4, tasking);
  }

  tasking(workerId: number): number {
    return Atomics.load(this.#i32, (this.#slot(workerId) + layout.workerSlotTasking) / 4);
  }

  /**
   * Creates the region (the manager): the worker table, a session table per worker (BASE,
   * `reactorNum` 0) or per reactor thread of the master (PROCESS), in PROCESS mode the rings
   * between reactor threads and workers, and a mailbox for every pair of processes.
   */
  static create(shape: {
    workerNum: number;
    taskWorkerNum: number;
    userProcessNum: number;
    reactorNum: number;
    ringSize: number;
    mailSize: number;
    maxConnection: number;
    socketBufferSize: number;
  }): Region {
    const fd = new Int32Array(1);
    const ptr = new BigUint64Array(1);
    const len = new BigUint64Array(1);
    const native = new Uint32Array(layout.regionShapeSize / 4);
    native.set([
      shape.workerNum,
      shape.taskWorkerNum,
      shape.userProcessNum,
      shape.reactorNum,
      shape.ringSize,
      shape.mailSize,
      shape.maxConnection,
      shape.socketBufferSize,
    ]);
    unwrap(library().zg_region_create(native, Deno.pid, fd, ptr, len), "create the shared region");
    return new Region(Deno.UnsafePointer.create(ptr[0])!, Number(len[0]), fd[0]);
  }

  /**
   * The region of the running server whose master is `pid` (same user), found among its open
   * fds; undefined when it has none (a one-worker server without a manager).
   */
  static ofProcess(pid: number): Region | undefined {
    for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
      const path = `/proc/${pid}/fd/${entry.name}`;
      let target = "";
      try {
        target = Deno.readLinkSync(path);
      } catch {
        continue;
      }
      if (!target.startsWith("/memfd:ziggurat-region")) continue;
      const bytes = new TextEncoder().encode(path);
      const ptr = new BigUint64Array(1);
      const len = new BigUint64Array(1);
      unwrap(library().zg_region_open(bytes, BigInt(bytes.length), ptr, len), `map ${path}`);
      return new Region(Deno.UnsafePointer.create(ptr[0])!, Number(len[0]), -1);
    }
    return undefined;
  }

  /** Counts a mailbox message (Swoole's `pipe_packet_msg_id`). */
  countMail(): void {
    Atomics.add(this.#i32, layout.regionMailCount / 4, 1);
  }

  /**
   * The whole tree's `stats()` fields: every event worker's slot summed, the master's reactor
   * threads' counters (PROCESS mode), the task workers'. The `worker*` fields are left to the
   * process that asks (they are its own).
   */
  treeStats(): Record<string, number> {
    const total: Record<string, number> = {};
    let idle = 0;
    let busy = 0;
    let startTime = Infinity;
    let sessionRound = 0;
    const add = (counters: Record<string, number>, all: boolean) => {
      for (const [name, value] of Object.entries(counters)) {
        if (!all && (name === "startTime" || name === "sessionRound")) continue;
        total[name] = (total[name] ?? 0) + value;
      }
      if (counters.startTime > 0) startTime = Math.min(startTime, counters.startTime);
      sessionRound = Math.max(sessionRound, counters.sessionRound);
    };
    for (let id = 0; id < this.workerNum; id++) {
      add(this.counters(id), true);
      const status = this.status(id);
      if (status === WorkerStatus.idle) idle++;
      if (status === WorkerStatus.busy) busy++;
    }
    // PROCESS mode: the sockets' counters are the master's reactor threads'.
    for (let r = 0; r < this.reactorNum; r++) add(this.reactorCounters(r), false);
    let taskIdle = 0;
    let tasking = 0;
    let taskCount = 0;
    for (let t = 0; t < this.taskWorkerNum; t++) {
      const id = this.workerNum + t;
      if (this.status(id) === WorkerStatus.idle) taskIdle++;
      tasking += this.tasking(id);
      taskCount += this.counters(id).requestCount;
    }
    const fds = new Int32Array(2);
    library().zg_fd_range(null, this.pointer, fds);
    // The tree's start: the master's (a worker's own restarts with every respawn or reload).
    const treeStart = Number(this.#u64[2]);
    return {
      ...total,
      startTime: treeStart > 0 ? treeStart : startTime === Infinity ? 0 : startTime,
      sessionRound,
      workerNum: this.workerNum,
      idleWorkerNum: idle,
      concurrency: busy,
      taskWorkerNum: this.taskWorkerNum,
      taskIdleWorkerNum: taskIdle,
      taskingNum: tasking,
      taskCount,
      userWorkerNum: this.userProcessNum,
      pipePacketMsgId: Atomics.load(this.#i32, layout.regionMailCount / 4) >>> 0,
      minFd: fds[0],
      maxFd: fds[1],
    };
  }

  /** Every process of the tree: its id, kind, pid (-1 when exited) and Swoole status. */
  processes(): { id: number; type: "event" | "task" | "process"; pid: number; status: number }[] {
    return Array.from({ length: this.slotCount }, (_, id) => ({
      id,
      type: id < this.workerNum
        ? "event" as const
        : id < this.workerNum + this.taskWorkerNum
        ? "task" as const
        : "process" as const,
      pid: this.pid(id) === 0 ? -1 : this.pid(id),
      status: this.status(id),
    }));
  }

  /** Maps the region inherited as `fd` (a worker). */
  static map(fd: number): Region {
    const ptr = new BigUint64Array(1);
    const len = new BigUint64Array(1);
    unwrap(library().zg_region_map(fd, ptr, len), "map the shared region");
    return new Region(Deno.UnsafePointer.create(ptr[0])!, Number(len[0]), -1);
  }

  /** Byte offset of the channel between reactor thread `reactor` and worker `workerId`. */
  channelOffset(reactor: number, workerId: number): number {
    const first = Number(this.#u64[layout.regionChannelsOffset / 8]);
    const stride = Number(this.#u64[layout.regionChannelStride / 8]);
    return first + (reactor * this.workerNum + workerId) * stride;
  }

  /** The counters of PROCESS-mode reactor thread `reactor` (statsFields). */
  reactorCounters(reactor: number): Record<string, number> {
    const at = this.#reactorStats(reactor) / 8;
    const out: Record<string, number> = {};
    statsFields.forEach((name, i) => {
      out[name] = Number(Atomics.load(this.#u64, at + i));
    });
    return out;
  }

  /** Byte offset of PROCESS-mode reactor thread `reactor`'s `abi.Stats`. */
  #reactorStats(reactor: number): number {
    return Number(this.#u64[layout.regionReactorStatsOffset / 8]) + reactor * layout.statsSize;
  }

  /**
   * Listener `index`'s counters (portStatsFields) over the tree: every event worker's reactor
   * (BASE) and every reactor thread (PROCESS).
   */
  portCounters(index: number): Record<string, number> {
    const blocks = [
      ...Array.from({ length: this.workerNum }, (_, id) => this.#slot(id) + layout.workerSlotStats),
      ...Array.from({ length: this.reactorNum }, (_, r) => this.#reactorStats(r)),
    ];
    return sumPortCounters(this.#u64, blocks, index);
  }

  #slot(workerId: number): number {
    return layout.regionSlotsOffset + workerId * layout.workerSlotSize;
  }

  pid(workerId: number): number {
    return Atomics.load(this.#i32, this.#slot(workerId) / 4);
  }

  status(workerId: number): number {
    return Atomics.load(this.#i32, this.#slot(workerId) / 4 + 1);
  }

  setWorker(workerId: number, pid: number, status: number): void {
    Atomics.store(this.#i32, this.#slot(workerId) / 4, pid);
    Atomics.store(this.#i32, this.#slot(workerId) / 4 + 1, status);
  }

  setStatus(workerId: number, status: number): void {
    Atomics.store(this.#i32, this.#slot(workerId) / 4 + 1, status);
  }

  /** Publishes a worker's JavaScript counters (the worker is their only writer). */
  publish(
    workerId: number,
    request: number,
    response: number,
    dispatch: number,
    callbackErrors: number,
    discards: number,
  ): void {
    const values = [request, response, dispatch, callbackErrors, discards];
    counterFields.forEach((field, i) => {
      this.#f64[(this.#slot(workerId) + workerSlot[field]) / 8] = this.#base[i] + values[i];
    });
  }

  /**
   * What this process counted and has not published yet (`values` in `publish`'s order), by
   * `counterFields` name: its `stats()` adds them, so that a batch sees its own counts.
   */
  unpublished(workerId: number, values: number[]): Record<string, number> {
    const out: Record<string, number> = {};
    counterFields.forEach((field, i) => {
      const published = this.#f64[(this.#slot(workerId) + workerSlot[field]) / 8];
      out[field] = this.#base[i] + values[i] - published;
    });
    return out;
  }

  /**
   * A respawned worker adds to what its predecessors under the same id counted, so totals
   * survive respawns: call once before the first `publish`.
   */
  adopt(workerId: number): void {
    this.#base = counterFields.map((field) =>
      this.#f64[(this.#slot(workerId) + workerSlot[field]) / 8]
    );
  }

  /**
   * After a worker exits: its open connections and queued bytes went with it. (The counters of
   * what it did stay in the totals.)
   */
  clearGauges(workerId: number): void {
    const stats = (this.#slot(workerId) + layout.workerSlotStats) / 8;
    Atomics.store(this.#u64, stats + statsFields.indexOf("connectionNum"), 0n);
    Atomics.store(this.#u64, stats + statsFields.indexOf("sendQueuedBytes"), 0n);
    for (let port = 0; port < portsMax; port++) {
      const at = stats + (layout.statsPorts + port * layout.portStatsSize) / 8;
      Atomics.store(this.#u64, at + portStatsFields.indexOf("connectionNum"), 0n);
    }
  }

  /** One worker's counters: the reactor's (statsFields) and the JavaScript ones. */
  counters(workerId: number): Record<string, number> {
    const out: Record<string, number> = {};
    const stats = (this.#slot(workerId) + layout.workerSlotStats) / 8;
    statsFields.forEach((name, i) => {
      out[name] = Number(Atomics.load(this.#u64, stats + i));
    });
    const counter = (field: typeof counterFields[number]) =>
      this.#f64[(this.#slot(workerId) + workerSlot[field]) / 8];
    out.requestCount = counter("requestCount");
    out.responseCount = counter("responseCount");
    out.workerDispatchCount = counter("dispatchCount");
    out.callbackErrorCount = counter("callbackErrorCount");
    out.discardCount = counter("discardCount");
    return out;
  }
}

/**
 * Listener `index`'s counters summed over `abi.Stats` blocks (byte offsets into `u64`'s
 * memory).
 */
export function sumPortCounters(
  u64: BigUint64Array,
  blocks: number[],
  index: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of portStatsFields) out[name] = 0;
  for (const block of blocks) {
    const at = (block + layout.statsPorts + index * layout.portStatsSize) / 8;
    portStatsFields.forEach((name, i) => {
      out[name] += Number(Atomics.load(u64, at + i));
    });
  }
  return out;
}
