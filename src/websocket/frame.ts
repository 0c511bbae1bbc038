/**
 * WebSocket frames as the server writes them (RFC 6455: never masked), and what a worker gets
 * from the core: each whole message after an 8-byte prefix (`websocket_session.Message`: a
 * zero word, the opcode, the fin flag).
 * @module
 */

/** RFC 6455's opcodes. */
export const Opcode = {
  continuation: 0,
  text: 1,
  binary: 2,
  close: 8,
  ping: 9,
  pong: 10,
} as const;

/** Swoole's `push` flags: `fin` ends the message (a push without it is a fragment). */
export const FrameFlag = {
  fin: 1,
} as const;

/** Swoole's `websocket_status` (`getClientInfo().websocketStatus`). */
export const WebSocketStatus = {
  none: 0,
  handshake: 2,
  active: 3,
  closing: 4,
} as const;

/** Close codes a server sends (RFC 6455 7.4.1). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupported: 1003,
  invalidData: 1007,
  policy: 1008,
  tooBig: 1009,
  internalError: 1011,
} as const;

/** Bytes before a message's payload in the core's record. */
export const messagePrefix = 8;

const encoder = new TextEncoder();

/** The header of a frame of `n` payload bytes (2, 4 or 10 bytes) into `out` at 0; its length. */
function writeHead(out: Uint8Array, n: number, opcode: number, fin: boolean, rsv1 = false): number {
  out[0] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0f);
  if (n < 126) {
    out[1] = n;
    return 2;
  }
  if (n <= 0xffff) {
    out[1] = 126;
    out[2] = n >>> 8;
    out[3] = n & 0xff;
    return 4;
  }
  out[1] = 127;
  new DataView(out.buffer, out.byteOffset).setBigUint64(2, BigInt(n));
  return 10;
}

/** A frame's header alone, for a frame of `n` payload bytes (`rsv1`: compressed). */
export function frameHead(n: number, opcode: number, fin = true, rsv1 = false): Uint8Array {
  const out = new Uint8Array(n < 126 ? 2 : n <= 0xffff ? 4 : 10);
  writeHead(out, n, opcode, fin, rsv1);
  return out;
}

/** A frame with `payload`: the header (2, 4 or 10 bytes) and the payload, in one buffer. */
export function encodeFrame(
  payload: Uint8Array,
  opcode: number,
  fin = true,
  rsv1 = false,
): Uint8Array {
  const n = payload.length;
  const out = new Uint8Array((n < 126 ? 2 : n <= 0xffff ? 4 : 10) + n);
  out.set(payload, writeHead(out, n, opcode, fin, rsv1));
  return out;
}

/**
 * A pushed message longer than this goes as fragments of this payload size, each frame whole
 * in one ring record: the core writes its own control frames (pongs, a Close) between records,
 * so none lands inside a frame.
 */
export const fragmentBytes = 64 * 1024;
/** The bytes of one such fragment's frame (a 10-byte header). */
export const fragmentFrameBytes = fragmentBytes + 10;

/**
 * A message as frames: one frame, or (over `fragmentBytes`) fragments of `fragmentBytes`, the
 * first with `opcode`, the rest continuations, `fin` on the last only.
 */
export function encodeMessage(
  payload: Uint8Array,
  opcode: number,
  fin = true,
  rsv1 = false,
): Uint8Array {
  if (payload.length <= fragmentBytes) return encodeFrame(payload, opcode, fin, rsv1);
  const count = Math.ceil(payload.length / fragmentBytes);
  const lastLength = payload.length - (count - 1) * fragmentBytes;
  const lastHead = lastLength < 126 ? 2 : lastLength <= 0xffff ? 4 : 10;
  const out = new Uint8Array((count - 1) * fragmentFrameBytes + lastHead + lastLength);
  for (let i = 0; i < count; i++) {
    const piece = payload.subarray(i * fragmentBytes, (i + 1) * fragmentBytes);
    const last = i === count - 1;
    out.set(
      encodeFrame(piece, i === 0 ? opcode : Opcode.continuation, last && fin, i === 0 && rsv1),
      i * fragmentFrameBytes,
    );
  }
  return out;
}

/** A Close frame's payload: the code, then the reason (cut to fit 125 bytes, on a character). */
export function closePayload(code: number, reason: string): Uint8Array {
  let text = encoder.encode(reason);
  if (text.length > 123) {
    let end = 123;
    // (Not in the middle of a UTF-8 sequence.)
    while (end > 0 && (text[end] & 0xc0) === 0x80) end--;
    text = text.subarray(0, end);
  }
  const out = new Uint8Array(2 + text.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}

/** Whether a server may send `code` in a Close frame. */
export function validCloseCode(code: number): boolean {
  return Number.isInteger(code) &&
    ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
      (code >= 3000 && code <= 4999));
}
