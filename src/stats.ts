/**
 * What `stats()` returns.
 * @module
 */

import type { PortStats } from "./port.ts";

/**
 * What `stats()` returns: Swoole's counters, in camelCase. The ones a port has too
 * (`PortStats`) are the sums over every port.
 */
export interface ServerStats extends PortStats {
  startTime: number;
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
  /** `discardTimeoutRequest`: data of closed sessions dropped, not delivered. */
  discardCount: number;
  taskWorkerNum: number;
  taskIdleWorkerNum: number;
  /** Tasks task workers hold now (taken, not finished). */
  taskingNum: number;
  /** Tasks task workers have taken since start. */
  taskCount: number;
  userWorkerNum: number;
  /** Event workers handling a batch of events right now. */
  concurrency: number;
  /** 1 while this worker handles a batch of events (so within callbacks), else 0. */
  workerConcurrency: number;
  /** Messages sent between processes of the tree (tasks, results, pipe messages). */
  pipePacketMsgId: number;
  /** Lowest and highest fd of an open session (0 when none). */
  minFd: number;
  maxFd: number;
}
