/**
 * Mail between the processes of a tree: `sendMessage` and the `pipeMessage` callback, and the
 * one path from a mailbox record to what handles it (tasks and their results, a worker's word
 * to the master, sends and closes forwarded to a session's owner).
 * @module
 */

import { ForwardHttp, ForwardSend, RecordType, SendFlag } from "./_ffi/layout.ts";
import { decode, encode } from "./ipc/codec.ts";
import type { MailHandler } from "./ipc/mailbox.ts";
import type { ServerContext } from "./context.ts";
import { ErrorCode } from "./errors.ts";
import type { TaskRunner, TaskSender } from "./tasks.ts";
import { workerIdOf } from "./tasks.ts";

/** What a `control` mail asks of the master. */
export const Control = { shutdown: 1, reload: 2, reloadTasks: 3 } as const;

/** The parts of a process that mail reaches. */
export interface MailTargets {
  sender: TaskSender;
  /** A task worker's. */
  runner?: TaskRunner;
  /** The master: a worker asks it to shut down or reload (`Control`). */
  control?(what: number): void;
}

/**
 * Sends `message` to process `dstWorkerId` of the tree (not this one): an event worker, a task
 * worker, or a user process (their ids come after the task workers').
 */
export function sendMessage(ctx: ServerContext, message: unknown, dstWorkerId: number): boolean {
  const o = ctx.options;
  // Event workers, task workers, then user processes (`addProcess`), as in Swoole.
  const userProcesses = ctx.region?.userProcessNum ?? ctx.processes.length;
  const last = o.workerNum + o.taskWorkerNum + userProcesses - 1;
  if (!Number.isInteger(dstWorkerId) || dstWorkerId < 0 || dstWorkerId > last) {
    throw new RangeError(
      `sendMessage() takes a worker id from 0 to ${last} (event workers, task workers, user processes), got ${dstWorkerId}`,
    );
  }
  if (!ctx.mailbox || dstWorkerId === ctx.mailbox.self) {
    ctx.lastError = ErrorCode.invalidParams;
    return false;
  }
  ctx.mailbox.send(dstWorkerId, RecordType.pipeMessage, 0, 0, encode(message));
  ctx.mailed();
  return true;
}

/** The handler of every whole mailbox message of this process. */
export function mailHandler(ctx: ServerContext, targets: MailTargets): MailHandler {
  return (peer, type, flags, id, aux, payload) => {
    switch (type) {
      case RecordType.task:
        targets.runner?.run(peer, id, payload, aux);
        return;
      case RecordType.finish:
        targets.sender.resultArrived(id, flags, payload);
        return;
      case RecordType.control:
        targets.control?.(aux);
        return;
      case RecordType.taskLost:
        targets.sender.lost(id, aux);
        return;
      case RecordType.pipeMessage:
        pipeMessage(ctx, workerIdOf(ctx.region!, peer), payload);
        return;
      case RecordType.forwardSend: {
        if (aux & ForwardHttp.part) {
          const last = (aux & ForwardHttp.last) !== 0;
          ctx.http?.writeDetached(id, payload, last, (aux & ForwardHttp.close) !== 0, aux & 0xffff);
          return;
        }
        // (`ForwardSend`: the unit its bytes are cut in, and a WebSocket message going on.)
        const more = aux & ForwardSend.wsMore ? SendFlag.wsMore : 0;
        if (!ctx.sessions.send(id, payload, more, 0, aux & ForwardSend.unit)) {
          ctx.log.debug(`a send forwarded to session ${id} failed: ${ctx.lastError}`);
        }
        return;
      }
      case RecordType.forwardClose:
        ctx.server.close(id, aux === 1);
        return;
      case RecordType.forwardSubscribe:
      case RecordType.forwardUnsubscribe:
        ctx.pubsub?.queueSubscription(id, payload, type === RecordType.forwardSubscribe);
        return;
      case RecordType.forwardPublish:
        ctx.pubsub?.queuePublish(payload);
        return;
      default:
        ctx.log.error(`unexpected mailbox record type ${type} from endpoint ${peer}`);
    }
  };
}

/** A pipe message from worker `from` reaches the `pipeMessage` callback. */
function pipeMessage(ctx: ServerContext, from: number, payload: Uint8Array) {
  let message: unknown;
  try {
    message = decode(payload);
  } catch (error) {
    ctx.log.error(`a pipe message from worker ${from} cannot be decoded; dropped`, error);
    return;
  }
  const { callbacks } = ctx;
  callbacks.call(
    "pipeMessage",
    -1,
    () => callbacks.events.pipeMessage?.(ctx.server, from, message),
  );
}
