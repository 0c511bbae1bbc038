/**
 * The events `Server.on()` takes, with Swoole's arguments, and what a datagram's `packet` event
 * says of its sender.
 * @module
 */

import type { Server } from "./server.ts";
import type { HttpRequest } from "./http/request.ts";
import type { WebSocketFrame } from "./websocket/websocket_frame.ts";
import type { HttpResponse } from "./http/response.ts";

/** The callbacks `on()` accepts, with Swoole's arguments. */
export interface ServerEvents {
  /** The server listens (BASE mode: in worker 0, once). */
  start: (server: Server) => void;
  /** `shutdown()` was called; the server still runs. */
  beforeShutdown: (server: Server) => void;
  /** Everything stopped; `start()` resolves right after. */
  shutdown: (server: Server) => void;
  /** A worker is ready, before it receives events. */
  workerStart: (server: Server, workerId: number) => void;
  /** A worker stops; what it sends here is still delivered. */
  workerStop: (server: Server, workerId: number) => void;
  /** A connection was accepted. */
  connect: (server: Server, sessionId: number, reactorId: number) => void;
  /**
   * Bytes arrived on a session. `data` is a copy unless `borrowedViews` is set; a small one
   * shares its `.buffer` with other copies (as a pooled Node `Buffer` does): use `data` itself,
   * or `data.slice()` for a buffer of its own to transfer.
   */
  receive: (server: Server, sessionId: number, reactorId: number, data: Uint8Array) => void;
  /** A session ended; `reactorId` is -1 when the server closed it. */
  close: (server: Server, sessionId: number, reactorId: number) => void;
  /** The manager runs (`workerNum` > 1), before it spawns the workers. In the manager. */
  managerStart: (server: Server) => void;
  /** Every worker has exited. In the manager. */
  managerStop: (server: Server) => void;
  /**
   * In a task worker: a task arrived. What it returns (or its Promise resolves to), unless
   * `undefined`, is the result sent back, as `finish(result)` would; a throw or rejection goes
   * back as an `Error`. `srcWorkerId` is the sender's worker id (-1: the master).
   */
  task: (server: Server, taskId: number, srcWorkerId: number, data: unknown) => unknown;
  /**
   * In the process that called `task()`: its result. `result` is an `Error` when the handler
   * threw or its task worker died while running it.
   */
  finish: (server: Server, taskId: number, result: unknown) => void;
  /** `sendMessage()` from another worker (event or task). */
  pipeMessage: (server: Server, srcWorkerId: number, message: unknown) => void;
  /** A reload starts (SIGUSR1, SIGUSR2, `reload()`). In the manager. */
  beforeReload: (server: Server) => void;
  /** Every worker of the reload has been replaced. In the manager. */
  afterReload: (server: Server) => void;
  /**
   * A worker leaves on its own (reload, `stop()`, `maxRequest`, SIGTERM to it), before
   * `workerStop`: the last moment to hand work on.
   */
  workerExit: (server: Server, workerId: number) => void;
  /** A datagram arrived (`sockType: "udp"` or `"unixDgram"`). */
  packet: (server: Server, data: Uint8Array, clientInfo: PacketInfo) => void;
  /**
   * An HTTP request (a socket with `openHttpProtocol`, as `HttpServer`'s): answer it with
   * `response` (`end()`, or `write()`s then `end()`), now or later.
   */
  request: (request: HttpRequest, response: HttpResponse) => unknown;
  /**
   * A WebSocket upgrade (a socket with `openWebsocketProtocol`), for the handler to answer
   * (Swoole's onHandShake): set what it wants (a subprotocol, headers) and return true, and the
   * response is completed as a 101 (`Sec-WebSocket-Accept` and the rest); or answer it whole
   * (101 and `end()`); return false to refuse (400 unless it answered). `open` follows a 101.
   * Without it, the core answers upgrades itself.
   */
  handshake: (request: HttpRequest, response: HttpResponse) => boolean | Promise<boolean>;
  /** A WebSocket connection is open (after its 101); `request` is its upgrade request. */
  open: (server: Server, request: HttpRequest) => void;
  /** A whole WebSocket message (text as a string, binary as bytes). */
  message: (server: Server, frame: WebSocketFrame) => void;
  /** The session's queued output reached `bufferHighWatermark`: stop sending for a while. */
  bufferFull: (server: Server, sessionId: number) => void;
  /** …and is down to `bufferLowWatermark` again. */
  bufferEmpty: (server: Server, sessionId: number) => void;
  /** A worker exited abnormally (it is respawned under the same id). In the manager. */
  workerError: (
    server: Server,
    workerId: number,
    workerPid: number,
    exitCode: number,
    signal: number,
  ) => void;
}

/** An event name of `on()`. */
export type ServerEvent = keyof ServerEvents;

/** Every event name, for `on()` to check against. */
export const eventNames: readonly ServerEvent[] = [
  "start",
  "beforeShutdown",
  "shutdown",
  "workerStart",
  "workerStop",
  "connect",
  "receive",
  "close",
  "managerStart",
  "managerStop",
  "workerError",
  "task",
  "finish",
  "pipeMessage",
  "beforeReload",
  "afterReload",
  "workerExit",
  "bufferFull",
  "bufferEmpty",
  "packet",
  "request",
  "handshake",
  "open",
  "message",
];

/** Where a UDP datagram came from (Swoole's `$clientInfo` of `onPacket`). */
export interface PacketInfo {
  /** The sender: an IP address, or for `"unixDgram"` its socket's path ("" when unnamed). */
  address: string;
  /** The sender's port (0 for a Unix socket). */
  port: number;
  /** The server socket it came in on (the listener's index), for `sendto`. */
  serverSocket: number;
  /** The port of that server socket. */
  serverPort: number;
  /** Unix time in seconds when the worker got it. */
  dispatchTime: number;
}
