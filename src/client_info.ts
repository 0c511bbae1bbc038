/**
 * `getClientInfo()`: a session's connection details, read from the core's `abi.ClientInfo`.
 * @module
 */

import { layout } from "./_ffi/layout.ts";
import { ipv6 } from "./ip.ts";

/** What `getClientInfo()` returns (Swoole's fields, in camelCase). */
export interface ClientInfo {
  sessionId: number;
  /** The socket's fd in the reactor. */
  socketFd: number;
  /** "tcp", "tcp6" or "unix". */
  socketType: "tcp" | "tcp6" | "unix";
  reactorId: number;
  serverFd: number;
  serverPort: number;
  remoteIp: string;
  remotePort: number;
  /** Unix times in seconds (with fractions). */
  connectTime: number;
  lastTime: number;
  lastRecvTime: number;
  lastSendTime: number;
  lastDispatchTime: number;
  closeErrno: number;
  /** PROCESS mode with `maxQueuedBytes`: bytes handed to workers and not yet handled (else 0). */
  recvQueuedBytes: number;
  /** The listening socket it came in on: 0 the server's own, `port.index` a `listen()` port's. */
  serverSocket: number;
  sendQueuedBytes: number;
  /** The uid `bind()` gave the session, or 0. */
  uid: number;
  /** The worker the session's events go to (PROCESS mode; in BASE mode the one it lives in). */
  workerId: number;
}

/**
 * The `ClientInfo` in `buffer` (an `abi.ClientInfo` the core filled in). `workerId` is the
 * owner's in BASE mode, where the core does not know it.
 */
export function decodeClientInfo(
  buffer: ArrayBuffer,
  sessionId: number,
  baseWorkerId: number | undefined,
): ClientInfo {
  const bytes = new Uint8Array(buffer);
  const u32 = new Uint32Array(buffer, 0, 8);
  const i32 = new Int32Array(buffer, 0, 8);
  const f64 = new Float64Array(buffer, layout.clientInfoConnectTime, 4);
  const u64 = new BigUint64Array(buffer, layout.clientInfoSendQueuedBytes, 3);
  const recvQueued = new BigUint64Array(buffer, layout.clientInfoRecvQueuedBytes, 1);
  const tail = new Uint32Array(buffer, layout.clientInfoSendQueuedBytes + 24, 2);
  const family = u32[6];
  const addr = bytes.subarray(layout.clientInfoRemoteAddr, layout.clientInfoRemoteAddr + 16);
  return {
    sessionId,
    socketFd: i32[1],
    socketType: family === 6 ? "tcp6" : family === 1 ? "unix" : "tcp",
    reactorId: i32[2],
    serverFd: i32[3],
    serverPort: u32[4],
    remoteIp: family === 6
      ? ipv6(addr)
      : family === 1
      ? ""
      : Array.from(addr.subarray(0, 4)).join("."),
    remotePort: u32[5],
    connectTime: f64[0],
    lastTime: Math.max(f64[1], f64[2]),
    lastRecvTime: f64[1],
    lastSendTime: f64[2],
    lastDispatchTime: f64[3],
    closeErrno: i32[7],
    recvQueuedBytes: Number(recvQueued[0]),
    serverSocket: new Uint32Array(buffer, layout.clientInfoListener, 1)[0],
    sendQueuedBytes: Number(u64[0]),
    uid: tail[0],
    workerId: baseWorkerId ?? tail[1],
  };
}
