/**
 * Copies of received bytes that outlive the ring record they came in: small ones share 64 KiB
 * arenas, one allocation per arena instead of one per message (as Node's Buffer pool does; the
 * profile showed `malloc` of one `ArrayBuffer` per message as the largest user-space cost). A
 * kept view keeps at most its arena alive.
 *
 * Such a copy's `.buffer` is the whole arena, other sessions' bytes included (as a pooled Node
 * `Buffer`'s is): what is handed out this way is stream data (`receive`), documented so. A
 * WebSocket message, a whole unit users pass on, gets an exact copy instead (`exact`). An
 * arena whose buffer a user transferred (`postMessage`, `ArrayBuffer.transfer`) is detached:
 * the next copy starts a new one.
 * @module
 */

/** Payloads up to this size are copied into a shared arena. */
const arenaSmall = 4096;
const arenaSize = 64 * 1024;

export class Arena {
  #arena = new Uint8Array(0);
  #used = arenaSize;

  /** A copy of `bytes`, in an arena when small. */
  copy(bytes: Uint8Array): Uint8Array {
    const len = bytes.length;
    if (len > arenaSmall) return bytes.slice();
    let used = this.#used;
    if (used + len > arenaSize || this.#arena.buffer.detached) {
      this.#arena = new Uint8Array(arenaSize);
      used = 0;
    }
    const arena = this.#arena;
    arena.set(bytes, used);
    this.#used = (used + len + 7) & ~7;
    return arena.subarray(used, used + len);
  }
}
