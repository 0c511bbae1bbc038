/**
 * What every part of one process's server shares: the options, the log, the callbacks and
 * counters, and the state the role of the process (src/roles/) sets up — its rings, its
 * mailboxes, the tree's region — that the connection API, tasks and stats work through.
 * @module
 */

import type { Library } from "./_ffi/library.ts";
import type { Lane } from "./ipc/lane.ts";
import type { Mailbox } from "./ipc/mailbox.ts";
import type { Region } from "./ipc/region.ts";
import type { Callbacks } from "./callbacks.ts";
import type { Logger } from "./log.ts";
import type { ResolvedOptions } from "./options.ts";
import type { Port, PortStats } from "./port.ts";
import type { Role } from "./roles/role.ts";
import type { Server } from "./server.ts";
import type { Counters, ServerStats } from "./stats.ts";
import type { TaskRunner } from "./tasks.ts";
import type { HttpLayer } from "./http/http_layer.ts";
import type { Sessions } from "./sessions.ts";
import type { PubSub } from "./websocket/pubsub.ts";
import { Arena } from "./arena.ts";
import { workerIdOfRole } from "./roles/role.ts";

export type State = "new" | "starting" | "running" | "stopping" | "stopped";

/**
 * Each server's context, by the server: for what a protocol layer builds from a server alone
 * (`HttpResponse.create(server, fd)`).
 */
export const contexts: WeakMap<object, ServerContext> = new WeakMap();

export class ServerContext {
  readonly server: Server;
  /** The options after defaults. */
  /** (Replaced only by `Server.set()`, before start.) */
  options: Readonly<ResolvedOptions>;
  readonly log: Logger;
  /** The user's callbacks, and how they are called. */
  readonly callbacks: Callbacks;
  /** What this process counts of its own work (requests, responses, errors …). */
  readonly counters: Counters;
  /** `listen()` ports, in order (listener 1, 2, … of a reactor). */
  readonly ports: Port[] = [];
  /** `addProcess` bodies, in order (the same in every process of the script). */
  readonly processes: ((server: Server) => unknown)[] = [];
  /** How this process was started: the whole server, a tree's master, or one of its workers. */
  role: Role;
  /** This process's worker id: 0 in a one-worker server, -1 in the master. */
  workerId: number;
  state: State = "new";
  /** The code of the last failed call (`ErrorCode`). */
  lastError = 0;
  lib!: Library;
  /** The reactor of a one-worker server or a BASE worker; null otherwise. */
  handle: Deno.PointerValue = null;
  /** The server's bound port, once known. */
  port = 0;
  /** The tree's shared region (the master's and every worker's); none in a one-worker server. */
  region: Region | undefined;
  /**
   * A one-worker server's place in a balancer's rotation (src/operations/rotation.ts); a tree's
   * is in its region.
   */
  rotation = 0;
  /** In a tree: the mailboxes to every other process. */
  mailbox: Mailbox | undefined;
  /** One per reactor: BASE mode this worker's own, PROCESS mode each of the master's. */
  lanes: Lane[] = [];
  /**
   * This process has no reactor of its own: a PROCESS-mode event worker (its lanes reach the
   * master's reactor threads, where its sessions live), a task worker, a user process.
   */
  noReactor = false;
  /** A worker that is leaving takes no more records (they wait for its successor). */
  leaving = false;
  /** Within a batch, what is sent is published at its end; outside one, at once. */
  inBatch = false;
  /** The connection API (src/sessions.ts). */
  sessions!: Sessions;
  /** Settles as `start()` does: the server stopped (`Server.finished`). */
  finished: PromiseWithResolvers<void> = Promise.withResolvers<void>();
  /** Where received bytes are copied to outlive their ring record (src/arena.ts). */
  arena: Arena = new Arena();
  /** A WebSocket server's publish/subscribe (src/websocket/pubsub.ts). */
  pubsub: PubSub | undefined;
  /**
   * BASE mode: a worker that leaves while the tree runs hands its WebSockets to its successor
   * (core/src/carry.zig). Off for `serve()`, whose sockets are JavaScript objects of the
   * process that leaves.
   */
  carryWebSockets = true;
  /** An event worker with an HTTP socket: its requests and responses (src/http/). */
  http: HttpLayer | undefined;
  /** A task worker's: it runs the `task` handler (`finish()` works in it). */
  taskRunner: TaskRunner | undefined;
  /** A one-worker server or BASE worker: its reactor's counters and channel header. */
  channelStats: BigUint64Array | undefined;
  channelHeader: BigUint64Array | undefined;
  /**
   * A one-worker server's `abi.Published` (its counters for `ziggurat stats` in another
   * process), written once per batch; undefined in a tree (the region's slot has them).
   */
  published: Float64Array | undefined;
  /** The counters when the server stopped; `stats()` returns them from then on. */
  finalStats: ServerStats | undefined;
  finalPortStats: PortStats[] | undefined;

  constructor(
    server: Server,
    options: Readonly<ResolvedOptions>,
    role: Role,
    log: Logger,
    callbacks: Callbacks,
    counters: Counters,
  ) {
    this.server = server;
    this.options = options;
    this.role = role;
    this.workerId = workerIdOfRole(role);
    this.log = log;
    this.callbacks = callbacks;
    this.counters = counters;
    // (A start that fails rejects `start()` for its caller; `finished` is no unhandled one.)
    this.finished.promise.catch(() => {});
  }

  /** Running or stopping: it may still send. */
  canSend(): boolean {
    return this.state === "running" || this.state === "stopping";
  }

  /** Whether this process serves sessions now (running, or stopping but not yet stopped). */
  live(): boolean {
    return (this.handle !== null || this.noReactor || this.mailbox !== undefined) &&
      this.canSend();
  }

  /** Whether sessions can be looked up here: a live worker, or a running master. */
  canLookUp(): boolean {
    return this.live() ||
      (this.region !== undefined && this.role.kind === "manager" && this.canSend());
  }

  /** What was queued on `lane` goes out: at the end of the batch in hand, or now outside one. */
  sentOn(lane: Lane) {
    if (!this.inBatch) lane.publishOut();
  }

  /** What was mailed goes out: at the end of the batch in hand, or now outside one. */
  mailed() {
    if (!this.inBatch) this.mailbox?.publish();
  }
}
