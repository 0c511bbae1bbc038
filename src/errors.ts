/**
 * Errors the server raises, and Swoole's error codes that `getLastError()` returns.
 * @module
 */

/** An error of the native core that no built-in `Deno.errors` class describes. */
export class ZigguratError extends Error {
  /** The core's status name, e.g. `"limitReached"`. */
  readonly status: string;
  /** The OS errno behind it, or 0. */
  readonly errno: number;
  /** An error with the core's status name and the errno behind it. */
  constructor(message: string, status: string, errno = 0, options?: ErrorOptions) {
    super(message, options);
    this.name = "ZigguratError";
    this.status = status;
    this.errno = errno;
  }
}

/** Codes of `server.getLastError()`, numbered as Swoole numbers them. */
export const ErrorCode = {
  /** The session was closed by the server. */
  sessionClosedByServer: 1001,
  /** The session was closed by the peer. */
  sessionClosedByClient: 1002,
  /** `close()` was called; the session is closing. */
  sessionClosing: 1003,
  /** The session is closed. */
  sessionClosed: 1004,
  /** No such session (never existed, or already ended). */
  sessionNotExist: 1005,
  /** Not a session id (not a positive 32-bit integer). */
  sessionInvalidId: 1006,
  /** Invalid arguments. */
  invalidParams: 505,
  /** `send` with no data (Swoole's `SW_ERROR_NO_PAYLOAD`). */
  noPayload: 550,
  /** The session's output buffer holds `socketBufferSize` bytes or more. */
  outputBufferOverflow: 1009,
  /** The server is not running. */
  serverNotRunning: 9001,
} as const;

/** The errno values TypeScript looks at. */
export const Errno = { ENOENT: 2, ESRCH: 3, EAGAIN: 11, ELOOP: 40 } as const;

const errnoNames: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  8: "ENOEXEC",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  26: "ETXTBSY",
  27: "EFBIG",
  28: "ENOSPC",
  29: "ESPIPE",
  30: "EROFS",
  32: "EPIPE",
  36: "ENAMETOOLONG",
  38: "ENOSYS",
  39: "ENOTEMPTY",
  40: "ELOOP",
  71: "EPROTO",
  75: "EOVERFLOW",
  88: "ENOTSOCK",
  90: "EMSGSIZE",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  105: "ENOBUFS",
  107: "ENOTCONN",
  108: "ESHUTDOWN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  113: "EHOSTUNREACH",
  122: "EDQUOT",
  125: "ECANCELED",
};

/** `"ECONNRESET"` for 104; `"errno 200"` for numbers without a name here. */
export function errnoName(errno: number): string {
  return errnoNames[errno] ?? `errno ${errno}`;
}
