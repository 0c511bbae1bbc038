/**
 * What `stats()` returns.
 * @module
 */

import { layout, statsFields } from "./_ffi/layout.ts";
import type { ServerContext } from "./context.ts";
import type { PortStats } from "./port.ts";
import type { Region } from "./ipc/region.ts";
import { sumPortCounters } from "./ipc/region.ts";

/**
 * What `stats()` returns: Swoole's counters, in camelCase. The ones a port has too
 * (`PortStats`) are the sums over every port.
 */
export interface ServerStats extends PortStats {
  /** Unix time in seconds when the server started. */
  startTime: number;
  /** The last session id handed out. */
  sessionRound: number;
  /** Bytes queued in the core for every session, not yet written. */
  sendQueuedBytes: number;
  /** Published messages a subscriber's full output buffer did not take. */
  sendDroppedCount: number;
  /** Event workers. */
  workerNum: number;
  /** Event workers not handling a batch now. */
  idleWorkerNum: number;
  /** Messages the tree's workers received. */
  requestCount: number;
  /** Sends the tree's workers made. */
  responseCount: number;
  /** Messages this worker received. */
  workerRequestCount: number;
  /** Sends this worker made. */
  workerResponseCount: number;
  /** Records this worker took from its reactors. */
  workerDispatchCount: number;
  /** HTTP: this worker's responses by status class (the reactor's counts are `http1xxCount` …). */
  workerHttp1xxCount: number;
  /** HTTP: this worker's 2xx responses. */
  workerHttp2xxCount: number;
  /** HTTP: this worker's 3xx responses. */
  workerHttp3xxCount: number;
  /** HTTP: this worker's 4xx responses. */
  workerHttp4xxCount: number;
  /** HTTP: this worker's 5xx responses. */
  workerHttp5xxCount: number;
  /** Exceptions thrown (or promises rejected) by callbacks, each logged. */
  callbackErrorCount: number;
  /** `discardTimeoutRequest`: data of closed sessions dropped, not delivered. */
  discardCount: number;
  /** Task workers. */
  taskWorkerNum: number;
  /** Task workers not running a task now. */
  taskIdleWorkerNum: number;
  /** Tasks task workers hold now (taken, not finished). */
  taskingNum: number;
  /** Tasks task workers have taken since start. */
  taskCount: number;
  /** User processes (`addProcess`). */
  userWorkerNum: number;
  /** Event workers handling a batch of events right now. */
  concurrency: number;
  /** 1 while this worker handles a batch of events (so within callbacks), else 0. */
  workerConcurrency: number;
  /** Messages sent between processes of the tree (tasks, results, pipe messages). */
  pipePacketMsgId: number;
  /** Lowest and highest fd of an open session (0 when none). */
  minFd: number;
  /** (See `minFd`.) */
  maxFd: number;
}

/** What a process counts of its own work; one object, shared by the parts that count. */
export class Counters {
  /** Events handed to a `receive` or `packet` callback; tasks a task worker took. */
  request = 0;
  /** Sends (and datagrams, files) queued. */
  response = 0;
  /** Records dispatched. */
  dispatch = 0;
  /** Exceptions thrown (or promises rejected) by callbacks. */
  callbackErrors = 0;
  /** `discardTimeoutRequest`: data of closed sessions dropped. */
  discards = 0;
  /** HTTP responses ended, by status class (index 1–5). */
  http = [0, 0, 0, 0, 0, 0];

  /** A response of `status` ended. */
  httpResponse(status: number) {
    const cls = Math.floor(status / 100);
    if (cls >= 1 && cls <= 5) this.http[cls]++;
  }
}

/** The `workerHttp*Count` fields of `own`. */
function workerHttp(own: Counters) {
  return {
    workerHttp1xxCount: own.http[1],
    workerHttp2xxCount: own.http[2],
    workerHttp3xxCount: own.http[3],
    workerHttp4xxCount: own.http[4],
    workerHttp5xxCount: own.http[5],
  };
}

/**
 * A one-worker server's: its reactor's counters (`native`, the channel's `abi.Stats`, in
 * `statsFields` order) and its own; `fds` the lowest and highest session fd.
 */
export function singleStats(
  native: BigUint64Array | undefined,
  own: Counters,
  inBatch: boolean,
  workerNum: number,
  fds: Int32Array,
): ServerStats {
  const counters: Record<string, number> = {};
  statsFields.forEach((name, i) => {
    counters[name] = native ? Number(Atomics.load(native, i)) : 0;
  });
  return {
    ...(counters as unknown as Omit<ServerStats, "workerNum">),
    workerNum,
    idleWorkerNum: inBatch ? 0 : 1,
    requestCount: own.request,
    responseCount: own.response,
    workerRequestCount: own.request,
    workerResponseCount: own.response,
    workerDispatchCount: own.dispatch,
    ...workerHttp(own),
    callbackErrorCount: own.callbackErrors,
    discardCount: own.discards,
    taskWorkerNum: 0,
    taskIdleWorkerNum: 0,
    taskingNum: 0,
    taskCount: 0,
    userWorkerNum: 0,
    concurrency: inBatch ? 1 : 0,
    workerConcurrency: inBatch ? 1 : 0,
    pipePacketMsgId: 0,
    minFd: fds[0],
    maxFd: fds[1],
  };
}

/**
 * A tree's: every worker's and reactor thread's counters summed (the region's); the `worker*`
 * fields are those of the process that asks (`workerId`, -1 for the master), since it started
 * (Swoole's, restarting with every new worker).
 */
export function treeStats(
  region: Region,
  workerId: number,
  own: Counters,
  inBatch: boolean,
): ServerStats {
  const mine = workerId >= 0 ? region.counters(workerId) : undefined;
  const total = region.treeStats() as unknown as ServerStats;
  if (mine && workerId < region.workerNum) {
    // This worker's counts of the batch in hand are not in the region yet: add them.
    const pending = region.unpublished(workerId, [
      own.request,
      own.response,
      own.dispatch,
      own.callbackErrors,
      own.discards,
    ]);
    total.requestCount += pending.requestCount;
    total.responseCount += pending.responseCount;
    total.callbackErrorCount += pending.callbackErrorCount;
    total.discardCount += pending.discardCount;
  }
  return {
    ...total,
    workerRequestCount: mine ? own.request : 0,
    workerResponseCount: mine ? own.response : 0,
    workerDispatchCount: mine?.workerDispatchCount ?? 0,
    ...workerHttp(own),
    workerConcurrency: inBatch ? 1 : 0,
  };
}

/** `stats()`: the whole server's counters, as this process sees them. */
export function serverStats(ctx: ServerContext): ServerStats {
  if (ctx.finalStats) return { ...ctx.finalStats };
  if (ctx.region) return treeStats(ctx.region, ctx.workerId, ctx.counters, ctx.inBatch);
  const fds = new Int32Array(2);
  if (ctx.handle !== null) ctx.lib.zg_fd_range(ctx.handle, null, fds);
  return singleStats(ctx.channelStats, ctx.counters, ctx.inBatch, ctx.options.workerNum, fds);
}

/** Listener `index`'s counters over the whole server (0 is the server's own socket). */
export function portStats(ctx: ServerContext, index: number): PortStats {
  if (ctx.finalPortStats) return { ...ctx.finalPortStats[index] };
  if (ctx.region && ctx.canLookUp()) {
    return ctx.region.portCounters(index) as unknown as PortStats;
  }
  const u64 = ctx.channelHeader ?? new BigUint64Array(layout.channelHeaderSize / 8);
  return sumPortCounters(u64, [layout.channelStats], index) as unknown as PortStats;
}

/** The server stopped: from now on `stats()` and the ports' reports return these. */
export function keepFinalStats(ctx: ServerContext) {
  ctx.finalStats = serverStats(ctx);
  ctx.finalPortStats = [0, ...ctx.ports.map((p) => p.index)].map((i) => portStats(ctx, i));
}
