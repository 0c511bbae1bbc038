/**
 * permessage-deflate (RFC 7692) on the worker's side: the core negotiates it (with
 * `server_no_context_takeover` and `client_no_context_takeover`, so every message is
 * compressed alone and no connection keeps a compressor) and hands compressed messages over
 * as they came; they are inflated here, and pushes compressed here, with Deno's zlib.
 * @module
 */

import { constants, deflateRawSync, inflateRawSync } from "node:zlib";

/** Messages shorter than this go uncompressed (RSV1 clear), as RFC 7692 allows. */
export const compressMinBytes = 64;

/** What each compressed message ends with once flushed, and loses on the wire. */
const tail = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

/** A message's payload, compressed for a frame with RSV1. */
export function deflateMessage(bytes: Uint8Array): Uint8Array {
  const out = deflateRawSync(bytes, { finishFlush: constants.Z_SYNC_FLUSH });
  const end = out.length >= 4 && out[out.length - 4] === 0 && out[out.length - 3] === 0 &&
      out[out.length - 2] === 0xff && out[out.length - 1] === 0xff
    ? out.length - 4
    : out.length;
  return new Uint8Array(out.buffer, out.byteOffset, end);
}

/** Why a compressed message was refused: its close code and the reason. */
export class InflateError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/**
 * A compressed message's payload, inflated to at most `max` bytes: an `InflateError` with
 * 1009 when it would be longer, 1007 when it is not deflate data.
 */
export function inflateMessage(bytes: Uint8Array, max: number): Uint8Array {
  const input = new Uint8Array(bytes.length + tail.length);
  input.set(bytes);
  input.set(tail, bytes.length);
  try {
    const out = inflateRawSync(input, {
      finishFlush: constants.Z_SYNC_FLUSH,
      maxOutputLength: max,
    });
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ERR_BUFFER_TOO_LARGE" || error instanceof RangeError) {
      throw new InflateError(1009, "a compressed message over websocketMaxMessageSize");
    }
    throw new InflateError(1007, "a compressed message that does not inflate");
  }
}
