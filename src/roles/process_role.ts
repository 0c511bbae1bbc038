/**
 * The role of this process, which the `Server` delegates to: the master of a tree (master.ts,
 * with its manager), or a worker — an event worker (a one-worker server is one too), a task
 * worker, a user process — each in a file of its own.
 * @module
 */

import type { ServerContext } from "../context.ts";
import type { Operations } from "../operations/operations.ts";
import type { Sessions } from "../sessions.ts";
import type { TaskSender } from "../tasks.ts";
import { EventWorker } from "./event_worker.ts";
import { Master } from "./master.ts";
import { TaskWorker } from "./task_worker.ts";
import { UserProcess } from "./user_process.ts";

export interface ProcessRole {
  /** Runs this process's part of the server; resolves once it has stopped. */
  start(): Promise<void>;
  /** This process's part of a stop: the master stops its tree, a worker itself. */
  stop(): void;
  /** The whole server stops (from a worker of a tree: the master is asked to). */
  shutdown(): void;
  /** Swoole's reload (false where there are no workers to replace). */
  reload(onlyTask: boolean): boolean;
  /** Swoole's `stop(workerId)`: that worker leaves and is replaced. */
  restart(workerId: number): boolean;
  /** A worker told to go, draining (Swoole's status 3). */
  readonly exiting: boolean;
}

/** The role for how this process was started (`ctx.role`). */
export function roleFor(
  ctx: ServerContext,
  ops: Operations,
  sender: TaskSender,
  sessions: Sessions,
): ProcessRole {
  const role = ctx.role;
  if (role.kind === "manager") return new Master(ctx, ops, sender);
  if (role.kind === "worker" && role.workerType === "task") return new TaskWorker(ctx, ops, sender);
  if (role.kind === "worker" && role.workerType === "process") {
    return new UserProcess(ctx, ops, sender);
  }
  return new EventWorker(ctx, ops, sender, sessions);
}
