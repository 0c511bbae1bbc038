/**
 * Signals this process takes over from Deno (see core/src/signals.zig): the core counts each
 * delivery and writes an fd the taker waits on, so that SIGUSR1/SIGUSR2 (reload) and SIGRTMIN
 * (reopen the log) neither end the process nor start Deno's inspector.
 * @module
 */

import type { Library } from "../_ffi/library.ts";

/** Signal numbers as Linux (and glibc, for SIGRTMIN) number them. */
/** SIGRTMIN+1 and +2 take the server out of a balancer's rotation and put it back (`ziggurat drain`). */
export const Signal = {
  kill: 9,
  usr1: 10,
  usr2: 12,
  term: 15,
  rtmin: 34,
  drain: 35,
  undrain: 36,
} as const;

/** Deno installs its SIGUSR1 handler half a second after it starts: look this long. */
const retakeForMs = 2000;
const retakeEveryMs = 50;

export class TakenSignals {
  #lib: Library;
  /** Deliveries of each taken signal seen so far, from the first time it was taken. */
  #seen = new Map<number, number>();
  #wakeFd = -1;
  #retake: ReturnType<typeof setInterval> | undefined;
  #retakeEnd: ReturnType<typeof setTimeout> | undefined;

  constructor(lib: Library) {
    this.#lib = lib;
  }

  /**
   * Takes `signals` (again, with a new `wakeFd`, for ones taken before; -1: wake nothing).
   * `retake`: for the first two seconds, one Deno took back is taken again.
   */
  take(signals: readonly number[], wakeFd: number, retake = false) {
    this.#wakeFd = wakeFd;
    for (const signo of signals) {
      this.#lib.zg_signal_take(signo, wakeFd);
      if (!this.#seen.has(signo)) this.#seen.set(signo, this.#lib.zg_signal_count(signo));
    }
    if (!retake || this.#retake !== undefined) return;
    const retakeTimer = setInterval(() => {
      for (const signo of this.#seen.keys()) {
        if (this.#lib.zg_signal_is_taken(signo) === 0) {
          this.#lib.zg_signal_take(signo, this.#wakeFd);
        }
      }
    }, retakeEveryMs);
    Deno.unrefTimer(retakeTimer);
    const end = setTimeout(() => this.#stopRetaking(), retakeForMs);
    Deno.unrefTimer(end);
    this.#retake = retakeTimer;
    this.#retakeEnd = end;
  }

  /** Whether `signo` arrived since the last look. */
  arrived(signo: number): boolean {
    const seen = this.#seen.get(signo);
    const count = this.#lib.zg_signal_count(signo);
    if (seen === undefined || count === seen) return false;
    this.#seen.set(signo, count);
    return true;
  }

  /** The fd the handlers write is about to close: the signals stay taken, waking nothing. */
  release() {
    this.#stopRetaking();
    for (const signo of this.#seen.keys()) this.#lib.zg_signal_take(signo, -1);
  }

  #stopRetaking() {
    clearInterval(this.#retake);
    clearTimeout(this.#retakeEnd);
  }
}
