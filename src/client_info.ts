/**
 * `getClientInfo()`: a session's connection details, read from the core's `abi.ClientInfo`.
 * @module
 */

import { clientInfo } from "./_ffi/layout.ts";
import { ipv6 } from "./ip.ts";

/** What `getClientInfo()` returns (Swoole's fields, in camelCase). */
export interface ClientInfo {
  /** The session id (Swoole's `fd`). */
  sessionId: number;
  /** The socket's fd in the reactor. */
  socketFd: number;
  /** "tcp", "tcp6" or "unix". */
  socketType: "tcp" | "tcp6" | "unix";
  /** The reactor that owns it. */
  reactorId: number;
  /** The fd of the listening socket it came from. */
  serverFd: number;
  /** The port it came in on. */
  serverPort: number;
  /** The peer's IP address ("" for a Unix socket). */
  remoteIp: string;
  /** The peer's port. */
  remotePort: number;
  /** Unix times in seconds (with fractions). */
  connectTime: number;
  /** When it last sent or was sent something. */
  lastTime: number;
  /** When its last bytes were read. */
  lastRecvTime: number;
  /** When bytes were last written to it. */
  lastSendTime: number;
  /** When its last message went to a worker. */
  lastDispatchTime: number;
  /** The errno it ended with (in `close`), or 0. */
  closeErrno: number;
  /** PROCESS mode with `maxQueuedBytes`: bytes handed to workers and not yet handled (else 0). */
  recvQueuedBytes: number;
  /** The listening socket it came in on: 0 the server's own, `port.index` a `listen()` port's. */
  serverSocket: number;
  /** Bytes queued in the core for it, not yet written. */
  sendQueuedBytes: number;
  /** Bytes read from it since it connected. */
  totalRecvBytes: number;
  /** Bytes written to it since it connected. */
  totalSendBytes: number;
  /** The uid `bind()` gave the session, or 0. */
  uid: number;
  /** The worker the session's events go to (PROCESS mode; in BASE mode the one it lives in). */
  workerId: number;
  /**
   * Swoole's `websocket_status`: 0 not a WebSocket, 2 in its handshake, 3 open, 4 closing
   * (`WebSocketStatus`).
   */
  websocketStatus: number;
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
  const view = new DataView(buffer);
  const u32 = (field: keyof typeof clientInfo) => view.getUint32(clientInfo[field], true);
  const i32 = (field: keyof typeof clientInfo) => view.getInt32(clientInfo[field], true);
  const f64 = (field: keyof typeof clientInfo) => view.getFloat64(clientInfo[field], true);
  const u64 = (field: keyof typeof clientInfo) =>
    Number(view.getBigUint64(clientInfo[field], true));
  const family = u32("family");
  const addr = new Uint8Array(buffer, clientInfo.remoteAddr, 16);
  return {
    sessionId,
    socketFd: i32("fd"),
    socketType: family === 6 ? "tcp6" : family === 1 ? "unix" : "tcp",
    reactorId: i32("reactorId"),
    serverFd: i32("serverFd"),
    serverPort: u32("serverPort"),
    remoteIp: family === 6
      ? ipv6(addr)
      : family === 1
      ? ""
      : Array.from(addr.subarray(0, 4)).join("."),
    remotePort: u32("remotePort"),
    connectTime: f64("connectTime"),
    lastTime: Math.max(f64("lastRecvTime"), f64("lastSendTime")),
    lastRecvTime: f64("lastRecvTime"),
    lastSendTime: f64("lastSendTime"),
    lastDispatchTime: f64("lastDispatchTime"),
    closeErrno: i32("closeErrno"),
    recvQueuedBytes: u64("recvQueuedBytes"),
    serverSocket: u32("listener"),
    sendQueuedBytes: u64("sendQueuedBytes"),
    totalRecvBytes: u64("totalRecvBytes"),
    totalSendBytes: u64("totalSendBytes"),
    uid: u32("uid"),
    workerId: baseWorkerId ?? u32("workerId"),
    websocketStatus: u32("websocketStatus"),
  };
}
