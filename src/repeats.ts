/**
 * Errors that repeat, logged without flooding the log or slowing the worker: the first of a
 * kind (the same callback throwing the same message) in full, with its stack; then, while it
 * keeps coming, one line a second with how many more came. A kind quiet for a whole second is
 * forgotten (its next error is logged in full again). At most `maxKinds` kinds are tracked; the
 * errors beyond them are counted together, so memory stays flat whatever is thrown.
 * @module
 */

import type { Logger } from "./log.ts";

interface Kind {
  /** Repeats since the last summary line. */
  count: number;
  /** The session of the latest repeat (0: none). */
  sessionId: number;
  /** The summary's level: the first one's. */
  level: "warning" | "error";
}

const other = "(other errors)";

export class ErrorRepeats {
  #kinds = new Map<string, Kind>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #log: Logger;
  #maxKinds: number;

  constructor(log: Logger, maxKinds = 64) {
    this.#log = log;
    this.#maxKinds = maxKinds;
  }

  /**
   * One error of `kind` (for a session, or 0): `logFirst` runs when it is the first of its
   * kind; otherwise it is only counted.
   */
  report(
    kind: string,
    sessionId: number,
    logFirst: () => void,
    level: "warning" | "error" = "error",
  ) {
    let key = kind;
    let seen = this.#kinds.get(key);
    if (seen === undefined && this.#kinds.size >= this.#maxKinds) {
      key = other;
      seen = this.#kinds.get(key) ?? { count: 0, sessionId: 0, level: "error" };
      this.#kinds.set(key, seen);
    }
    if (seen !== undefined) {
      seen.count++;
      seen.sessionId = sessionId;
      return;
    }
    this.#kinds.set(key, { count: 0, sessionId, level });
    logFirst();
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#summarize(), 1000);
      Deno.unrefTimer(this.#timer);
    }
  }

  #summarize() {
    for (const [key, kind] of this.#kinds) {
      if (kind.count === 0) {
        this.#kinds.delete(key);
        continue;
      }
      const session = kind.sessionId > 0 ? `, the latest for session ${kind.sessionId}` : "";
      const line = `${key}: ${kind.count} more in the last second${session}`;
      if (kind.level === "warning") this.#log.warning(line);
      else this.#log.error(line);
      kind.count = 0;
    }
    if (this.#kinds.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
