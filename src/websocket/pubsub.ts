/**
 * Publish/subscribe for a WebSocket server, from any process of the tree. Topics and their
 * subscribers live in the reactors, where the sockets are (core/src/pubsub.zig): a
 * subscription goes to its connection's reactor, and a publish, its frame built once here,
 * reaches each reactor once — on this process's own lanes, or through one mailbox crossing per
 * event worker (BASE) or to one worker that has lanes to every reactor thread (PROCESS).
 *
 * `publish` answers with the topic's subscribers in the tree's topic counts
 * (core/src/topic_counts.zig): the process that puts a subscription into a reactor's ring
 * counts it then, so a subscribe followed by a publish in the same callback counts it (unless
 * the ring was full), and the reactor takes back what it could not apply.
 * @module
 */

import { PublishFlag, RecordType, Status } from "../_ffi/layout.ts";
import type { ServerContext } from "../context.ts";
import { ErrorCode } from "../errors.ts";
import type { Lane } from "../ipc/lane.ts";

/** The longest topic name in bytes (`pubsub.max_topic_bytes`). */
export const maxTopicBytes = 1024;
/** The largest frame one publish carries (`pubsub.max_publish_bytes`). */
export const maxPublishBytes = 64 * 1024 * 1024;

const encoder = new TextEncoder();

/** A topic's UTF-8 bytes, checked. */
export function topicBytes(topic: string): Uint8Array {
  if (typeof topic !== "string") {
    throw new TypeError(`A topic is a string, got ${typeof topic}`);
  }
  const bytes = encoder.encode(topic);
  if (bytes.length === 0 || bytes.length > maxTopicBytes) {
    throw new RangeError(`A topic has 1 to ${maxTopicBytes} bytes, got ${bytes.length}`);
  }
  return bytes;
}

export class PubSub {
  #ctx: ServerContext;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  /** `subscribe` (`on`) or `unsubscribe` of session `fd` (an open WebSocket) to `topic`. */
  subscription(fd: number, topic: Uint8Array, on: boolean): boolean {
    const ctx = this.#ctx;
    if (!ctx.live()) {
      ctx.lastError = ErrorCode.serverNotRunning;
      return false;
    }
    let forward = ctx.sessions.forwardTo(fd);
    // PROCESS mode: every worker's lanes reach every reactor thread; this process's
    // subscriptions and publishes all go through one worker, so they stay in order.
    if (forward >= 0 && ctx.options.mode === "process") forward = this.#via();
    if (forward >= 0) {
      const type = on ? RecordType.forwardSubscribe : RecordType.forwardUnsubscribe;
      ctx.mailbox!.send(forward, type, fd, 0, topic);
      ctx.mailed();
      return true;
    }
    this.queueSubscription(fd, topic, on);
    return true;
  }

  /**
   * Queues a subscription on the lane of `fd`'s reactor; it is counted as it goes into the
   * ring (`Lane.countTopic`).
   */
  queueSubscription(fd: number, topic: Uint8Array, on: boolean) {
    const ctx = this.#ctx;
    if (ctx.lanes.length === 0) return;
    const lane = ctx.sessions.laneOf(fd);
    lane.countTopic ??= (sessionId, name, subscribe) =>
      ctx.lib.zg_topic_adjust(
        ctx.handle,
        ctx.region?.pointer ?? null,
        sessionId,
        name,
        name.length,
        subscribe ? 1 : -1,
      ) === Status.ok;
    lane.push(on ? RecordType.subscribe : RecordType.unsubscribe, fd, 0, topic);
    ctx.sentOn(lane);
  }

  /** How many connections are subscribed to `topic` across the tree. */
  count(topic: Uint8Array): number {
    const ctx = this.#ctx;
    if (ctx.handle === null && ctx.region === undefined) return 0;
    return ctx.lib.zg_topic_count(ctx.handle, ctx.region?.pointer ?? null, topic, topic.length);
  }

  /**
   * Sends `frame` (a whole server frame) to every subscriber of `topic`; the subscribers the
   * topic has now, or -1 when this process cannot send (`getLastError()`).
   */
  publish(topic: Uint8Array, frame: Uint8Array): number {
    const ctx = this.#ctx;
    if (!ctx.live()) {
      ctx.lastError = ErrorCode.serverNotRunning;
      return -1;
    }
    if (frame.length > maxPublishBytes) {
      throw new RangeError(
        `A publish carries at most ${maxPublishBytes} bytes, got ${frame.length}`,
      );
    }
    const subscribers = this.count(topic);
    const message = new Uint8Array(2 + topic.length + frame.length);
    new DataView(message.buffer).setUint16(0, topic.length, true);
    message.set(topic, 2);
    message.set(frame, 2 + topic.length);
    const role = ctx.role;
    const eventWorker = role.kind === "worker" && role.workerType === "event";
    if (role.kind === "single" || (eventWorker && ctx.noReactor)) {
      // This process's lanes reach every reactor (its own, or all of the master's threads).
      this.queuePublish(message);
    } else if (eventWorker) {
      // BASE: this worker's reactor, and each other worker's through its mailbox.
      this.queuePublish(message);
      this.#mailToWorkers(message, role.workerId);
    } else if (ctx.options.mode === "process") {
      // Any worker's lanes reach every reactor thread: one crossing.
      ctx.mailbox!.send(this.#via(), RecordType.forwardPublish, 0, 0, message);
      ctx.mailed();
    } else {
      this.#mailToWorkers(message, -1);
    }
    return subscribers;
  }

  /** PROCESS mode, a process without lanes: the event worker its pub/sub goes through. */
  #via(): number {
    return (this.#ctx.mailbox?.self ?? 0) % this.#ctx.options.workerNum;
  }

  #mailToWorkers(message: Uint8Array, self: number) {
    const ctx = this.#ctx;
    for (let worker = 0; worker < ctx.options.workerNum; worker++) {
      if (worker !== self) ctx.mailbox!.send(worker, RecordType.forwardPublish, 0, 0, message);
    }
    ctx.mailed();
  }

  /** A publish message (topic length, topic, frame) onto every lane of this process. */
  queuePublish(message: Uint8Array) {
    const ctx = this.#ctx;
    for (const lane of ctx.lanes) {
      pushPublish(lane, message);
      ctx.sentOn(lane);
    }
  }
}

/** One publish on a lane, in records of at most the lane's chunk. */
function pushPublish(lane: Lane, message: Uint8Array) {
  const chunk = lane.sendChunk;
  if (message.length <= chunk) {
    lane.push(RecordType.publish | (PublishFlag.first << 8), 0, 0, message);
    return;
  }
  for (let at = 0; at < message.length; at += chunk) {
    const flags = (at + chunk < message.length ? PublishFlag.more : 0) |
      (at === 0 ? PublishFlag.first : 0);
    lane.push(RecordType.publish | (flags << 8), 0, 0, message.subarray(at, at + chunk));
  }
}
