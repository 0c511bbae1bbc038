/**
 * Calling the user's callbacks: an exception or a rejected promise is logged (the first of a
 * kind in full, then counted once a second) and counted, never thrown into the server; an
 * async callback is tracked until it settles, so that a worker that leaves can wait for it.
 * @module
 */

import type { ServerEvent, ServerEvents } from "./events.ts";
import type { Logger } from "./log.ts";
import { ErrorRepeats } from "./repeats.ts";
import type { Counters } from "./stats.ts";
import { formatAddress, isDatagram } from "./options.ts";
import type { ResolvedOptions } from "./options.ts";
import type { Port } from "./port.ts";
import { httpListeners } from "./port.ts";

export class Callbacks {
  /** What `on()` registered, by event. */
  readonly events: Partial<ServerEvents> = {};
  /** Errors that repeat: the first of a kind in full, then a count a second. */
  readonly repeats: ErrorRepeats;
  /** Async callbacks whose promise has not settled yet. */
  unsettled = 0;
  /** Runs whenever an async callback settles. */
  onSettled: () => void = () => {};
  #log: Logger;
  #counters: Counters;

  constructor(log: Logger, counters: Counters) {
    this.#log = log;
    this.#counters = counters;
    this.repeats = new ErrorRepeats(log);
  }

  /** Runs a callback (`fn` calls it) for `event` (and `sessionId`, or -1). */
  call(event: ServerEvent, sessionId: number, fn: () => unknown) {
    try {
      const result = fn();
      if (result instanceof Promise) this.settle(result, (e) => this.failed(event, sessionId, e));
    } catch (error) {
      this.failed(event, sessionId, error);
    }
  }

  /**
   * Counts an async callback until its promise settles; a rejection goes to `failed`. One
   * promise per callback (not a catch and a finally: they cost per request).
   */
  settle(result: Promise<unknown>, failed: (error: unknown) => void): Promise<void> {
    this.unsettled++;
    return result.then(() => this.#settled(), (error) => {
      try {
        failed(error);
      } finally {
        this.#settled();
      }
    });
  }

  #settled() {
    // (At 0 already when a drain gave up waiting.)
    this.unsettled = Math.max(0, this.unsettled - 1);
    this.onSettled();
  }

  /**
   * A callback failed and the failure is delivered to someone (a task's rejection reaches its
   * `taskwait`): counted, and logged at debug level only.
   */
  failedQuietly(event: string, error: unknown) {
    this.#counters.callbackErrors++;
    this.#log.debug(
      `the "${event}" callback threw (delivered to its caller): ${
        error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      }`,
    );
  }

  /** A callback threw (or its promise rejected): logged and counted; the server carries on. */
  failed(event: string, sessionId: number, error: unknown) {
    this.#counters.callbackErrors++;
    let reason: string;
    try {
      reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    } catch {
      reason = typeof error;
    }
    this.repeats.report(
      `the "${event}" callback threw ${reason.slice(0, 200)}`,
      sessionId,
      () => {
        const session = sessionId > 0 ? ` for session ${sessionId}` : "";
        this.#log.error(`the "${event}" callback threw${session}; the server carries on`, error);
      },
    );
  }
}

/**
 * Before a start: each socket's type needs its callback, its own (a port's) or the server's,
 * and task workers need a `task` callback. The error to reject with, if one is missing.
 */
export function missingCallback(
  options: ResolvedOptions,
  ports: readonly Port[],
  events: Partial<ServerEvents>,
): TypeError | undefined {
  const speaksHttp = httpListeners(options, ports);
  const sockets = [
    { what: "the server", sockType: options.sockType, own: undefined, http: speaksHttp[0] },
    // (The admin listener is answered by the library: it needs none.)
    ...ports.filter((port) => !port.admin).map((port) => ({
      what: `the port ${formatAddress(port.host, port.port)}`,
      sockType: port.sockType,
      own: port.callbacks,
      http: speaksHttp[port.index],
    })),
  ];
  for (const { what, sockType, own, http } of sockets) {
    if (http) {
      // (A WebSocket server answers plain requests with 426 when it has no `request`.)
      if (events.request || (options.openWebsocketProtocol && events.message)) continue;
      return new TypeError(
        `Cannot start the server: ${what} speaks HTTP (openHttpProtocol) and needs a "request" callback`,
      );
    }
    const event = isDatagram(sockType) ? "packet" : "receive";
    if (own?.[event] || events[event]) continue;
    return new TypeError(
      `Cannot start the server: ${what} is a ${
        event === "packet" ? "datagram" : "stream"
      } socket (${sockType}) and needs a "${event}" callback, of its own or the server's`,
    );
  }
  if (options.openWebsocketProtocol && !events.message) {
    return new TypeError(
      'Cannot start the server: it speaks WebSocket (openWebsocketProtocol) and needs a "message" callback',
    );
  }
  if (options.taskWorkerNum > 0 && !events.task) {
    return new TypeError('Cannot start the server: taskWorkerNum > 0 needs a "task" callback');
  }
  return undefined;
}
