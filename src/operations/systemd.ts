/**
 * Process supervisors' protocols, as systemd speaks them: readiness (`sd_notify`: `READY=1`
 * once the server listens, `STOPPING=1` when it begins to stop, to the datagram socket named
 * by `NOTIFY_SOCKET`) and socket activation (`LISTEN_FDS`: the listening sockets the
 * supervisor bound, from fd 3 on, taken instead of binding: the server's own first, then each
 * `listen()` port's). Both only in the process that was started (a tree's master, or the only
 * process); the variables are then removed, so workers and their children see none of them.
 * @module
 */

import { library, unwrap } from "../_ffi/library.ts";

const encoder = new TextEncoder();
let activated: number[] = [];
let notifySocket: string | undefined;
let taken = false;

/**
 * Takes the supervisor's variables out of the environment (before any child is spawned), in
 * the process that was started: the sockets it was handed, where to notify.
 */
export function takeSupervisorEnv(): void {
  if (taken) return;
  taken = true;
  const pid = Number(Deno.env.get("LISTEN_PID"));
  const count = Number(Deno.env.get("LISTEN_FDS"));
  if (pid === Deno.pid && Number.isInteger(count) && count > 0 && count < 64) {
    activated = Array.from({ length: count }, (_, i) => 3 + i);
  }
  notifySocket = Deno.env.get("NOTIFY_SOCKET") || undefined;
  for (const name of ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET"]) {
    Deno.env.delete(name);
  }
}

/** The listening sockets this process was handed (`LISTEN_FDS`): fd 3, 4, …, in order. */
export function activatedSockets(): number[] {
  return activated;
}

/** Takes over activated socket `fd`; returns its port (0 for a Unix socket). */
export function adoptSocket(fd: number): number {
  const port = new Uint32Array(1);
  unwrap(library().zg_listen_adopt(fd, port), `take over the activated socket (fd ${fd})`);
  return port[0];
}

/** `sd_notify(state)` when a supervisor asked for it (`NOTIFY_SOCKET`); errors are the caller's. */
export function notify(state: string): void {
  if (!notifySocket) return;
  const path = encoder.encode(notifySocket);
  const message = encoder.encode(state);
  unwrap(
    library().zg_notify(path, BigInt(path.length), message, BigInt(message.length)),
    `tell the supervisor "${state}" (NOTIFY_SOCKET ${notifySocket})`,
  );
}
