/**
 * `logFile`: this process's stderr (and so every log line, the core's too) goes to the file.
 * Each process opens it by path, never through a symbolic link, so that after a rotation
 * renamed it, SIGRTMIN makes a new one.
 * @module
 */

import { library, unwrap } from "../_ffi/library.ts";
import { Errno } from "../errors.ts";

const encoder = new TextEncoder();

/**
 * Points stderr (and with `alsoStdout`, stdout) at `path`, appending. With `owner`, the file
 * is handed to that user and group through the descriptor opened (the master does so for
 * workers that give up root).
 */
export function openLogFile(
  path: string,
  alsoStdout: boolean,
  owner?: { user: string; group: string },
) {
  const lib = library();
  const bytes = encoder.encode(path);
  const user = encoder.encode(owner?.user ?? "");
  const group = encoder.encode(owner?.group ?? "");
  const status = lib.zg_log_open(
    bytes,
    BigInt(bytes.length),
    alsoStdout ? 1 : 0,
    user,
    BigInt(user.length),
    group,
    BigInt(group.length),
  );
  if (status !== 0 && lib.zg_last_errno() === Errno.ELOOP) {
    throw new Deno.errors.PermissionDenied(
      `Cannot open the log file "${path}": it is a symbolic link, and the server never writes through one`,
    );
  }
  unwrap(status, `open the log file "${path}"`);
}
