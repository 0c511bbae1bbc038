/**
 * `pidFile`: the master's pid, for `ziggurat stop|reload|stats` and the tools operators use.
 * The file is written whole under another name and renamed into place (mode 0644), never
 * through a symbolic link, and the server keeps it open and locked while it runs
 * (core/src/files.zig). So a second server refuses a pid file that a running one holds, a stale
 * file (its server died by SIGKILL) is replaced, and the CLI signals a pid only when that
 * process holds the file.
 * @module
 */

import { library, unwrap } from "../_ffi/library.ts";
import { Status } from "../_ffi/layout.ts";
import { Errno } from "../errors.ts";

const encoder = new TextEncoder();

/** A pid file this process holds. */
export class PidFile {
  readonly path: string;
  #fd: number;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
  }

  /**
   * Takes `path` for this process. Throws `Deno.errors.AlreadyExists` while a running server
   * holds it, `Deno.errors.PermissionDenied` for a symbolic link or a directory this process
   * may not write, `Deno.errors.NotFound` for a missing directory.
   */
  static acquire(path: string): PidFile {
    const lib = library();
    const bytes = encoder.encode(path);
    const fd = new Int32Array(1);
    const holder = new Int32Array(1);
    const status = lib.zg_pid_file_acquire(bytes, BigInt(bytes.length), fd, holder);
    if (status === Status.badState) {
      throw new Deno.errors.AlreadyExists(
        `Cannot write the pid file "${path}": it belongs to a running server${
          holder[0] > 0 ? ` (pid ${holder[0]})` : ""
        }; stop that one first or choose another pidFile`,
      );
    }
    if (status !== Status.ok && lib.zg_last_errno() === Errno.ELOOP) {
      throw new Deno.errors.PermissionDenied(
        `Cannot write the pid file "${path}": it is a symbolic link, and the server never writes through one`,
      );
    }
    unwrap(status, `write the pid file "${path}"`);
    return new PidFile(path, fd[0]);
  }

  /** Removes the file (if it is still this one) and lets go of the lock. */
  release() {
    if (this.#fd < 0) return;
    const bytes = encoder.encode(this.path);
    library().zg_pid_file_release(this.#fd, bytes, BigInt(bytes.length));
    this.#fd = -1;
  }
}

/** Why `runningServer` found no server. */
export type NoServer = "missing" | "stale" | "link" | "unreadable";

/**
 * The pid of the running Ziggurat server whose pid file `path` is: the file is locked and that
 * process holds it open. A pid file whose process is gone, or whose pid now names some other
 * process, gives "stale".
 */
export function runningServer(path: string): number | NoServer {
  const lib = library();
  const bytes = encoder.encode(path);
  const pid = new Int32Array(1);
  if (lib.zg_pid_file_owner(bytes, BigInt(bytes.length), pid) === Status.ok) return pid[0];
  switch (lib.zg_last_errno()) {
    case Errno.ENOENT:
      return "missing";
    case Errno.ESRCH:
      return "stale";
    case Errno.ELOOP:
      return "link";
    default:
      return "unreadable";
  }
}
