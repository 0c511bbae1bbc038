/**
 * Swoole's async exit (`reload_async`): a worker told to go (reload, `stop()`, `maxRequest`,
 * shutdown) has stopped taking new events; it reports itself exiting and runs `workerExit`,
 * then waits until every async callback and task in hand has settled, at most 80% of
 * `maxWaitTime` (the master kills at `maxWaitTime`, and what was sent until then still has to
 * reach the rings), and only then goes on. Without `reloadAsync` it goes on at once.
 * @module
 */

import type { Logger } from "../log.ts";
import type { ResolvedOptions } from "../options.ts";

/** What the exit uses of the worker it belongs to. */
export interface AsyncExitHost {
  readonly options: ResolvedOptions;
  readonly log: Logger;
  /** Async callbacks and tasks not settled yet. */
  pending(): number;
  /** The wait gave up: what is still pending is forgotten. */
  abandon(): void;
  /** The exit begins: status 3, and (with `reloadAsync`) `workerExit`. */
  began(waits: boolean): void;
}

export class AsyncExit {
  #host: AsyncExitHost;
  /** What runs once nothing is pending; undefined before the exit began or after it ran. */
  #then: (() => void) | undefined;
  #began = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(host: AsyncExitHost) {
    this.#host = host;
  }

  /** The exit began (the worker is exiting, status 3). */
  get began(): boolean {
    return this.#began;
  }

  /** Begins the exit (once): `then` runs once nothing is pending, or the wait gave up. */
  begin(then: () => void) {
    if (this.#began) return;
    this.#began = true;
    const { options, log } = this.#host;
    this.#host.began(options.reloadAsync);
    // Without reloadAsync, as in Swoole: no workerExit, no waiting.
    if (!options.reloadAsync) return then();
    this.#then = then;
    const pending = this.#host.pending();
    if (pending === 0) return this.settled();
    log.info(
      `exiting once ${pending} async callback(s) settle (at most maxWaitTime, ${options.maxWaitTime} s)`,
    );
    this.#timer = setTimeout(() => {
      log.warning(
        `maxWaitTime (${options.maxWaitTime} s) ran out with ${this.#host.pending()} async callback(s) unsettled; exiting without them`,
      );
      this.#host.abandon();
      this.settled();
    }, options.maxWaitTime * 800);
  }

  /** Something pending settled: once nothing is, the exit goes on. */
  settled() {
    const then = this.#then;
    if (!then || this.#host.pending() > 0) return;
    this.#then = undefined;
    clearTimeout(this.#timer);
    then();
  }
}
