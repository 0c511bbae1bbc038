/**
 * The server's place in a load balancer's rotation, as the admin listener's `GET /health` tells
 * it: in (200), taken out by `drain()` or `ziggurat drain` while it goes on serving (503), or
 * out because a SIGTERM asked it to stop (503): it then serves on for `shutdownDelay` seconds,
 * long enough for the balancer's checks to see it and send no more, and only then shuts down.
 * A tree keeps the state in its region, so that whichever event worker answers `/health` says
 * the same; a one-worker server in its context.
 * @module
 */

import type { ServerContext } from "../context.ts";

/** `abi.RegionHeader.rotation`'s values. */
export const Rotation = { in: 0, drained: 1, leaving: 2 } as const;

/** What `/health` says of each. */
const rotationNames = ["ok", "draining", "stopping"] as const;

/** What `/health` says: in rotation, drained, or stopping (or stopped, or not started). */
export function healthOf(ctx: ServerContext): (typeof rotationNames)[number] {
  const stopping = ctx.state !== "running" || ctx.region?.stopping === true;
  return stopping ? "stopping" : rotationNames[rotationOf(ctx)];
}

export function rotationOf(ctx: ServerContext): number {
  return ctx.region ? ctx.region.rotation : ctx.rotation;
}

function setRotation(ctx: ServerContext, state: number) {
  if (ctx.region) ctx.region.rotation = state;
  else ctx.rotation = state;
}

/**
 * `drain()` (`out` true) or its undoing: false when the server does not run, or (undoing) a
 * shutdown is on its way already.
 */
export function drain(ctx: ServerContext, out: boolean): boolean {
  if (ctx.state !== "running") return false;
  const now = rotationOf(ctx);
  if (now === Rotation.leaving) return out;
  const next = out ? Rotation.drained : Rotation.in;
  if (now !== next) {
    setRotation(ctx, next);
    ctx.log.info(
      out
        ? "drained: the health check fails from now on; serving goes on"
        : "back in rotation: the health check passes again",
    );
  }
  return true;
}

/**
 * The process that stops the server (a tree's master, a one-worker server) on SIGTERM: with a
 * `shutdownDelay`, out of rotation at once and the stop after the delay; a second SIGTERM
 * meanwhile stops at once.
 */
export class DelayedStop {
  #ctx: ServerContext;
  #stop: () => void;
  #leaving: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** `leaving`: the delay begins (a tree's master ends a reload in progress). */
  constructor(ctx: ServerContext, stop: () => void, leaving: () => void = () => {}) {
    this.#ctx = ctx;
    this.#stop = stop;
    this.#leaving = leaving;
  }

  sigterm(): void {
    const ctx = this.#ctx;
    const delay = ctx.options.shutdownDelay;
    if (this.#timer !== undefined || delay === 0 || ctx.state !== "running") {
      this.cancel();
      ctx.log.info("SIGTERM: shutting down");
      this.#stop();
      return;
    }
    setRotation(ctx, Rotation.leaving);
    this.#leaving();
    ctx.log.info(
      `SIGTERM: the health check fails from now on; shutting down in ${delay} s (shutdownDelay; another SIGTERM: at once)`,
    );
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      ctx.log.info("shutdownDelay over: shutting down");
      this.#stop();
    }, delay * 1000);
  }

  /** The server stopped another way meanwhile. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
