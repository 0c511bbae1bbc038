/**
 * Messages larger than one ring record arrive in pieces (`ReceiveFlag.more` on all but the
 * last, `ReceiveFlag.continued` on all but the first), in order, in one worker; this puts them
 * back together. In PROCESS mode a worker may replace one that died halfway through a message:
 * the pieces it then gets without their start are dropped, and the message is reported lost once.
 * @module
 */

import { ReceiveFlag } from "./_ffi/layout.ts";
import { concatBytes } from "./bytes.ts";

/** What `add` says of a piece. */
export const lostStart = Symbol("lost start");

export class MessagePieces {
  /** Pieces so far, by session, until the last one arrives. */
  #pieces = new Map<number, Uint8Array[]>();
  /** Sessions whose current message lost its start (its remaining pieces are dropped). */
  #lost = new Set<number>();

  /**
   * One piece (a copy is kept). Returns the whole message with the last piece, `lostStart` for
   * the first piece of a message whose start this worker never got, and undefined otherwise.
   */
  add(
    sessionId: number,
    flags: number,
    piece: Uint8Array,
  ): Uint8Array | typeof lostStart | undefined {
    const more = (flags & ReceiveFlag.more) !== 0;
    let pieces = this.#pieces.get(sessionId);
    if (pieces === undefined && (flags & ReceiveFlag.continued) !== 0) {
      const first = !this.#lost.has(sessionId);
      if (more) this.#lost.add(sessionId);
      else this.#lost.delete(sessionId);
      return first ? lostStart : undefined;
    }
    pieces ??= [];
    pieces.push(piece.slice());
    if (more) {
      this.#pieces.set(sessionId, pieces);
      return undefined;
    }
    this.#pieces.delete(sessionId);
    return concatBytes(pieces);
  }

  /** The session ended: whatever was unfinished goes. */
  forget(sessionId: number) {
    this.#pieces.delete(sessionId);
    this.#lost.delete(sessionId);
  }
}
