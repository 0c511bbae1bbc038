/**
 * A user process (Swoole's process.cc, `addProcess`): it runs its body, with mailboxes to the
 * rest of the tree (`send`, `close`, `task`, `taskwait`, `sendMessage` work in it); when the
 * body returns (or its Promise settles) the process exits and the manager starts it again.
 * @module
 */

import { Worker } from "./worker.ts";

export class UserProcess extends Worker {
  protected open() {
    this.attachMailOnly();
  }

  protected begin() {
    this.#runBody();
  }

  async #runBody() {
    const ctx = this.ctx;
    const index = ctx.workerId - ctx.options.workerNum - ctx.options.taskWorkerNum;
    const body = ctx.processes[index];
    if (!body) {
      ctx.log.error(`no addProcess body number ${index} in this script; exiting`);
      Deno.exit(1);
    }
    let code = 0;
    try {
      await body(ctx.server);
    } catch (error) {
      ctx.callbacks.failed("addProcess", -1, error);
      code = 1;
    }
    this.drainOutboxes();
    Deno.exit(code);
  }
}
