/**
 * `WebSocketServer`: Swoole's `WebSocket\Server`, an `HttpServer` whose socket also speaks
 * WebSocket (RFC 6455, handled in the core: docs/websocket.md): every `HttpServer` option,
 * event and method, plus `open`, `message`, `handshake` and the push methods, which work from
 * every process of the tree.
 * @module
 */

import { HttpServer } from "../http/http_server.ts";
import { contexts } from "../context.ts";
import type { ServerContext } from "../context.ts";
import { ErrorCode } from "../errors.ts";
import { RecordType, SendFlag, WebSocketState } from "../_ffi/layout.ts";
import type { ServerOptions } from "../options.ts";
import { PubSub, topicBytes } from "./pubsub.ts";
import { compressMinBytes, deflateMessage } from "./deflate.ts";
import type { Sessions } from "../sessions.ts";
import {
  closePayload,
  encodeFrame,
  encodeMessage,
  fragmentBytes,
  fragmentFrameBytes,
  FrameFlag,
  frameHead,
  Opcode,
  validCloseCode,
  WebSocketStatus,
} from "./frame.ts";

const encoder = new TextEncoder();

/**
 * A WebSocket server (and an HTTP one on the same port).
 *
 * @example A chat room
 * ```ts
 * import { WebSocketServer } from "@ziggurat/server";
 *
 * const ws = new WebSocketServer({ host: "127.0.0.1", port: 9502 });
 * ws.on("open", (server, req) => server.subscribe(req.fd, "room"));
 * ws.on("message", (server, frame) => server.publish("room", frame.data));
 * ws.on("close", (server, fd) => console.log("close", fd));
 * await ws.start();
 * ```
 */
export class WebSocketServer extends HttpServer {
  #pubsub: PubSub;
  #sessions: Sessions;
  #ctx: ServerContext;

  /** Creates the server (`openHttpProtocol` and `openWebsocketProtocol` on). */
  constructor(options: ServerOptions = {}) {
    super({ openWebsocketProtocol: true, ...options });
    const ctx = contexts.get(this)!;
    this.#pubsub = ctx.pubsub = new PubSub(ctx);
    this.#sessions = ctx.sessions;
    this.#ctx = ctx;
  }

  /**
   * Subscribes WebSocket `fd` to `topic` (1 to 1,024 bytes of UTF-8), from any process; the
   * subscription ends with the connection. A connection holds at most 1,024 topics. False
   * when `fd` is not an open WebSocket (`getLastError()`).
   */
  subscribe(fd: number, topic: string): boolean {
    const bytes = topicBytes(topic);
    if (!this.#upgraded(fd)) return false;
    return this.#pubsub.subscription(fd, bytes, true);
  }

  /** Ends `fd`'s subscription to `topic` (if it has one), from any process. */
  unsubscribe(fd: number, topic: string): boolean {
    const bytes = topicBytes(topic);
    if (!this.#upgraded(fd)) return false;
    return this.#pubsub.subscription(fd, bytes, false);
  }

  /**
   * Sends `data` as one message to every connection subscribed to `topic`, on every worker,
   * from any process: text for a string (unless `opcode` says otherwise), binary for bytes.
   * The frame is built once, and each reactor writes it to its subscribers (a subscriber
   * whose output buffer is full, `socketBufferSize`, misses it). Returns how many
   * subscribers the topic has (0 for none), or -1 when the server is not running.
   */
  publish(
    topic: string,
    data: string | Uint8Array,
    opcode: number = typeof data === "string" ? Opcode.text : Opcode.binary,
  ): number {
    const name = topicBytes(topic);
    if (opcode !== Opcode.text && opcode !== Opcode.binary) {
      throw new RangeError(`publish() sends text (1) or binary (2) messages, got opcode ${opcode}`);
    }
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    return this.#pubsub.publish(name, encodeFrame(bytes, opcode, true));
  }

  /**
   * Gives WebSocket `fd` an idle timeout of its own, in place of `websocketIdleTimeout` and
   * `websocketPingInterval`: it is pinged after `seconds / 2` without a frame from it, and
   * closed with 1001 after `seconds` (0: neither). From the process that writes to `fd`
   * (its BASE worker, or any event worker in PROCESS mode); false elsewhere.
   */
  setIdleTimeout(fd: number, seconds: number): boolean {
    if (typeof seconds !== "number" || !(seconds >= 0) || seconds > 86400) {
      throw new RangeError(`setIdleTimeout() takes seconds from 0 to 86400, got ${seconds}`);
    }
    if (!this.#upgraded(fd) || this.#sessions.forwardTo(fd) >= 0) return false;
    const lane = this.#sessions.laneOf(fd);
    lane.push(RecordType.websocketTimers, fd, Math.round(seconds * 1000), new Uint8Array(0));
    this.#ctx.sentOn(lane);
    return true;
  }

  /** How many connections are subscribed to `topic`, across every worker. */
  subscriberCount(topic: string): number {
    return this.#pubsub.count(topicBytes(topic));
  }

  /**
   * Sends a message to WebSocket `fd`, from any process: text for a string (unless `opcode`
   * says otherwise), binary for bytes. `flags` without `FrameFlag.fin` sends a fragment (the
   * next pushes use `Opcode.continuation`). False when the connection is not an open
   * WebSocket or its output buffer is full (`getLastError()`).
   */
  push(
    fd: number,
    data: string | Uint8Array,
    opcode: number = typeof data === "string" ? Opcode.text : Opcode.binary,
    flags: number = FrameFlag.fin,
  ): boolean {
    const status = this.#status(fd);
    if (status < 0) return false;
    let bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (opcode >= Opcode.close && bytes.length > 125) {
      throw new RangeError(`A control frame's payload is at most 125 bytes, got ${bytes.length}`);
    }
    const fin = (flags & FrameFlag.fin) !== 0;
    // permessage-deflate: a whole text or binary message of some length
    // goes compressed (a fragmented push goes as it is, as RFC 7692 allows).
    let rsv1 = (status & WebSocketState.deflate) !== 0 && fin && bytes.length >= compressMinBytes &&
      (opcode === Opcode.text || opcode === Opcode.binary);
    if (rsv1) {
      const compressed = deflateMessage(bytes);
      // (What does not get smaller goes as it is.)
      if (compressed.length < bytes.length) bytes = compressed;
      else rsv1 = false;
    }
    // (Without FIN the message goes on: the core holds published frames until it ends. A
    // control frame may come between fragments: it neither begins nor ends a message.)
    const more = opcode >= Opcode.close ? SendFlag.wsControl : fin ? 0 : SendFlag.wsMore;
    const sent = bytes.length <= fragmentBytes
      ? this.#sessions.send(fd, bytes, more, 0, 0, frameHead(bytes.length, opcode, fin, rsv1))
      // Long: fragments, each frame whole in a ring record (see `fragmentBytes`).
      : this.#sessions.send(
        fd,
        encodeMessage(bytes, opcode, fin, rsv1),
        more,
        0,
        fragmentFrameBytes,
      );
    if (!sent && this.#ctx.lastError === ErrorCode.outputBufferOverflow) this.#overLimit(fd);
    return sent;
  }

  /** A push found `fd`'s output full: with `closeOnBackpressureLimit`, it is let go. */
  #overLimit(fd: number) {
    const ctx = this.#ctx;
    if (!ctx.options.closeOnBackpressureLimit) return;
    ctx.callbacks.repeats.report(
      "a slow WebSocket consumer closed (closeOnBackpressureLimit)",
      fd,
      () =>
        ctx.log.warning(
          `session ${fd}: its output is over socketBufferSize; closing it (closeOnBackpressureLimit)`,
        ),
      "warning",
    );
    this.close(fd, true);
    // (The push's own failure is what the caller hears of.)
    ctx.lastError = ErrorCode.outputBufferOverflow;
  }

  /** Whether `fd` is an open WebSocket (its handshake done, no Close sent or received). */
  isEstablished(fd: number): boolean {
    return (this.#sessions.websocketStatus(fd) & WebSocketState.status) === WebSocketStatus.active;
  }

  /**
   * Whether frames may go to `fd`: it is open, or its 101 is on its way (a `handshake`
   * callback answered it and the core has not written it yet: frames queue behind it).
   */
  #upgraded(fd: number): boolean {
    return this.#status(fd) >= 0;
  }

  /** `fd`'s `WebSocketState` from the core, or -1 when frames may not go. */
  #status(fd: number): number {
    const raw = this.#sessions.websocketStatus(fd);
    const status = raw & WebSocketState.status;
    if (status === WebSocketStatus.active || status === WebSocketStatus.handshake) return raw;
    this.#ctx.lastError = status === 0 ? ErrorCode.sessionNotExist : ErrorCode.sessionClosing;
    return -1;
  }

  /**
   * Closes WebSocket `fd` with a Close frame of `code` and `reason` (cut to 123 bytes), from
   * any process; the connection ends once it is written.
   */
  disconnect(fd: number, code: number = 1000, reason = ""): boolean {
    if (!validCloseCode(code)) {
      throw new RangeError(`${code} is not a close code a server may send`);
    }
    if (!this.#upgraded(fd)) return false;
    const close = encodeFrame(closePayload(code, reason), Opcode.close);
    if (!this.#sessions.send(fd, close, SendFlag.wsControl)) return false;
    return this.close(fd);
  }

  /** Sends a ping (with up to 125 bytes of `data`); the core answers nothing, the peer pongs. */
  ping(fd: number, data: string | Uint8Array = ""): boolean {
    return this.push(fd, data, Opcode.ping);
  }
}
