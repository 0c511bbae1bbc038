/**
 * `WebSocketFrame`: a message as the `message` callback gets it (Swoole's `WebSocket\Frame`).
 * @module
 */

/** A whole WebSocket message (fragments are joined by the core before it comes here). */
export class WebSocketFrame {
  /** The session (Swoole's `fd`). */
  readonly fd: number;
  /** A string for text messages, the bytes for binary ones (and pings, pongs, closes). */
  readonly data: string | Uint8Array;
  /** RFC 6455's opcode (`Opcode`): 1 text, 2 binary; 8, 9, 10 when asked for. */
  readonly opcode: number;
  /** The message is whole (always: the core reassembles fragments). */
  readonly finish: boolean = true;
  /** A Close frame's code (0 when it had none). */
  code = 0;
  /** A Close frame's reason. */
  reason = "";

  /** @internal */
  constructor(fd: number, data: string | Uint8Array, opcode: number) {
    this.fd = fd;
    this.data = data;
    this.opcode = opcode;
  }
}
