/**
 * The sends a lane wrote into its outbound ring that the reactor has not taken yet, per
 * session: they count against `socketBufferSize` as much as the reactor's own queue does, or a
 * tight `send()` loop in one callback would be accepted up to a whole ring past the limit.
 *
 * Kept cheap on the per-send path: a send appends (end position, session, bytes) to a FIFO and
 * adds to one total; records the reactor took are dropped from the front by the ring's head.
 * Only when the total says a session may be over its limit are the bytes per session counted
 * (`of`), and from then on kept up to date for the entries counted.
 * @module
 */

export class Unsent {
  #ends = new Uint32Array(256);
  #ids = new Uint32Array(256);
  #sizes = new Uint32Array(256);
  /** The FIFO's first entry (index into the arrays, modulo their length) and its length. */
  #first = 0;
  #count = 0;
  /** How many entries from the front are counted in `#bySession`. */
  #counted = 0;
  #bySession = new Map<number, number>();
  /** Bytes of every session's sends not taken yet. */
  total = 0;

  /** A send of `size` bytes to `sessionId` whose record ends at ring position `end`. */
  add(end: number, sessionId: number, size: number) {
    if (this.#count === this.#ends.length) this.#grow();
    const at = (this.#first + this.#count) & (this.#ends.length - 1);
    this.#ends[at] = end;
    this.#ids[at] = sessionId;
    this.#sizes[at] = size;
    this.#count++;
    this.total += size;
  }

  /** Drops the sends the reactor took: the ones whose record ends at or before `head`. */
  settle(head: number) {
    const mask = this.#ends.length - 1;
    while (this.#count > 0 && ((head - this.#ends[this.#first]) | 0) >= 0) {
      const at = this.#first;
      const size = this.#sizes[at];
      this.total -= size;
      if (this.#counted > 0) {
        const id = this.#ids[at];
        const left = this.#bySession.get(id)! - size;
        if (left === 0) this.#bySession.delete(id);
        else this.#bySession.set(id, left);
        this.#counted--;
      }
      this.#first = (at + 1) & mask;
      this.#count--;
    }
  }

  /** Bytes of `sessionId`'s sends not taken yet (after `settle`). */
  of(sessionId: number): number {
    const mask = this.#ends.length - 1;
    for (; this.#counted < this.#count; this.#counted++) {
      const at = (this.#first + this.#counted) & mask;
      const id = this.#ids[at];
      this.#bySession.set(id, (this.#bySession.get(id) ?? 0) + this.#sizes[at]);
    }
    return this.#bySession.get(sessionId) ?? 0;
  }

  #grow() {
    const n = this.#ends.length;
    const order = (from: Uint32Array) => {
      const to = new Uint32Array(2 * n);
      for (let i = 0; i < n; i++) to[i] = from[(this.#first + i) & (n - 1)];
      return to;
    };
    this.#ends = order(this.#ends);
    this.#ids = order(this.#ids);
    this.#sizes = order(this.#sizes);
    this.#first = 0;
  }
}
