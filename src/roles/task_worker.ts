/**
 * A task worker (Swoole's task_worker.cc): it has mailboxes only. Each `task` mail runs the
 * `task` handler (`TaskRunner`), whose result goes back to the sender; with `taskMaxRequest`
 * it takes exactly that many tasks and then leaves, the rest waiting in its mailbox for its
 * successor.
 * @module
 */

import type { ServerContext } from "../context.ts";
import type { Operations } from "../operations/operations.ts";
import { TaskRunner } from "../tasks.ts";
import type { TaskSender } from "../tasks.ts";
import { Worker } from "./worker.ts";

export class TaskWorker extends Worker {
  constructor(ctx: ServerContext, ops: Operations, sender: TaskSender) {
    super(ctx, ops, sender);
    const runner = new TaskRunner(ctx, () => this.exit.settled(), () => {
      // After the batch in hand: every task of it gets its answer first.
      if (ctx.state !== "running") return false;
      ctx.state = "stopping";
      queueMicrotask(() => this.leave());
      return true;
    });
    this.runner = runner;
    ctx.taskRunner = runner;
  }

  protected open() {
    this.attachMailOnly();
    this.ctx.mailbox!.admit = this.runner!.admit;
  }

  protected begin() {
    const { callbacks, server, workerId } = this.ctx;
    callbacks.call("workerStart", -1, () => callbacks.events.workerStart?.(server, workerId));
  }
}
