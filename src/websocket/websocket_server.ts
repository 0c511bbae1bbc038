/**
 * `WebSocketServer`: Swoole's `WebSocket\Server`, an `HttpServer` whose socket also speaks
 * WebSocket (RFC 6455, handled in the core: docs/websocket.md): every `HttpServer` option,
 * event and method, plus `open`, `message`, `handshake` and the push methods, which work from
 * every process of the tree.
 * @module
 */

import { HttpServer } from "../http/http_server.ts";
import type { ServerOptions } from "../options.ts";
import {
  closePayload,
  encodeFrame,
  FrameFlag,
  Opcode,
  validCloseCode,
  WebSocketStatus,
} from "./frame.ts";

const encoder = new TextEncoder();

/**
 * A WebSocket server (and an HTTP one on the same port).
 *
 * @example Echo
 * ```ts
 * import { WebSocketServer } from "@ziggurat/server";
 *
 * const ws = new WebSocketServer({ host: "127.0.0.1", port: 9502 });
 * ws.on("open", (server, req) => console.log("open", req.fd));
 * ws.on("message", (server, frame) => server.push(frame.fd, frame.data));
 * ws.on("close", (server, fd) => console.log("close", fd));
 * await ws.start();
 * ```
 */
export class WebSocketServer extends HttpServer {
  /** Creates the server (`openHttpProtocol` and `openWebsocketProtocol` on). */
  constructor(options: ServerOptions = {}) {
    super({ openWebsocketProtocol: true, ...options });
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
    if (!this.#upgraded(fd)) return false;
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (opcode >= Opcode.close && bytes.length > 125) {
      throw new RangeError(`A control frame's payload is at most 125 bytes, got ${bytes.length}`);
    }
    return this.send(fd, encodeFrame(bytes, opcode, (flags & FrameFlag.fin) !== 0));
  }

  /** Whether `fd` is an open WebSocket (its handshake done, no Close sent or received). */
  isEstablished(fd: number): boolean {
    return this.getClientInfo(fd)?.websocketStatus === WebSocketStatus.active;
  }

  /**
   * Whether frames may go to `fd`: it is open, or its 101 is on its way (a `handshake`
   * callback answered it and the core has not written it yet: frames queue behind it).
   */
  #upgraded(fd: number): boolean {
    const status = this.getClientInfo(fd)?.websocketStatus;
    return status === WebSocketStatus.active || status === WebSocketStatus.handshake;
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
    if (!this.send(fd, encodeFrame(closePayload(code, reason), Opcode.close))) return false;
    return this.close(fd);
  }

  /** Sends a ping (with up to 125 bytes of `data`); the core answers nothing, the peer pongs. */
  ping(fd: number, data: string | Uint8Array = ""): boolean {
    return this.push(fd, data, Opcode.ping);
  }
}
