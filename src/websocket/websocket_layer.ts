/**
 * WebSocket on an event worker: what the core hands over from an upgraded connection (each
 * whole message, the news of an upgrade it answered) becomes the `message` and `open`
 * callbacks; an upgrade for the `handshake` callback is answered here, the headers the
 * handler left out completed.
 * @module
 */

import { createHash } from "node:crypto";
import { httpRequest, RecordType } from "../_ffi/layout.ts";
import type { ServerContext } from "../context.ts";
import type { HttpRequest } from "../http/request.ts";
import type { HttpResponse } from "../http/response.ts";
import { messagePrefix, Opcode } from "./frame.ts";
import { WebSocketFrame } from "./websocket_frame.ts";
import { InflateError, inflateMessage } from "./deflate.ts";

const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** Inflated text, decoded and checked as UTF-8 (the core checks only what came uncompressed). */
function utf8(bytes: Uint8Array): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new InflateError(1007, "a compressed text message that is not UTF-8");
  }
}

/** `abi.HttpRequest.flags` the core sets on a WebSocket listener (http.zig). */
export const UpgradeFlag = {
  /** An upgrade request, for the `handshake` callback. */
  handshake: 16,
  /** With `handshake`: one the core answered (101); the `open` callback. */
  open: 32,
  /** With `handshake`: permessage-deflate was negotiated (the 101 says so). */
  deflate: 64,
} as const;

/** The 101's Sec-WebSocket-Extensions when permessage-deflate is negotiated (the core's). */
export const deflateAnswer =
  "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

const rfcGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export function acceptValue(key: string): string {
  return createHash("sha1").update(key + rfcGuid).digest("base64");
}

export class WebSocketLayer {
  #ctx: ServerContext;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  /** Whether a message from the core is a WebSocket message (its first word is 0). */
  static isMessage(bytes: Uint8Array): boolean {
    return bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 0 && bytes[3] === 0;
  }

  /** The upgrade flags of a request message (0 for a plain request). */
  static upgradeOf(bytes: Uint8Array): number {
    return bytes[httpRequest.flags] &
      (UpgradeFlag.handshake | UpgradeFlag.open | UpgradeFlag.deflate);
  }

  /**
   * A whole message from session `fd`: the `message` callback. `bytes` may be the ring's own
   * memory: what the callback gets is decoded or copied from it.
   */
  message(fd: number, bytes: Uint8Array) {
    const ctx = this.#ctx;
    // (Refused already: what came after it is not handed on.)
    if (ctx.sessions.closing.has(fd)) return;
    const opcode = bytes[4];
    let payload = bytes.subarray(messagePrefix);
    // (`websocket_session.Message.reserved` bit 0: permessage-deflate data.)
    const compressed = (bytes[6] & 1) !== 0;
    let text: string | undefined;
    if (compressed) {
      try {
        payload = inflateMessage(payload, ctx.options.websocketMaxMessageSize);
        if (opcode === Opcode.text) text = utf8(payload);
      } catch (error) {
        const code = error instanceof InflateError ? error.code : 1007;
        ctx.callbacks.repeats.report(
          `a compressed WebSocket message refused (${code})`,
          fd,
          () => ctx.log.warning(`session ${fd}: closing with ${code}: ${(error as Error).message}`),
          "warning",
        );
        // The core closes with the code and reads no more of it (a protocol error).
        const lane = ctx.sessions.laneOf(fd);
        lane.push(RecordType.websocketFail, fd, code, encoder.encode((error as Error).message));
        ctx.sentOn(lane);
        ctx.sessions.closing.add(fd);
        return;
      }
    }
    // Binary data is the callback's to keep (a copy of its own, made here: its `.buffer` is the
    // message's and nobody else's), unless `borrowedViews`; inflated data is its own already.
    const keep = !compressed && !ctx.options.borrowedViews;
    const frame = new WebSocketFrame(
      fd,
      opcode === Opcode.text ? text ?? decoder.decode(payload) : keep ? payload.slice() : payload,
      opcode,
    );
    if (opcode === Opcode.close && payload.length >= 2) {
      frame.code = (payload[0] << 8) | payload[1];
      frame.reason = decoder.decode(payload.subarray(2));
    }
    ctx.callbacks.call("message", fd, () => ctx.callbacks.events.message?.(ctx.server, frame));
  }

  /** The core answered an upgrade of session `fd` (`request`: the upgrade request): `open`. */
  open(request: HttpRequest) {
    const ctx = this.#ctx;
    if (ctx.log.debugging) ctx.log.debug(`session ${request.fd}: WebSocket open on ${request.url}`);
    ctx.callbacks.call("open", request.fd, () => ctx.callbacks.events.open?.(ctx.server, request));
  }

  /**
   * An upgrade for the `handshake` callback (Swoole's onHandShake). What it returns or
   * resolves to decides: false refuses (400 unless it answered), anything else accepts; a
   * handler that did not end the response gets 101 with the fields it did not set, and `open`
   * follows a 101.
   */
  handshake(request: HttpRequest, response: HttpResponse, upgrade: number): unknown {
    const ctx = this.#ctx;
    const finish = (accepted: unknown) => {
      if (!response.finished) {
        if (accepted === false) {
          response.status(400);
          response.header("connection", "close");
          response.end();
        } else {
          const deflate = (upgrade & UpgradeFlag.deflate) !== 0;
          if (deflate) {
            // The core reads the connection compressed from the 101 on (queued after this).
            const lane = ctx.sessions.laneOf(request.fd);
            lane.push(RecordType.websocketDeflate, request.fd, 0, new Uint8Array(0));
          }
          completeUpgrade(request, response, deflate);
        }
      }
      // (Not when the client left meanwhile: its `close` may have come already.)
      if (response.statusCode === 101 && ctx.server.exists(request.fd)) this.open(request);
    };
    const result = ctx.callbacks.events.handshake!(request, response);
    if (result instanceof Promise) return result.then(finish);
    finish(result);
    return undefined;
  }
}

/** Answers an upgrade with 101 and the fields the handler did not set. */
export function completeUpgrade(request: HttpRequest, response: HttpResponse, deflate = false) {
  if (response.statusCode !== 101) response.status(101);
  if (!response.hasHeader("upgrade")) response.header("Upgrade", "websocket");
  if (!response.hasHeader("connection")) response.header("Connection", "Upgrade");
  if (!response.hasHeader("sec-websocket-accept")) {
    response.header("Sec-WebSocket-Accept", acceptValue(request.field("sec-websocket-key")));
  }
  // (The core negotiated it and reads the connection so: the answer must say it.)
  if (deflate) response.header("Sec-WebSocket-Extensions", deflateAnswer);
  response.end();
}
