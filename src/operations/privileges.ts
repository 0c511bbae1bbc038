/**
 * `user` / `group`: the processes that run callbacks give up root. The names are checked in
 * start(), before anything listens; each worker (or a server of one process, once it listens)
 * then drops to them before its first callback. A tree's master keeps root to bind and
 * supervise.
 * @module
 */

import { library, unwrap } from "../_ffi/library.ts";
import { Status } from "../_ffi/layout.ts";
import { errnoName } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Role } from "../roles/role.ts";

const encoder = new TextEncoder();

/**
 * Throws unless this process can run its workers as `user` / `group` (names or numbers; empty:
 * keep): `Deno.errors.NotFound` naming an unknown user or group, `Deno.errors.PermissionDenied`
 * when the ids are not this process's own and it is not root.
 */
export function checkIds(user: string, group: string) {
  if (!user && !group) return;
  const u = encoder.encode(user);
  const g = encoder.encode(group);
  const which = new Uint32Array(1);
  const status = library().zg_check_ids(u, BigInt(u.length), g, BigInt(g.length), which);
  if (status === Status.notFound) {
    throw new Deno.errors.NotFound(
      which[0] === 1
        ? `Cannot start the server: there is no user "${user}" (option user)`
        : `Cannot start the server: there is no group "${group}" (option group)`,
    );
  }
  if (status === Status.permissionDenied) {
    throw new Deno.errors.PermissionDenied(
      `Cannot start the server: running its workers as user "${user}" group "${group}" needs the server to start as root`,
    );
  }
  unwrap(status, "check the user and group");
}

/**
 * Gives up root for `user` / `group` before any callback of this process runs. checkIds passed
 * in the master, so a failure here is the OS refusing: logged, and the process exits.
 */
export function dropPrivileges(user: string, group: string, log: Logger, role: Role) {
  if (!user && !group) return;
  const lib = library();
  const u = encoder.encode(user);
  const g = encoder.encode(group);
  if (lib.zg_drop_privileges(u, BigInt(u.length), g, BigInt(g.length)) !== 0) {
    log.error(
      `cannot run as user "${user}" group "${group}": ${errnoName(lib.zg_last_errno())}; exiting`,
    );
    Deno.exit(1);
  }
  // Changing credentials clears the parent-death signal: ask for it again.
  if (role.kind === "worker" && lib.zg_die_with_parent(15, role.managerPid) !== 0) Deno.exit(1);
}
