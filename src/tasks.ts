/**
 * Tasks, both ends. `TaskSender`: in event workers, user processes and the master, sending a
 * task to a task worker and settling its `finish` callback or `taskwait` Promise when the
 * result comes back. `TaskRunner`: in a task worker, running the `task` handler and sending the
 * result back, exactly `taskMaxRequest` tasks when that is set.
 * @module
 */

import { layout, MailFlag, RecordType } from "./_ffi/layout.ts";
import { decode, encode } from "./ipc/codec.ts";
import { ErrorCode } from "./errors.ts";
import { WorkerStatus } from "./ipc/region.ts";
import type { Region } from "./ipc/region.ts";
import type { Server } from "./server.ts";
import type { ServerContext } from "./context.ts";

/** Options of `taskwait` and `taskWaitMulti`. */
export interface TaskWaitOptions {
  /** Seconds to wait; the Promise rejects (`taskwait`) or leaves the slot empty after. Default 0.5. */
  timeout?: number;
  /** The task worker to run it (its worker id); default: an idle one. */
  dstWorkerId?: number;
}

/** What the two ends use of the server they belong to. */

/** A task this process sent and waits for (a `finish` callback, or a `taskwait`). */
interface TaskWait {
  /** A `taskwait` that gave up: a result that still comes is dropped. */
  timedOut?: boolean;
  onFinish?: (server: Server, taskId: number, result: unknown) => void;
  resolve?: (result: unknown) => void;
  reject?: (error: Error) => void;
}

const empty = new Uint8Array(0);

/** A `task` record's aux bit: its sender awaits the result (`taskwait`, `taskWaitMulti`). */
const taskAwaited = 1;

/** A worker id as callbacks report it: the master (the last endpoint) is -1. */
export function workerIdOf(region: Region, endpoint: number): number {
  return endpoint === region.endpointCount - 1 ? -1 : endpoint;
}

export class TaskSender {
  #ctx: ServerContext;
  #waiting = new Map<number, TaskWait>();
  #seq = 0;
  #nextTaskWorker = 0;
  #noIdleWarnedAt = -Infinity;
  #noIdleTimes = 0;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  /** `task()`: the task id, or false when this process cannot send now. */
  send(
    data: unknown,
    dstWorkerId: number,
    onFinish?: (server: Server, taskId: number, result: unknown) => void,
  ): number | false {
    return this.#send(data, dstWorkerId, { onFinish });
  }

  /** `taskwait()`. */
  wait(data: unknown, options: TaskWaitOptions): Promise<unknown> {
    const { timeout = 0.5, dstWorkerId = -1 } = options;
    if (!(timeout > 0)) throw new RangeError(`taskwait() takes a timeout > 0, got ${timeout}`);
    return new Promise((resolve, reject) => {
      const clock: { timer?: ReturnType<typeof setTimeout> } = {};
      const id = this.#send(data, dstWorkerId, {
        resolve: (value) => {
          clearTimeout(clock.timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(clock.timer);
          reject(error);
        },
      });
      if (id === false) {
        reject(
          new Deno.errors.BadResource(
            `taskwait(): the task could not be sent (${ErrorCode.serverNotRunning})`,
          ),
        );
        return;
      }
      clock.timer = setTimeout(() => {
        if (!this.#waiting.has(id)) return;
        this.#waiting.set(id, { timedOut: true }); // its late result is dropped with a log line
        reject(new Deno.errors.TimedOut(`taskwait(): task ${id} had no result after ${timeout} s`));
      }, timeout * 1000);
    });
  }

  /** `taskWaitMulti()`. */
  async waitMulti(tasks: unknown[], options: TaskWaitOptions): Promise<unknown[]> {
    const results: unknown[] = new Array(tasks.length);
    await Promise.all(tasks.map(async (data, i) => {
      try {
        results[i] = await this.wait(data, options);
      } catch (error) {
        this.#ctx.log.info(`taskWaitMulti: task ${i}: ${(error as Error).message}`);
      }
    }));
    return results;
  }

  #send(data: unknown, dstWorkerId: number, wait: TaskWait): number | false {
    const ctx = this.#ctx;
    const o = ctx.options;
    if (o.taskWorkerNum === 0) throw new TypeError("task() needs taskWorkerNum > 0");
    if (ctx.server.taskworker) throw new TypeError("task() cannot be called in a task worker");
    const mailbox = ctx.mailbox;
    if (!mailbox || !ctx.canSend()) {
      ctx.lastError = ErrorCode.serverNotRunning;
      return false;
    }
    if (!Number.isInteger(dstWorkerId) || dstWorkerId < -1 || dstWorkerId >= o.taskWorkerNum) {
      throw new RangeError(
        `dstWorkerId must be -1 or a task worker from 0 to ${
          o.taskWorkerNum - 1
        }, got ${dstWorkerId}`,
      );
    }
    const dst = o.workerNum + (dstWorkerId >= 0 ? dstWorkerId : this.#idleTaskWorker());
    const payload = encode(data);
    const id = this.#nextTaskId();
    this.#waiting.set(id, wait);
    // (A taskwait's caller gets a failure as its rejection: the task worker need not log it.)
    mailbox.send(dst, RecordType.task, id, wait.reject ? taskAwaited : 0, payload);
    ctx.mailed();
    return id;
  }

  /**
   * A task id unique to this sender across its incarnations: kept in its slot of the region, so
   * a result meant for a predecessor that died never settles a task of its successor.
   */
  #nextTaskId(): number {
    const self = this.#ctx.workerId;
    const region = this.#ctx.region;
    if (self >= 0 && region) return region.nextTaskId(self);
    this.#seq = this.#seq >= 0x7fff_ffff ? 1 : this.#seq + 1;
    return this.#seq;
  }

  /** A task worker that is idle, starting after the last one picked; else the next one. */
  #idleTaskWorker(): number {
    const o = this.#ctx.options;
    const region = this.#ctx.region!;
    for (let k = 0; k < o.taskWorkerNum; k++) {
      const t = (this.#nextTaskWorker + k) % o.taskWorkerNum;
      if (
        region.status(o.workerNum + t) === WorkerStatus.idle &&
        region.tasking(o.workerNum + t) === 0
      ) {
        this.#nextTaskWorker = t + 1;
        return t;
      }
    }
    const t = this.#nextTaskWorker % o.taskWorkerNum;
    this.#nextTaskWorker = t + 1;
    // Swoole's warning, at most once a second: the task waits behind another. (Not while task
    // workers are still starting or being replaced: they are not busy.)
    const running = Array.from(
      { length: o.taskWorkerNum },
      (_, k) => region.status(o.workerNum + k),
    ).every((status) => status === WorkerStatus.busy || status === WorkerStatus.idle);
    if (running) this.#noIdleTimes++;
    const now = performance.now();
    if (running && now - this.#noIdleWarnedAt >= 1000) {
      const more = this.#noIdleTimes > 1
        ? ` (${this.#noIdleTimes} times since the last warning)`
        : "";
      this.#ctx.log.warning(
        `No idle task worker is available; the task waits in task worker ${t}'s queue${more}`,
      );
      this.#noIdleWarnedAt = now;
      this.#noIdleTimes = 0;
    }
    return t;
  }

  /** A `finish` record: the result of one of this process's tasks. */
  resultArrived(taskId: number, flags: number, payload: Uint8Array) {
    if (flags & MailFlag.noResult) {
      // The handler gave no result: a taskwait gets undefined; no finish callback runs.
      const wait = this.#waiting.get(taskId);
      this.#waiting.delete(taskId);
      wait?.resolve?.(undefined);
      return;
    }
    let value: unknown;
    let failed = (flags & MailFlag.error) !== 0;
    try {
      value = decode(payload);
    } catch (error) {
      value = error;
      failed = true;
    }
    if (failed && !(value instanceof Error)) {
      const info = value as { name?: string; message?: string; stack?: string };
      const error = new Error(info.message ?? String(value));
      error.name = info.name ?? "Error";
      if (info.stack) error.stack = info.stack;
      value = error;
    }
    this.settle(taskId, value, failed);
  }

  /** Settles a task of this process: its `taskwait`, `onFinish` or the `finish` callback. */
  settle(taskId: number, value: unknown, failed: boolean) {
    const ctx = this.#ctx;
    const wait = this.#waiting.get(taskId);
    this.#waiting.delete(taskId);
    if (!wait) {
      ctx.log.info(`task ${taskId}: a result for no waiting task (already settled); dropped`);
      return;
    }
    if (wait.resolve) {
      if (failed) wait.reject!(value as Error);
      else wait.resolve(value);
      return;
    }
    if (wait.timedOut) {
      ctx.log.info(`task ${taskId}: its result came after taskwait() gave up; dropped`);
      return;
    }
    const onFinish = wait.onFinish ?? ctx.callbacks.events.finish;
    if (onFinish) ctx.callbacks.call("finish", -1, () => onFinish(ctx.server, taskId, value));
  }

  /** Task `taskId` of this process was lost with the task worker that held it. */
  lost(taskId: number, taskWorkerId: number) {
    this.settle(
      taskId,
      new Error(`task ${taskId} was lost: task worker ${taskWorkerId} died while running it`),
      true,
    );
  }

  /** The manager: task worker `taskWorkerId` died holding `taskId` of endpoint `src`. */
  reportLost(src: number, taskId: number, taskWorkerId: number) {
    const mailbox = this.#ctx.mailbox;
    if (!mailbox) return;
    if (src === mailbox.self) return this.lost(taskId, taskWorkerId);
    mailbox.send(src, RecordType.taskLost, taskId, taskWorkerId, empty);
    mailbox.publish();
  }
}

/** The task in a handler's hands. */
interface Current {
  peer: number;
  taskId: number;
  done: boolean;
  /** Its sender awaits the result: a failure reaches it as a rejection. */
  awaited: boolean;
}

export class TaskRunner {
  #ctx: ServerContext;
  /** Tasks taken and not finished (Swoole's `tasking_num`). */
  tasking = 0;
  #taken = 0;
  #current: Current | undefined;
  #untrackedWarned = false;
  #idle: () => void;
  #retire: () => boolean;

  /**
   * `idle`: runs after each task is done (a drain waits for the last one). `retire`: the
   * worker leaves, once `taskMaxRequest` tasks are done (false: it is leaving already).
   */
  constructor(ctx: ServerContext, idle: () => void, retire: () => boolean) {
    this.#ctx = ctx;
    this.#idle = idle;
    this.#retire = retire;
  }

  /**
   * `Mailbox.admit`: taskMaxRequest means that many tasks and no more, and a leaving worker
   * takes none. The ones it refuses stay in its mailbox for its successor (none is lost, none
   * runs twice).
   */
  admit = (type: number): boolean => {
    if (type !== RecordType.task) return true;
    if (this.#ctx.leaving) return false;
    const max = this.#ctx.options.taskMaxRequest;
    return max === 0 || this.#taken + this.#ctx.mailbox!.arriving(RecordType.task) < max;
  };

  /** A `task` record from endpoint `peer` (`aux`: its `taskAwaited` bit): runs the handler. */
  run(peer: number, taskId: number, payload: Uint8Array, aux = 0) {
    const ctx = this.#ctx;
    const self = ctx.workerId;
    const region = ctx.region!;
    const current: Current = { peer, taskId, done: false, awaited: (aux & taskAwaited) !== 0 };
    let data: unknown;
    try {
      data = decode(payload);
    } catch (error) {
      this.#sendResult(current, error, true);
      return;
    }
    if (!region.trackTask(self, peer, taskId) && !this.#untrackedWarned) {
      this.#untrackedWarned = true;
      ctx.log.warning(
        `more than ${layout.runningMax} tasks in hand at once: if this task worker dies, the senders of the others only hear by their timeouts`,
      );
    }
    this.tasking++;
    this.#taken++;
    ctx.counters.request++;
    region.setTasking(self, this.tasking);
    this.#current = current;
    let result: unknown;
    try {
      result = ctx.callbacks.events.task!(ctx.server, taskId, workerIdOf(region, peer), data);
    } catch (error) {
      this.#done(current, error, true);
      return;
    } finally {
      this.#current = undefined;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => this.#done(current, value, false),
        (error) => this.#done(current, error, true),
      );
    } else {
      this.#done(current, result, false);
    }
  }

  /** `finish()`: the result of the task whose handler runs now. */
  finish(result: unknown) {
    const current = this.#current;
    if (!current) {
      throw new Deno.errors.BadResource(
        "finish() works only while a task handler runs; an async handler returns its result",
      );
    }
    this.#sendResult(current, result, false);
  }

  /** A task's handler is done: its result (unless sent already), then the bookkeeping. */
  #done(current: Current, value: unknown, failed: boolean) {
    const ctx = this.#ctx;
    if (failed) {
      // Counted either way; logged at error level only when no caller will see it.
      if (current.awaited) ctx.callbacks.failedQuietly("task", value);
      else ctx.callbacks.failed("task", -1, value);
    }
    this.#sendResult(current, value, failed);
    // The result is visible before the task stops being "in hand": a death in between makes the
    // master report a task that was done, never forget one that was not.
    ctx.mailbox!.lanes[current.peer]?.publishOut();
    const self = ctx.workerId;
    const region = ctx.region!;
    region.untrackTask(self, current.peer, current.taskId);
    this.tasking = Math.max(0, this.tasking - 1);
    region.setTasking(self, this.tasking);
    this.#idle();
    const max = ctx.options.taskMaxRequest;
    if (max > 0 && this.#taken >= max && this.tasking === 0 && this.#retire()) {
      ctx.log.info(`taskMaxRequest (${max}) reached; this task worker exits and is replaced`);
    }
  }

  /**
   * Sends a task's result (once): a value, an `Error` (`failed`), or, when the handler gave
   * none, an empty answer that only lets the sender forget the task.
   */
  #sendResult(current: Current, value: unknown, failed: boolean) {
    if (current.done) return;
    current.done = true;
    let flags = 0;
    let payload: Uint8Array = empty;
    if (failed) {
      const error = value instanceof Error ? value : new Error(String(value));
      flags = MailFlag.error;
      payload = encode({ name: error.name, message: error.message, stack: error.stack });
    } else if (value !== undefined) {
      try {
        payload = encode(value);
      } catch (error) {
        flags = MailFlag.error;
        payload = encode({
          name: "DataCloneError",
          message: `the task's result cannot be sent: ${(error as Error).message}`,
        });
      }
    } else {
      flags = MailFlag.noResult;
    }
    this.#ctx.mailbox!.send(current.peer, RecordType.finish, current.taskId, 0, payload, flags);
  }
}
