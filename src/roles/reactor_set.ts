/**
 * A set of reactors configured alike before they start: the one reactor of a one-worker
 * server or BASE worker, or PROCESS mode's reactor threads in the master (core/src/
 * api_reactors.zig). Each gets the server's framing, each port's own, the heartbeat and the
 * static files' settings.
 * @module
 */

import { unwrap } from "../_ffi/library.ts";
import type { Library } from "../_ffi/library.ts";
import { heartbeatMs, nativeFraming } from "../_ffi/native_options.ts";
import type { ResolvedOptions } from "../options.ts";
import type { Port } from "../port.ts";

const encoder = new TextEncoder();

/** Sets the framing (the server's, then each port's own) and the heartbeat of every reactor. */
export function configureReactors(
  lib: Library,
  set: Deno.PointerValue,
  o: ResolvedOptions,
  ports: readonly Port[],
  workerHandshake: boolean,
) {
  unwrap(lib.zg_reactors_framing(set, nativeFraming(o, 0, workerHandshake)), "set the framing");
  for (const p of ports) {
    const own = p.optionsOver(o);
    if (!own) continue;
    unwrap(
      lib.zg_reactors_port_framing(
        set,
        p.index,
        nativeFraming(own, p.ownHeartbeatIdleTime, workerHandshake),
      ),
      "set a port's framing",
    );
  }
  if (o.enableStaticHandler) {
    const root = encoder.encode(o.documentRoot);
    const locations = encoder.encode(o.staticHandlerLocations.join("\n"));
    const index = encoder.encode(o.httpIndexFiles.join("\n"));
    unwrap(
      lib.zg_reactors_static(
        set,
        root,
        root.length,
        locations,
        locations.length,
        index,
        index.length,
      ),
      `open "documentRoot" ${o.documentRoot}`,
    );
  }
  const heartbeat = heartbeatMs(o, ports.map((p) => p.ownHeartbeatIdleTime));
  unwrap(
    lib.zg_reactors_heartbeat(set, heartbeat.intervalMs, heartbeat.idleMs),
    "set the heartbeat",
  );
}

/** Each reactor's kick fd: what a worker's lane writes to wake that reactor. */
export function kickFds(lib: Library, set: Deno.PointerValue): number[] {
  const fds = new Int32Array(lib.zg_reactors_count(set));
  unwrap(lib.zg_reactors_kick_fds(set, fds), "get the reactors' kick fds");
  return [...fds];
}
