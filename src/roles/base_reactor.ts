/**
 * A reactor of this process's own (a one-worker server, a BASE worker): created with the
 * server's settings, bound (or handed the manager's listening sockets), then framed and
 * started.
 * @module
 */

import { unwrap } from "../_ffi/library.ts";
import type { Library } from "../_ffi/library.ts";
import { ListenFlag } from "../_ffi/layout.ts";
import { formatAddress } from "../options.ts";
import { listenFlags, nativeConfig } from "../_ffi/native_options.ts";
import { configureReactors } from "./reactor_set.ts";
import { activatedSockets } from "../operations/systemd.ts";
import type { ResolvedOptions } from "../options.ts";
import type { Port } from "../port.ts";
import type { Role } from "./role.ts";

const encoder = new TextEncoder();

/**
 * Creates the reactor and its listening sockets: the server's, then each `listen()` port's in
 * order (listener `index`), bound here or, in a worker of a tree, adopted from the manager.
 * Returns the handle and the server's bound port; each port learns its own. The caller
 * destroys the handle if what follows fails.
 */
export function createReactor(
  lib: Library,
  o: ResolvedOptions,
  role: Role,
  ports: readonly Port[],
  workerId: number,
): { handle: Deno.PointerValue; port: number } {
  // Session ids unique across the tree: worker w of n hands out the ids i with (i-1) % n == w.
  const config = nativeConfig(o, Math.max(0, workerId), role.kind === "worker" ? o.workerNum : 1);
  const out = new BigUint64Array(1);
  unwrap(lib.zg_server_create(config, out), "create the server");
  const handle = Deno.UnsafePointer.create(out[0]);
  try {
    const port = new Uint32Array(1);
    // The server's own socket takes reuse port whatever its type (a port's only for TCP).
    const flags = listenFlags(o.sockType, o) | (o.enableReusePort ? ListenFlag.reusePort : 0);
    const listen = (host: string, number: number, listenerFlags: number, inherited: number) => {
      if (inherited >= 0) {
        unwrap(
          lib.zg_server_adopt(handle, inherited, listenerFlags, port),
          "take over a listening socket",
        );
        return;
      }
      const bytes = encoder.encode(host);
      unwrap(
        lib.zg_server_listen(
          handle,
          bytes,
          BigInt(bytes.length),
          number,
          o.backlog,
          listenerFlags,
          port,
        ),
        `listen on "${formatAddress(host, number)}"`,
      );
    };
    const worker = role.kind === "worker" ? role : undefined;
    // A one-worker server takes the sockets a supervisor handed it (operations/systemd.ts).
    const handed = role.kind === "single" ? activatedSockets() : [];
    const inherited = (i: number) => worker?.listenFds[i] ?? handed[i] ?? -1;
    listen(o.host, worker ? worker.ports[0] : o.port, flags, inherited(0));
    const serverPort = port[0];
    for (const p of ports) {
      const pFlags = listenFlags(p.sockType, p.optionsOver(o) ?? o);
      listen(
        p.host,
        worker ? worker.ports[p.index] : p.port,
        pFlags,
        inherited(p.index),
      );
      p.bound(port[0]);
    }
    return { handle, port: serverPort };
  } catch (error) {
    lib.zg_server_destroy(handle);
    throw error;
  }
}

/**
 * The server's and each port's framing, the listen options, the heartbeat; a BASE worker's
 * WebSockets taken up from its predecessor and carried on to its successor (`carry`); then it
 * runs.
 */
export function startReactor(
  lib: Library,
  handle: Deno.PointerValue,
  o: ResolvedOptions,
  ports: readonly Port[],
  workerHandshake: boolean,
  carry?: { out: number; in: number },
) {
  configureReactors(lib, lib.zg_server_reactors(handle), o, ports, workerHandshake);
  if (carry) {
    unwrap(lib.zg_server_carry(handle, carry.out, carry.in), "take up the carried WebSockets");
  }
  if (o.tcpDeferAccept || o.tcpFastopen) {
    // (With several workers on one inherited socket the master set these already.)
    const fd = lib.zg_server_listen_fd(handle, 0);
    unwrap(lib.zg_listen_options(fd, o.tcpDeferAccept, o.tcpFastopen), "set the listen options");
  }
  unwrap(lib.zg_server_start(handle, o.inlineReactor ? 1 : 0), "start the reactor");
}
