/**
 * Framing by a JavaScript function (`packageLengthFunc`, Swoole's `package_length_func`). The
 * core cannot call into JavaScript from its reactor threads, so for such a port it hands the
 * worker each session's bytes as they are read, always to the session's own worker, and the
 * worker finds the messages here: one growable buffer per session with an unfinished message,
 * bounded by `packageMaxLength`.
 * @module
 */

/** Says how long the message at the start of `data` is: 0 for "need more", < 0 for "never". */
export type PackageLengthFunc = (data: Uint8Array) => number;

interface Pending {
  buffer: Uint8Array;
  length: number;
  /** The whole message's length once the function said it, so it is not asked again. */
  need: number;
}

export class LengthFramer {
  readonly #fn: PackageLengthFunc;
  readonly #maxLength: number;
  readonly #pending = new Map<number, Pending>();

  constructor(fn: PackageLengthFunc, maxLength: number) {
    this.#fn = fn;
    this.#maxLength = maxLength;
  }

  /**
   * Takes bytes read from a session; calls `emit` with a view of each whole message (valid
   * during the call only). Returns why the session's bytes cannot be messages, or undefined.
   * After a reason the session's buffer is gone and the caller closes it.
   */
  feed(
    sessionId: number,
    bytes: Uint8Array,
    emit: (message: Uint8Array) => void,
  ): string | undefined {
    const held = this.#pending.get(sessionId);
    let data = bytes;
    let need = 0;
    if (held) {
      append(held, bytes);
      if (held.length < held.need) return undefined;
      data = held.buffer.subarray(0, held.length);
      need = held.need;
    }
    let start = 0;
    while (start < data.length) {
      const view = data.subarray(start);
      let length = need;
      need = 0;
      if (length === 0) {
        try {
          length = this.#fn(view);
        } catch (error) {
          this.#pending.delete(sessionId);
          return `packageLengthFunc threw (${
            error instanceof Error ? error.message : String(error)
          })`;
        }
        if (typeof length !== "number" || !Number.isInteger(length)) {
          this.#pending.delete(sessionId);
          return `packageLengthFunc returned ${String(length)}, not an integer`;
        }
      }
      if (length < 0) {
        this.#pending.delete(sessionId);
        return `packageLengthFunc found a malformed message (it returned ${length})`;
      }
      if (length > this.#maxLength || (length === 0 && view.length >= this.#maxLength)) {
        this.#pending.delete(sessionId);
        return `a message longer than packageMaxLength (${this.#maxLength} bytes)`;
      }
      if (length === 0 || length > view.length) {
        this.#keep(sessionId, held, view, length);
        return undefined;
      }
      emit(view.subarray(0, length));
      start += length;
    }
    this.#pending.delete(sessionId);
    return undefined;
  }

  /** Forgets a closed session's unfinished message. */
  forget(sessionId: number): void {
    this.#pending.delete(sessionId);
  }

  /** The sessions with an unfinished message held. */
  sessions(): IterableIterator<number> {
    return this.#pending.keys();
  }

  /** Sessions with an unfinished message held. */
  get held(): number {
    return this.#pending.size;
  }

  /** Keeps `rest` (an unfinished message) for the session's next bytes. */
  #keep(sessionId: number, held: Pending | undefined, rest: Uint8Array, need: number) {
    if (held && rest.buffer === held.buffer.buffer) {
      // Move it to the front of its own buffer.
      held.buffer.copyWithin(0, rest.byteOffset - held.buffer.byteOffset, held.length);
      held.length = rest.length;
      held.need = need;
      return;
    }
    const buffer = new Uint8Array(Math.max(4096, need, rest.length * 2));
    buffer.set(rest);
    this.#pending.set(sessionId, { buffer, length: rest.length, need });
  }
}

function append(held: Pending, bytes: Uint8Array) {
  const total = held.length + bytes.length;
  if (total > held.buffer.length) {
    const grown = new Uint8Array(Math.max(total, held.buffer.length * 2));
    grown.set(held.buffer.subarray(0, held.length));
    held.buffer = grown;
  }
  held.buffer.set(bytes, held.length);
  held.length = total;
}
