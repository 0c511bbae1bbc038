/**
 * The `Server`: Swoole's server API over the native core.
 *
 * The core's reactor thread reads sockets into the inbound ring and writes what this side
 * queues in the outbound ring. This module drains the inbound ring in batches on the JS thread
 * and calls the user's callbacks (`#dispatch` is the one path from native events to typed
 * callbacks); it parks in one pending `nonblocking` FFI wait only when the ring is empty.
 * @module
 */

import { library, unwrap } from "./_ffi/library.ts";
import type { Library } from "./_ffi/library.ts";
import {
  CloseFlag,
  layout,
  ListenFlag,
  PollFlag,
  RecordType,
  SessionState,
  statsFields,
} from "./_ffi/layout.ts";
import { errnoName, ErrorCode } from "./errors.ts";
import { Logger } from "./log.ts";
import { formatAddress, resolveOptions } from "./options.ts";
import { Manager } from "./manager.ts";
import { currentRole, serverKey } from "./role.ts";
import type { Role } from "./role.ts";
import { Region, WorkerStatus } from "./region.ts";
import type { ResolvedOptions, ServerOptions } from "./options.ts";

/** The callbacks `on()` accepts, with Swoole's arguments. */
export interface ServerEvents {
  /** The server listens (BASE mode: in worker 0, once). */
  start: (server: Server) => void;
  /** `shutdown()` was called; the server still runs. */
  beforeShutdown: (server: Server) => void;
  /** Everything stopped; `start()` resolves right after. */
  shutdown: (server: Server) => void;
  /** A worker is ready, before it receives events. */
  workerStart: (server: Server, workerId: number) => void;
  /** A worker stops; what it sends here is still delivered. */
  workerStop: (server: Server, workerId: number) => void;
  /** A connection was accepted. */
  connect: (server: Server, sessionId: number, reactorId: number) => void;
  /** Bytes arrived on a session. `data` is a copy unless `borrowedViews` is set. */
  receive: (server: Server, sessionId: number, reactorId: number, data: Uint8Array) => void;
  /** A session ended; `reactorId` is -1 when the server closed it. */
  close: (server: Server, sessionId: number, reactorId: number) => void;
  /** The manager runs (`workerNum` > 1), before it spawns the workers. In the manager. */
  managerStart: (server: Server) => void;
  /** Every worker has exited. In the manager. */
  managerStop: (server: Server) => void;
  /** A worker exited abnormally (it is respawned under the same id). In the manager. */
  workerError: (
    server: Server,
    workerId: number,
    workerPid: number,
    exitCode: number,
    signal: number,
  ) => void;
}

/** An event name of `on()`. */
export type ServerEvent = keyof ServerEvents;

const eventNames: readonly ServerEvent[] = [
  "start",
  "beforeShutdown",
  "shutdown",
  "workerStart",
  "workerStop",
  "connect",
  "receive",
  "close",
  "managerStart",
  "managerStop",
  "workerError",
];

/** What `getClientInfo()` returns (Swoole's fields, in camelCase). */
export interface ClientInfo {
  sessionId: number;
  /** The socket's fd in the reactor. */
  socketFd: number;
  /** "tcp" or "tcp6". */
  socketType: "tcp" | "tcp6";
  reactorId: number;
  serverFd: number;
  serverPort: number;
  remoteIp: string;
  remotePort: number;
  /** Unix times in seconds (with fractions). */
  connectTime: number;
  lastTime: number;
  lastRecvTime: number;
  lastSendTime: number;
  lastDispatchTime: number;
  closeErrno: number;
  recvQueuedBytes: number;
  sendQueuedBytes: number;
}

/** What `stats()` returns: Swoole's counters, in camelCase. */
export interface ServerStats {
  startTime: number;
  connectionNum: number;
  acceptCount: number;
  closeCount: number;
  abortCount: number;
  refusedCount: number;
  dispatchCount: number;
  totalRecvBytes: number;
  totalSendBytes: number;
  sessionRound: number;
  sendQueuedBytes: number;
  sendDroppedCount: number;
  workerNum: number;
  idleWorkerNum: number;
  requestCount: number;
  responseCount: number;
  workerRequestCount: number;
  workerResponseCount: number;
  workerDispatchCount: number;
  /** Exceptions thrown (or promises rejected) by callbacks, each logged. */
  callbackErrorCount: number;
}

type State = "new" | "starting" | "running" | "stopping" | "stopped";

/** A send waiting for room in the outbound ring; kept in order. */
interface Pending {
  type: number;
  sessionId: number;
  aux: number;
  bytes: Uint8Array;
}

const encoder = new TextEncoder();
/** Largest payload of one send record (less on small rings: a record must fit in half the
 * ring); bigger sends are split and arrive in order. */
const sendChunkMax = 256 * 1024;
/** Received payloads up to this size are copied into shared arenas of `arenaSize` bytes. */
const arenaSmall = 4096;
const arenaSize = 64 * 1024;
/** Yield to Deno's event loop (timers, I/O) at least this often while events keep coming. */
const yieldEveryMs = 4;

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
  #callbacks: Partial<ServerEvents> = {};
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

  // Views of the channel's shared memory.
  #u8!: Uint8Array;
  #u32!: Uint32Array;
  #i16!: Int16Array;
  #stats!: BigUint64Array;
  #mask = 0;
  #ringBytes = 0;
  #sendChunk = 0;
  #inBase = 0;
  #outBase = 0;
  // Word indexes of the ring control fields.
  #inTail = 0;
  #inHead = 0;
  #inParked = 0;
  #inProducerWaiting = 0;
  #outTail = 0;
  #outHead = 0;
  #outParked = 0;
  #outProducerWaiting = 0;

  /** Our positions: the next inbound byte to read, the next outbound byte to write. */
  #readPos = 0;
  #writePos = 0;
  #outHeadSeen = 0;
  #pending: Pending[] = [];
  /** Bytes per session in `#pending`: counted against `socketBufferSize` too. */
  #pendingBytes = new Map<number, number>();
  #inBatch = false;
  #stoppedRecord = false;
  /** Sessions this worker asked to close; they no longer exist for send/exists. */
  #closing = new Set<number>();

  #arena = new Uint8Array(0);
  #arenaUsed = arenaSize;
  /** The counters when the server stopped; `stats()` returns them from then on. */
  #finalStats: ServerStats | undefined;
  #requestCount = 0;
  #responseCount = 0;
  #dispatchCount = 0;
  #callbackErrors = 0;

  /** Creates a server; nothing is bound until `start()`. Throws on invalid options. */
  constructor(options: ServerOptions = {}) {
    this.options = Object.freeze(resolveOptions(options));
    const o = this.options;
    this.#role = currentRole(o.workerNum, serverKey(o.host, o.port, o.workerNum));
    const who = this.#role.kind === "manager"
      ? "manager"
      : `worker#${this.#role.kind === "worker" ? this.#role.workerId : 0}`;
    this.#log = new Logger(this.options.logLevel, `${who} pid ${Deno.pid}`);
  }

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
    if (!region || !Number.isInteger(workerId) || workerId < 0 || workerId >= region.workerNum) {
      return -1;
    }
    return region.status(workerId) === WorkerStatus.exited ? -1 : region.pid(workerId);
  }

  /**
   * Swoole's status of worker `workerId` (default: this worker): 1 busy, 2 idle, 3 exited; -1
   * for no such worker.
   */
  getWorkerStatus(workerId: number = this.getWorkerId()): number {
    const region = this.#region ?? this.#manager?.region;
    if (!region) return workerId === 0 && this.#role.kind === "single" ? WorkerStatus.idle : -1;
    if (!Number.isInteger(workerId) || workerId < 0 || workerId >= region.workerNum) return -1;
    return region.status(workerId);
  }

  /** The manager's pid, or -1 when there is none (one worker). */
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
    (this.#callbacks as Record<string, unknown>)[event] = callback;
    return this;
  }

  /** The callback registered for an event, if any. */
  getCallback<E extends ServerEvent>(event: E): ServerEvents[E] | undefined {
    return this.#callbacks[event];
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
    if (!this.#callbacks.receive) {
      return Promise.reject(
        new TypeError('Cannot start the server: a TCP server needs a "receive" callback'),
      );
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
    try {
      this.#open();
    } catch (error) {
      this.#state = "stopped";
      return Promise.reject(error);
    }
    this.#done = Promise.withResolvers<void>();
    this.#state = "running";
    Deno.addSignalListener("SIGTERM", this.#onSigterm);
    const workerId = this.getWorkerId();
    // As in Swoole's BASE mode, `start` runs once: in worker 0.
    if (workerId === 0) this.#call("start", -1, () => this.#callbacks.start?.(this));
    this.#call("workerStart", -1, () => this.#callbacks.workerStart?.(this, workerId));
    this.#run().catch((error) => {
      this.#log.error("the event loop failed", error);
      this.#done.reject(error);
    });
    return this.#done.promise;
  }

  /** `workerNum` > 1: this process supervises the workers; `start()` resolves after them. */
  async #manage(): Promise<void> {
    const manager = new Manager({
      options: this.options,
      log: this.#log,
      call: (event, args) => {
        const callback = this.#callbacks[event] as ((...a: unknown[]) => unknown) | undefined;
        this.#call(event, -1, () => callback?.(this, ...args));
      },
      setPort: (port) => {
        this.#port = port;
      },
    });
    this.#manager = manager;
    this.#state = "running";
    Deno.addSignalListener("SIGTERM", this.#onSigterm);
    try {
      await manager.run();
    } finally {
      Deno.removeSignalListener("SIGTERM", this.#onSigterm);
      this.#state = "stopped";
    }
    this.#call("shutdown", -1, () => this.#callbacks.shutdown?.(this));
  }

  #open() {
    const lib = library();
    this.#lib = lib;
    const o = this.options;
    const config = new Uint32Array(layout.serverConfigSize / 4);
    config[0] = o.maxConnection;
    config[1] = o.socketBufferSize;
    config[2] = o.ringSize;
    config[3] = Math.max(1, Math.round(o.maxWaitTime * 1000));
    config[4] = Math.max(0, this.getWorkerId()); // reactor id = worker id
    config[5] = ["debug", "info", "warning", "error"].indexOf(o.logLevel);
    // Session ids unique across the tree: worker w of n hands out the ids i with (i-1) % n == w.
    config[6] = this.#role.kind === "worker" ? o.workerNum : 1;
    const handle = new BigUint64Array(1);
    unwrap(lib.zg_server_create(config, handle), "create the server");
    this.#handle = Deno.UnsafePointer.create(handle[0]);
    try {
      const host = encoder.encode(o.host);
      const port = new Uint32Array(1);
      const flags = (o.ipv6Only ? ListenFlag.ipv6Only : 0) |
        (o.enableReusePort ? ListenFlag.reusePort : 0) |
        (o.openTcpNodelay ? ListenFlag.tcpNodelay : 0);
      const where = formatAddress(o.host, o.port);
      const role = this.#role;
      if (role.kind === "worker" && role.listenFd >= 0) {
        unwrap(
          lib.zg_server_adopt(this.#handle, role.listenFd, flags, port),
          "take over the listening socket",
        );
      } else {unwrap(
          lib.zg_server_listen(
            this.#handle,
            host,
            BigInt(host.length),
            role.kind === "worker" ? role.port : o.port,
            o.backlog,
            flags,
            port,
          ),
          `listen on "${where}"`,
        );}
      this.#port = port[0];
      this.#mapChannel();
      if (role.kind === "worker") {
        // Count into this worker's slot of the tree's region, where every process reads.
        this.#region = Region.map(role.regionFd);
        this.#region.adopt(role.workerId);
        unwrap(
          lib.zg_server_use_region(this.#handle, this.#region.pointer, role.workerId),
          "use the shared region",
        );
      }
      unwrap(lib.zg_server_start(this.#handle, o.inlineReactor ? 1 : 0), "start the reactor");
    } catch (error) {
      lib.zg_server_destroy(this.#handle);
      this.#handle = null;
      throw error;
    }
  }

  #mapChannel() {
    const ptr = new BigUint64Array(1);
    const len = new BigUint64Array(1);
    unwrap(this.#lib.zg_server_channel(this.#handle, ptr, len), "map the channel");
    const memory = Deno.UnsafePointerView.getArrayBuffer(
      Deno.UnsafePointer.create(ptr[0])!,
      Number(len[0]),
    );
    this.#u8 = new Uint8Array(memory);
    this.#u32 = new Uint32Array(memory);
    this.#i16 = new Int16Array(memory);
    this.#stats = new BigUint64Array(memory, layout.channelStats, statsFields.length);
    this.#ringBytes = this.#u32[layout.channelRingBytes / 4];
    this.#sendChunk = Math.min(sendChunkMax, this.#ringBytes / 2 - layout.recordHeaderSize);
    this.#mask = this.#ringBytes - 1;
    this.#inBase = layout.dataOffset;
    this.#outBase = layout.dataOffset + this.#ringBytes;
    const word = (ctl: number, field: number) => (ctl + field) / 4;
    this.#inTail = word(layout.channelInCtl, layout.ringTail);
    this.#inHead = word(layout.channelInCtl, layout.ringHead);
    this.#inParked = word(layout.channelInCtl, layout.ringConsumerParked);
    this.#inProducerWaiting = word(layout.channelInCtl, layout.ringProducerWaiting);
    this.#outTail = word(layout.channelOutCtl, layout.ringTail);
    this.#outHead = word(layout.channelOutCtl, layout.ringHead);
    this.#outParked = word(layout.channelOutCtl, layout.ringConsumerParked);
    this.#outProducerWaiting = word(layout.channelOutCtl, layout.ringProducerWaiting);
  }

  /** Drains, dispatches, parks; until the reactor reports `stopped`. */
  async #run(): Promise<void> {
    const inline = this.options.inlineReactor;
    const lib = this.#lib;
    const u32 = this.#u32;
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
      const queued = inline &&
        (this.#pending.length > 0 || this.#writePos !== Atomics.load(u32, this.#outHead));
      if (handled > 0 || (flags & PollFlag.more) !== 0 || queued) {
        // Let promise continuations of async callbacks run; now and then, timers and I/O too.
        const now = performance.now();
        if (now - lastYield >= yieldEveryMs) {
          await lib.zg_yield();
          lastYield = performance.now();
        } else {
          await undefined;
        }
        continue;
      }
      if (inline) {
        unwrap(await lib.zg_server_wait_io(this.#handle), "wait for events");
      } else {
        await this.#park();
      }
      lastYield = performance.now();
    }
    this.#finish();
  }

  /** Thread mode: sleep until the reactor thread rings (re-checking after announcing it). */
  async #park(): Promise<void> {
    const u32 = this.#u32;
    Atomics.store(u32, this.#inParked, 1);
    if (this.#pending.length > 0) {
      // Sends wait for room in the outbound ring: ask the reactor to wake us when it frees.
      Atomics.store(u32, this.#outProducerWaiting, 1);
      const before = this.#pending.length;
      this.#flushPending();
      if (this.#pending.length < before) {
        Atomics.store(u32, this.#outProducerWaiting, 0);
        Atomics.store(u32, this.#inParked, 0);
        return;
      }
    }
    if (Atomics.load(u32, this.#inTail) !== this.#readPos) {
      Atomics.store(u32, this.#inParked, 0);
      return;
    }
    unwrap(await this.#lib.zg_server_wait(this.#handle), "wait for events");
    Atomics.store(u32, this.#inParked, 0);
  }

  #finish() {
    Deno.removeSignalListener("SIGTERM", this.#onSigterm);
    this.#finalStats = this.stats();
    this.#lib.zg_server_destroy(this.#handle);
    this.#handle = null;
    this.#state = "stopped";
    if (this.#role.kind !== "worker") {
      this.#call("shutdown", -1, () => this.#callbacks.shutdown?.(this));
    }
    this.#done.resolve();
  }

  /** Dispatches every record published so far; returns how many. */
  #drain(): number {
    const u32 = this.#u32;
    const tail = Atomics.load(u32, this.#inTail);
    let pos = this.#readPos;
    if (pos === tail) return 0;
    let handled = 0;
    this.#inBatch = true;
    this.#region?.setStatus(this.getWorkerId(), WorkerStatus.busy);
    try {
      while (pos !== tail) {
        const at = this.#inBase + (pos & this.#mask);
        const word = at >>> 2;
        const len = u32[word];
        pos = (pos + ((layout.recordHeaderSize + len + 15) & ~15)) >>> 0;
        const type = this.#u8[at + layout.recordType];
        if (type === RecordType.pad) continue;
        this.#dispatch(type, at, len, u32[word + 2], u32[word + 3]);
        handled++;
      }
    } finally {
      this.#readPos = pos;
      this.#inBatch = false;
      this.#region?.setStatus(this.getWorkerId(), WorkerStatus.idle);
      this.#region?.publish(
        this.getWorkerId(),
        this.#requestCount,
        this.#responseCount,
        this.#dispatchCount,
        this.#callbackErrors,
      );
      Atomics.store(u32, this.#inHead, pos);
      this.#kickIfSet(this.#inProducerWaiting);
      this.#publishOut();
    }
    return handled;
  }

  /** The trampoline from a native record to the user's callback. */
  #dispatch(type: number, at: number, len: number, sessionId: number, aux: number) {
    const reactorId = this.#i16[(at + layout.recordReactorId) >>> 1];
    this.#dispatchCount++;
    switch (type) {
      case RecordType.receive: {
        this.#requestCount++;
        const start = at + layout.recordHeaderSize;
        const data = this.options.borrowedViews
          ? this.#u8.subarray(start, start + len)
          : this.#copy(start, len);
        const receive = this.#callbacks.receive!;
        try {
          const result = receive(this, sessionId, reactorId, data) as unknown;
          if (result instanceof Promise) {
            result.catch((e) => this.#callbackFailed("receive", sessionId, e));
          }
        } catch (error) {
          this.#callbackFailed("receive", sessionId, error);
        }
        return;
      }
      case RecordType.connect:
        this.#call(
          "connect",
          sessionId,
          () => this.#callbacks.connect?.(this, sessionId, reactorId),
        );
        return;
      case RecordType.close: {
        const flags = this.#u8[at + layout.recordFlags];
        if (flags & CloseFlag.error) {
          this.#log.info(`session ${sessionId} closed: ${errnoName(aux)}`);
        }
        this.#call("close", sessionId, () => this.#callbacks.close?.(this, sessionId, reactorId));
        this.#closing.delete(sessionId);
        // After EOF the reactor keeps the socket until we answer, so sends made before this
        // point (and in the close callback) are still written.
        if (flags & CloseFlag.peerEof) {
          this.#push(RecordType.closeRequest, sessionId, 0, new Uint8Array(0));
        }
        return;
      }
      case RecordType.shutdown:
        this.#call("workerStop", -1, () => this.#callbacks.workerStop?.(this, 0));
        this.#push(RecordType.shutdownAck, 0, 0, new Uint8Array(0));
        return;
      case RecordType.stopped:
        this.#stoppedRecord = true;
        return;
      default:
        throw new Error(`unexpected record type ${type} from the reactor`);
    }
  }

  /**
   * A copy of ring bytes that outlives the batch. Small payloads share 64 KiB arenas (one
   * allocation per arena instead of one per message, as Node's Buffer pool does); a kept view
   * keeps at most its arena alive.
   */
  #copy(start: number, len: number): Uint8Array {
    if (len > arenaSmall) return this.#u8.slice(start, start + len);
    let used = this.#arenaUsed;
    if (used + len > arenaSize) {
      this.#arena = new Uint8Array(arenaSize);
      used = 0;
    }
    const arena = this.#arena;
    arena.set(this.#u8.subarray(start, start + len), used);
    this.#arenaUsed = (used + len + 7) & ~7;
    return arena.subarray(used, used + len);
  }

  #call(event: ServerEvent, sessionId: number, fn: () => unknown) {
    try {
      const result = fn();
      if (result instanceof Promise) result.catch((e) => this.#callbackFailed(event, sessionId, e));
    } catch (error) {
      this.#callbackFailed(event, sessionId, error);
    }
  }

  #callbackFailed(event: string, sessionId: number, error: unknown) {
    this.#callbackErrors++;
    const session = sessionId > 0 ? ` for session ${sessionId}` : "";
    this.#log.error(`the "${event}" callback threw${session}; the server carries on`, error);
  }

  /**
   * Queues data for a session. Returns false (see `getLastError()`) when the session is gone
   * or closing, its output buffer is over `socketBufferSize`, or `data` is empty.
   */
  send(sessionId: number, data: Uint8Array | string): boolean {
    if (this.#handle === null || (this.#state !== "running" && this.#state !== "stopping")) {
      this.#lastError = ErrorCode.serverNotRunning;
      return false;
    }
    const state = this.#sessionState(sessionId);
    if (state !== SessionState.open && state !== SessionState.peerClosed) {
      if (state & SessionState.overLimit) {
        this.#lastError = ErrorCode.outputBufferOverflow;
      }
      return false;
    }
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError(`send() takes a Uint8Array or a string, got ${typeof data}`);
    }
    if (bytes.length === 0) {
      this.#lastError = ErrorCode.invalidParams;
      return false;
    }
    // The outbound ring is full and this session's sends already wait behind it: as with a full
    // output buffer, refuse rather than queue without bound.
    if (
      this.#pending.length > 0 &&
      (this.#pendingBytes.get(sessionId) ?? 0) >= this.options.socketBufferSize
    ) {
      this.#lastError = ErrorCode.outputBufferOverflow;
      return false;
    }
    const sendChunk = this.#sendChunk;
    for (let offset = 0; offset < bytes.length; offset += sendChunk) {
      const chunk = bytes.length <= sendChunk ? bytes : bytes.subarray(offset, offset + sendChunk);
      this.#push(RecordType.send, sessionId, 0, chunk);
    }
    this.#responseCount++;
    if (!this.#inBatch) this.#publishOut();
    return true;
  }

  /** The session's state, with `#closing` applied and `lastError` set when not usable. */
  #sessionState(sessionId: number): number {
    if (this.#closing.has(sessionId)) {
      this.#lastError = ErrorCode.sessionClosing;
      return SessionState.closing;
    }
    if (!Number.isInteger(sessionId) || sessionId <= 0 || sessionId > 0xffff_ffff) {
      this.#lastError = ErrorCode.sessionInvalidId;
      return SessionState.gone;
    }
    const state = this.#lib.zg_session_state(this.#handle, sessionId);
    if (state === SessionState.gone) this.#lastError = ErrorCode.sessionNotExist;
    else if (state === SessionState.closing) this.#lastError = ErrorCode.sessionClosing;
    return state;
  }

  /**
   * Closes a session: gracefully (queued output is written first) or, with `reset`, at once
   * with a TCP RST. The `close` callback follows. Returns false when the session is gone or
   * already closing.
   */
  close(sessionId: number, reset = false): boolean {
    if (this.#handle === null || (this.#state !== "running" && this.#state !== "stopping")) {
      return false;
    }
    // After the peer's EOF the server closes the session itself (once `close` has run), so
    // only an open session can be closed here.
    const state = this.#sessionState(sessionId) & 0xff;
    if (state !== SessionState.open) {
      if (state === SessionState.peerClosed) this.#lastError = ErrorCode.sessionClosedByClient;
      return false;
    }
    this.#closing.add(sessionId);
    this.#push(RecordType.closeRequest, sessionId, reset ? 1 : 0, new Uint8Array(0));
    if (!this.#inBatch) this.#publishOut();
    return true;
  }

  /** Whether the session is open (and not closing). */
  exists(sessionId: number): boolean {
    if (this.#handle === null || (this.#state !== "running" && this.#state !== "stopping")) {
      return false;
    }
    return (this.#sessionState(sessionId) & 0xff) === SessionState.open;
  }

  /** Connection details of an open session, or null when it does not exist. */
  getClientInfo(sessionId: number): ClientInfo | null {
    if (
      this.#handle === null || !Number.isInteger(sessionId) || sessionId <= 0 ||
      sessionId > 0xffff_ffff
    ) {
      this.#lastError = ErrorCode.sessionInvalidId;
      return null;
    }
    const buffer = new ArrayBuffer(layout.clientInfoSize);
    const bytes = new Uint8Array(buffer);
    const status = this.#lib.zg_client_info(this.#handle, sessionId, bytes);
    if (status !== 0) {
      this.#lastError = ErrorCode.sessionNotExist;
      return null;
    }
    const u32 = new Uint32Array(buffer, 0, 8);
    const i32 = new Int32Array(buffer, 0, 8);
    const f64 = new Float64Array(buffer, layout.clientInfoConnectTime, 4);
    const u64 = new BigUint64Array(buffer, layout.clientInfoSendQueuedBytes, 3);
    const family = u32[6];
    const addr = bytes.subarray(layout.clientInfoRemoteAddr, layout.clientInfoRemoteAddr + 16);
    return {
      sessionId,
      socketFd: i32[1],
      socketType: family === 6 ? "tcp6" : "tcp",
      reactorId: i32[2],
      serverFd: i32[3],
      serverPort: u32[4],
      remoteIp: family === 6 ? ipv6(addr) : Array.from(addr.subarray(0, 4)).join("."),
      remotePort: u32[5],
      connectTime: f64[0],
      lastTime: Math.max(f64[1], f64[2]),
      lastRecvTime: f64[1],
      lastSendTime: f64[2],
      lastDispatchTime: f64[3],
      closeErrno: i32[7],
      recvQueuedBytes: 0,
      sendQueuedBytes: Number(u64[0]),
    };
  }

  /** The code of the last failed call (`ErrorCode`), as Swoole's `getLastError()`. */
  getLastError(): number {
    return this.#lastError;
  }

  /** Server counters (Swoole's `stats()` fields in camelCase). */
  stats(): ServerStats {
    if (this.#finalStats) return { ...this.#finalStats };
    const region = this.#region ?? this.#manager?.region;
    if (region) return this.#treeStats(region);
    const native: Record<string, number> = {};
    statsFields.forEach((name, i) => {
      native[name] = this.#stats ? Number(Atomics.load(this.#stats, i)) : 0;
    });
    return {
      ...(native as unknown as Omit<ServerStats, "workerNum">),
      workerNum: this.options.workerNum,
      idleWorkerNum: 0,
      requestCount: this.#requestCount,
      responseCount: this.#responseCount,
      workerRequestCount: this.#requestCount,
      workerResponseCount: this.#responseCount,
      workerDispatchCount: this.#dispatchCount,
      callbackErrorCount: this.#callbackErrors,
    };
  }

  /** With several workers: every worker's slot summed; `worker*` fields are this worker's. */
  #treeStats(region: Region): ServerStats {
    const total: Record<string, number> = {};
    let idle = 0;
    let startTime = Infinity;
    let sessionRound = 0;
    for (let id = 0; id < region.workerNum; id++) {
      const counters = region.counters(id);
      for (const [name, value] of Object.entries(counters)) {
        total[name] = (total[name] ?? 0) + value;
      }
      if (counters.startTime > 0) startTime = Math.min(startTime, counters.startTime);
      if (region.status(id) === WorkerStatus.idle) idle++;
      sessionRound = Math.max(sessionRound, counters.sessionRound);
    }
    const own = this.getWorkerId() >= 0 ? region.counters(this.getWorkerId()) : undefined;
    return {
      ...(total as unknown as ServerStats),
      startTime: startTime === Infinity ? 0 : startTime,
      sessionRound,
      workerNum: region.workerNum,
      idleWorkerNum: idle,
      workerRequestCount: own?.requestCount ?? 0,
      workerResponseCount: own?.responseCount ?? 0,
      workerDispatchCount: own?.workerDispatchCount ?? 0,
    };
  }

  /**
   * Stops the server gracefully: stop accepting and reading, run `workerStop`, write queued
   * output (up to `maxWaitTime`), close every session, run `shutdown`, resolve `start()`.
   * From a worker of a manager it stops the whole tree (the manager is told, as by SIGTERM).
   */
  shutdown(): void {
    if (this.#role.kind === "worker") {
      try {
        Deno.kill(this.#role.managerPid, "SIGTERM");
      } catch (error) {
        this.#log.error(`cannot signal the manager (pid ${this.#role.managerPid})`, error);
      }
      return;
    }
    this.#stop();
  }

  /** Stops this process's part: the manager its workers, a worker itself. */
  #stop(): void {
    if (this.#state === "stopped" || this.#state === "new") return;
    if (this.#manager) {
      if (this.#state === "running") {
        this.#call("beforeShutdown", -1, () => this.#callbacks.beforeShutdown?.(this));
      }
      this.#state = "stopping";
      this.#manager.stop();
      return;
    }
    if (this.#state !== "running") return;
    this.#state = "stopping";
    // beforeShutdown and shutdown belong to the process that called start() first: in a tree,
    // the manager; its workers only stop (workerStop).
    if (this.#role.kind !== "worker") {
      this.#call("beforeShutdown", -1, () => this.#callbacks.beforeShutdown?.(this));
    }
    unwrap(this.#lib.zg_server_shutdown(this.#handle), "shut down");
  }

  // --- the outbound ring ----------------------------------------------------------------

  #push(type: number, sessionId: number, aux: number, bytes: Uint8Array) {
    if (this.#pending.length > 0 || !this.#write(type, sessionId, aux, bytes)) {
      this.#pending.push({ type, sessionId, aux, bytes: bytes.slice() });
      this.#pendingBytes.set(sessionId, (this.#pendingBytes.get(sessionId) ?? 0) + bytes.length);
    }
  }

  /** Writes one record; false when the ring has no room for it. */
  #write(type: number, sessionId: number, aux: number, bytes: Uint8Array): boolean {
    const need = (layout.recordHeaderSize + bytes.length + 15) & ~15;
    const capacity = this.#ringBytes;
    let pos = this.#writePos;
    let index = pos & this.#mask;
    const toEnd = capacity - index;
    const wanted = toEnd >= need ? need : toEnd + need;
    if (capacity - ((pos - this.#outHeadSeen) >>> 0) < wanted) {
      this.#outHeadSeen = Atomics.load(this.#u32, this.#outHead);
      if (capacity - ((pos - this.#outHeadSeen) >>> 0) < wanted) return false;
    }
    if (toEnd < need) {
      this.#header(this.#outBase + index, toEnd - layout.recordHeaderSize, RecordType.pad, 0, 0);
      pos = (pos + toEnd) >>> 0;
      index = 0;
    }
    const at = this.#outBase + index;
    this.#header(at, bytes.length, type, sessionId, aux);
    if (bytes.length > 0) this.#u8.set(bytes, at + layout.recordHeaderSize);
    this.#writePos = (pos + need) >>> 0;
    return true;
  }

  #header(at: number, len: number, type: number, sessionId: number, aux: number) {
    const word = at >>> 2;
    const u32 = this.#u32;
    u32[word] = len;
    u32[word + 1] = type; // flags 0, reactor id 0
    u32[word + 2] = sessionId;
    u32[word + 3] = aux;
  }

  /** Publishes written records; kicks the reactor if it sleeps. */
  #publishOut() {
    const u32 = this.#u32;
    if (this.#writePos === Atomics.load(u32, this.#outTail)) return;
    Atomics.store(u32, this.#outTail, this.#writePos);
    this.#kickIfSet(this.#outParked);
  }

  /**
   * Clears a flag the reactor set (it sleeps, or waits for room) and wakes it; the compare-
   * exchange makes one waker per flag, as `takeFlag` does on the Zig side.
   */
  #kickIfSet(word: number) {
    const u32 = this.#u32;
    if (Atomics.load(u32, word) === 1 && Atomics.compareExchange(u32, word, 1, 0) === 1) {
      this.#lib.zg_server_kick(this.#handle);
    }
  }

  #flushPending() {
    const pending = this.#pending;
    if (pending.length === 0) return;
    let i = 0;
    while (i < pending.length) {
      const p = pending[i];
      if (!this.#write(p.type, p.sessionId, p.aux, p.bytes)) break;
      const left = this.#pendingBytes.get(p.sessionId)! - p.bytes.length;
      if (left === 0) this.#pendingBytes.delete(p.sessionId);
      else this.#pendingBytes.set(p.sessionId, left);
      i++;
    }
    pending.splice(0, i);
    this.#publishOut();
  }
}

function ipv6(bytes: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::").replace(/:{3,}/, "::");
}
