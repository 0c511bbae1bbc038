/**
 * Server options: Swoole's settings in camelCase, their defaults and their validation.
 * @module
 */

import type { PackageLengthFunc } from "./framer.ts";

/**
 * How the server runs. `"base"` (Swoole's default since 5.0): each worker runs its own reactor
 * and owns its sockets. `"process"`: the process that calls `start()` keeps every socket in
 * `reactorNum` reactor threads and hands events to `workerNum` worker processes through shared
 * rings; a worker that dies loses no connection.
 */
export type Mode = "base" | "process";

/**
 * PROCESS mode: which worker gets an event. 1 round-robin, 2 fd modulo (sticky), 3 idle worker,
 * 4 client IP hash (sticky), 5 uid after `bind()` (fd modulo before).
 */
export type DispatchMode = 1 | 2 | 3 | 4 | 5;

/** Options of `new Server(options)`; every field is optional. */
export interface ServerOptions {
  /** Address to listen on: an IPv4 or IPv6 literal, or `"localhost"`. Default `"0.0.0.0"`. */
  host?: string;
  /** TCP port; 0 picks a free one (read it from `server.port` once started). Default 9501. */
  port?: number;
  /**
   * `"tcp"` (IPv4 or IPv6 by the host), `"unix"`: a Unix stream socket whose path is `host`
   * (`port` is ignored; a socket file left by an earlier server is replaced, and the file is
   * removed when the server stops), `"udp"`: datagrams reach `on("packet")` and go out with
   * `sendto()`, or `"unixDgram"`: the same over a Unix datagram socket at the path `host`
   * (a peer's address is its socket's path). Default `"tcp"`.
   */
  sockType?: SockType;
  /** Process model. Default `"base"`: the worker runs its own reactor. */
  mode?: Mode;
  /**
   * PROCESS mode: reactor threads in the master. Default: the number of CPUs, at most 8 and at
   * most `workerNum` (Swoole's rule).
   */
  reactorNum?: number;
  /** PROCESS mode: how events are spread over workers (see `DispatchMode`). Default 2. */
  dispatchMode?: DispatchMode;
  /**
   * PROCESS mode with dispatch modes 1, 3 and 5: deliver `connect` and `close` too (they may
   * reach a different worker than the session's data, and out of order with it). Default false:
   * as in Swoole, those modes deliver data only.
   */
  enableUnsafeEvent?: boolean;
  /**
   * Swoole's `discard_timeout_request`, in PROCESS mode with dispatch modes 1 and 3: data of a
   * session that had closed by the time a worker got to it is dropped (counted in
   * `stats().discardCount` and logged once a second) instead of delivered. Default false.
   */
  discardTimeoutRequest?: boolean;
  /**
   * Event workers. With one, this process is the whole server; with more, it becomes the
   * manager and runs each worker as a new Deno process on the same entry module (so code
   * before `start()` runs in every process: per-process set-up belongs in `workerStart`).
   * Default 1.
   */
  workerNum?: number;
  /**
   * Task worker processes (`on("task")`, `task()`, `taskwait()`). With any, the process that
   * calls `start()` becomes the manager. Default 0.
   */
  taskWorkerNum?: number;
  /** A task worker exits (and is replaced) after this many tasks; 0 never. Default 0. */
  taskMaxRequest?: number;
  /**
   * An event worker of a tree leaves (and is replaced) after this many requests plus a random
   * 1 to `maxRequestGrace` more (none when the grace is 0), so that workers do not all leave at
   * once; 0 never. Default 0.
   */
  maxRequest?: number;
  /** Default: half of `maxRequest` when it is above 10, else 0 (Swoole's rule). */
  maxRequestGrace?: number;
  /**
   * Reload (SIGUSR1, SIGUSR2, `reload()`) tells every worker to go at once, each successor
   * starting as soon as its predecessor is gone; false: one after the other. Default true.
   */
  reloadAsync?: boolean;
  /** A file the master writes its pid to once it listens, and removes when it stops. */
  pidFile?: string;
  /**
   * Log to this file (appending) instead of stderr, in every process of the tree; the core's
   * own lines too. SIGRTMIN to the master reopens it (after a log rotation renamed it).
   */
  logFile?: string;
  /**
   * Run in the background: `start()` starts the server again as a detached process in a new
   * session (stdout and stderr to `logFile`, or nowhere), returns once it listens, and this
   * process exits. Default false.
   */
  daemonize?: boolean;
  /**
   * Workers, task workers and user processes run as this user (a name or a number) once they
   * start (the master keeps its privileges, to bind and to supervise). Needs root. Default: keep.
   */
  user?: string;
  /** …and this group (a name or a number). Default: the user's own group. */
  group?: string;
  /**
   * `receive` gets whole messages that end with `packageEof` (and may hold several, up to the
   * last marker read). Default false.
   */
  openEofCheck?: boolean;
  /** `receive` gets one message per `packageEof` marker. Default false. */
  openEofSplit?: boolean;
  /** The end-of-message marker of the EOF protocols: 1 to 8 bytes. */
  packageEof?: string;
  /**
   * `receive` gets one message per length-prefixed frame: a `packageLengthType` field at
   * `packageLengthOffset` gives the length that follows `packageBodyOffset`. Default false.
   */
  openLengthCheck?: boolean;
  /**
   * Swoole's `package_length_func`, for protocols the length settings cannot describe: called
   * with the bytes buffered for a session (from the start of a message), it returns the whole
   * message's length, 0 while it needs more bytes, or a negative number when they can never be
   * a message. A negative answer, a length over `packageMaxLength`, or an exception closes the
   * session (logged with the reason, counted in `stats().protocolErrorCount`). Implies
   * `openLengthCheck`. It runs in the worker the session's data goes to, which in PROCESS mode
   * is the session's own worker in every dispatch mode (a `bind()` in dispatch mode 5 moves the
   * data to another worker: bind before the first message). Default null.
   */
  packageLengthFunc?: PackageLengthFunc | null;
  /** Swoole's pack code of the length field: c C s S n N v V l L q Q. Default "N". */
  packageLengthType?: string;
  /** Where the length field starts. Default 0. */
  packageLengthOffset?: number;
  /** Where the body starts (the length counts from there). Default 0. */
  packageBodyOffset?: number;
  /**
   * A longer message (or a negative length) closes its session, logged and counted in
   * `stats().protocolErrorCount`. Default 2 MiB.
   */
  packageMaxLength?: number;
  /**
   * Swoole's `open_http_protocol`: the socket speaks HTTP/1.1, parsed in the core (docs/http.md);
   * each request reaches the `request` callback. `HttpServer` turns it on. Default false.
   */
  openHttpProtocol?: boolean;
  /**
   * Swoole's `open_websocket_protocol`: the HTTP socket also speaks WebSocket (RFC 6455,
   * docs/websocket.md); upgrades are answered in the core (or by the `handshake` callback) and
   * each whole message reaches the `message` callback. `WebSocketServer` turns it on (with
   * `openHttpProtocol`). Default false.
   */
  openWebsocketProtocol?: boolean;
  /**
   * WebSocket: the most bytes of a message (its fragments together); a longer one closes the
   * connection with 1009, before its bytes are buffered. Default 2 MiB. A server that pushes
   * messages this large needs a `socketBufferSize` to hold them.
   */
  websocketMaxMessageSize?: number;
  /**
   * WebSocket: the core pings a connection that has sent nothing for this many seconds (and
   * again each interval it stays quiet). Default 0: off.
   */
  websocketPingInterval?: number;
  /**
   * WebSocket: a connection whose output buffer cannot take a pushed or published message
   * (its queued bytes would pass `socketBufferSize`) is closed (reset, its queued output
   * dropped, logged) instead of missing it — a slow consumer is let go. Default false: the
   * message is not sent to it (`push` returns false; `publish` skips it), and
   * `bufferFull` / `bufferEmpty` (`bufferHighWatermark`) tell when to hold back.
   */
  closeOnBackpressureLimit?: boolean;
  /**
   * WebSocket: Swoole's `websocket_compression`: permessage-deflate (RFC 7692) with a client
   * that offers it, each message compressed alone (no context takeover either way). Pushes of
   * 64 bytes and more go compressed; published messages go as they are. Default false.
   */
  websocketCompression?: boolean;
  /**
   * WebSocket: a connection that sent nothing (no frame, no pong) for this many seconds is
   * closed with 1001 (counted with `heartbeat_close_count`). Default 0: twice
   * `websocketPingInterval` when that is set, else off.
   */
  websocketIdleTimeout?: number;
  /** WebSocket: Close frames reach the `message` callback too (the core still answers them). Default false. */
  openWebsocketCloseFrame?: boolean;
  /** WebSocket: pings reach the `message` callback, and the core does not answer them: the handler pongs. Default false. */
  openWebsocketPingFrame?: boolean;
  /** WebSocket: pongs reach the `message` callback. Default false. */
  openWebsocketPongFrame?: boolean;
  /** HTTP: the most bytes of a request's head (request line and header fields); 431 beyond. Default 16 KiB, at most 65,535. */
  httpMaxHeaderSize?: number;
  /** HTTP: the most header fields of a request; 431 beyond. Default 100, at most 256. */
  httpMaxHeaders?: number;
  /** HTTP: the most bytes of a request target; 414 beyond. Default 8 KiB. */
  httpMaxRequestTarget?: number;
  /**
   * HTTP: seconds a request's head may take from its first byte to its last; 408 and the
   * connection ends beyond (slow-header clients). 0: no limit. Default 10.
   */
  httpHeaderTimeout?: number;
  /**
   * HTTP: seconds a kept-alive connection may stay idle (no request in hand, nothing sent)
   * before the server closes it. 0: never. Default 60.
   */
  httpKeepAliveTimeout?: number;
  /**
   * HTTP: bytes a second a request body must keep up, once it had `httpHeaderTimeout` to get
   * going; slower, it gets 408 and the connection ends (slow uploads hold a connection and its
   * buffer). 0: any pace. Default 1024.
   */
  httpMinBodyRate?: number;
  /**
   * HTTP: requests of one connection in a worker's hands at once (pipelined, unanswered); the
   * connection is not read further until one is answered. Default 32.
   */
  httpMaxPipelined?: number;
  /**
   * HTTP: static files answered by the reactor itself, with no worker hop (sendfile,
   * `ETag`/`Last-Modified` conditionals, one byte range, content types by extension), from
   * `documentRoot`. Default false. See docs/http.md.
   */
  enableStaticHandler?: boolean;
  /** HTTP: the directory static files come from (relative: to the working directory). */
  documentRoot?: string;
  /** HTTP: the files that stand for a directory asked for with a trailing slash, tried in order. Default ["index.html"]. */
  httpIndexFiles?: string[];
  /**
   * HTTP: path prefixes served as static files; a request under one for a file that is not
   * there is 404. Empty (the default): every path is looked up, and a miss goes to `request`.
   */
  staticHandlerLocations?: string[];
  /**
   * HTTP: compress responses when the client accepts br, gzip or deflate and the content type
   * compresses (text, JSON, JavaScript, XML, SVG, wasm; see `httpCompressionTypes`): whole
   * bodies in the coding it prefers, bodies written in chunks in gzip or deflate as they go.
   * Default true. See docs/http.md.
   */
  httpCompression?: boolean;
  /** HTTP: the compression level, 1 (fastest) to 9 (smallest). Default 1. */
  httpCompressionLevel?: number;
  /** HTTP: bodies shorter than this many bytes go as they are. Default 20. */
  httpCompressionMinLength?: number;
  /** HTTP: the content types (without parameters) to compress; empty (the default): text, JSON, JavaScript, XML, SVG, wasm. */
  httpCompressionTypes?: string[];
  /** HTTP: where multipart uploads' files are written (removed when the response ends). Default "/tmp". */
  uploadTmpDir?: string;
  /** HTTP: the largest uploaded file written, in bytes (larger: `error` 1). 0: up to `packageMaxLength`. Default 0. */
  uploadMaxFilesize?: number;
  /**
   * Seconds between heartbeat checks: sessions that received nothing for
   * `heartbeatIdleTime` are closed (unless `protect()`ed). 0: off. Default 0.
   */
  heartbeatCheckInterval?: number;
  /** Seconds without data after which the heartbeat closes a session. Default: twice the interval. */
  heartbeatIdleTime?: number;
  /**
   * Seconds a session may receive nothing before it is closed: the heartbeat with this idle
   * time, checked every second (or as often as `heartbeatCheckInterval` says). 0: off.
   */
  maxIdleTime?: number;
  /**
   * `bufferFull` runs when a session's queued output reaches this many bytes (0: never), and
   * `bufferEmpty` when it is down to `bufferLowWatermark` again. Default 0.
   */
  bufferHighWatermark?: number;
  /** Default 0. */
  bufferLowWatermark?: number;
  /** A new session is not read until a worker `confirm()`s it. Default false. */
  enableDelayReceive?: boolean;
  /**
   * The PROXY protocol (versions 1 and 2, as HAProxy's `send-proxy` / `send-proxy-v2`, nginx's
   * `proxy_protocol on` and cloud balancers send it): every connection opens with a balancer's
   * header giving the client's address, which `getClientInfo()`, `req.server.remoteAddr` and the
   * logs then show. The session's `connect` runs once the header is in. A connection without a
   * valid header (none, a malformed one, one that does not come within 10 s, or data before
   * it) is closed, counted in `protocolErrorCount`; on an HTTP port it gets 400 first. A header
   * without an address (`LOCAL`, `UNKNOWN`: the balancer's own health checks) leaves the socket's
   * address. Only for a listener no client reaches but through the balancer. Stream sockets
   * only. Default false.
   */
  openProxyProtocol?: boolean;
  /** TCP_DEFER_ACCEPT: a connection is accepted only once data came (seconds; 0: off). */
  tcpDeferAccept?: number;
  /** TCP_FASTOPEN: the queue length of SYNs with data (0: off). */
  tcpFastopen?: number;
  /** SO_KEEPALIVE on accepted sockets. Default false. */
  openTcpKeepalive?: boolean;
  /** TCP_KEEPIDLE, TCP_KEEPINTVL (seconds), TCP_KEEPCNT; 0: the kernel's. */
  tcpKeepidle?: number;
  /** TCP_KEEPINTVL: seconds between probes (0: the kernel's). */
  tcpKeepinterval?: number;
  /** TCP_KEEPCNT: probes unanswered before the connection drops (0: the kernel's). */
  tcpKeepcount?: number;
  /** TCP_USER_TIMEOUT in milliseconds (0: the kernel's). */
  tcpUserTimeout?: number;
  /**
   * TCP_NOTSENT_LOWAT of accepted sockets in bytes: the most written and not yet sent that the
   * kernel holds; the rest waits in the server until the socket takes it. Large responses
   * (static files) then go out as the peer reads, not from a deep queue (on loopback this
   * doubled 1 MiB static files a second; see bench/README.md). 0: the kernel's (no limit).
   * Default -1: 16 KiB on HTTP sockets, the kernel's on others.
   */
  tcpNotsentLowat?: number;
  /** SO_RCVBUF / SO_SNDBUF of accepted sockets in bytes (0: the kernel's). */
  kernelSocketRecvBufferSize?: number;
  /** SO_SNDBUF of accepted sockets in bytes (0: the kernel's). */
  kernelSocketSendBufferSize?: number;
  /**
   * PROCESS mode (Swoole's `max_queued_bytes`): a session whose bytes handed to workers and
   * not yet handled reach this many is not read until its worker catches up (its `receive`
   * callback returned, or an async one's promise settled); what the peer sends meanwhile
   * waits in the kernel. Keeps one fast sender from filling a worker's ring. 0: off. Default 0.
   */
  maxQueuedBytes?: number;
  /** `listen()` backlog. Default 512. */
  backlog?: number;
  /** TCP_NODELAY on accepted sockets. Default true. */
  openTcpNodelay?: boolean;
  /** SO_REUSEPORT on the listen socket. Default false. */
  enableReusePort?: boolean;
  /** IPv6 sockets accept only IPv6 (IPV6_V6ONLY). Default false. */
  ipv6Only?: boolean;
  /** Most sessions open at once; more are refused and counted. Default 10000. */
  maxConnection?: number;
  /**
   * Swoole's `start_session_id`: the first session id is this plus 1 (ids then grow from
   * there, never reused). Default 0.
   */
  startSessionId?: number;
  /**
   * Per-session output buffer limit in bytes: while a session has this much queued, `send`
   * returns false (`ErrorCode.outputBufferOverflow`). As in Swoole, one `send` below the limit
   * is taken whole, whatever its size. Default 8 MiB.
   */
  socketBufferSize?: number;
  /** Seconds shutdown waits for queued output to be written. Default 3. */
  maxWaitTime?: number;
  /**
   * Bytes in each of the two rings between the reactor and the worker (a power of two, at
   * least 256 KiB). Default 4 MiB.
   */
  ringSize?: number;
  /**
   * `receive` gets a view into the ring instead of a copy, and so does a WebSocket `message`
   * callback's binary `frame.data`. It is valid only until the callback returns; keep it longer
   * and it will be overwritten. Default false.
   */
  borrowedViews?: boolean;
  /**
   * BASE mode: drive the reactor from the JS thread (sync FFI calls that poll epoll without
   * blocking, one `nonblocking` wait when idle) instead of a native reactor thread. Saves a
   * thread hand-off per batch. Default true; see docs/architecture.md for the measurements.
   */
  inlineReactor?: boolean;
  /** Least severe log level printed: "debug", "info", "warning", "error". Default "info". */
  logLevel?: LogLevel;
  /**
   * `"text"` (`[time] LEVEL role pid N: message`) or `"json"`: one JSON object per line, with
   * `time`, `level`, `who`, `pid`, `session` (when there is one) and `message`, from the core
   * too. Default "text".
   */
  logFormat?: LogFormat;
  /**
   * Swoole's `admin_server`: `"host:port"` of one more listener, HTTP, answered by the library
   * in the event workers: `GET /metrics` (the tree's `stats()` as a Prometheus text exposition,
   * with `worker` and `port` labels) and `GET /health` for load balancers: 200 `{"status":"ok"}`
   * while the server is in rotation, 503 with `"draining"` once `drain()` took it out, or
   * `"stopping"` once a SIGTERM asked it to stop (see `shutdownDelay`) or it stops. Bind it to a
   * private address. Default "" (none).
   */
  adminServer?: string;
  /**
   * Seconds a SIGTERM-ed server keeps accepting and serving with its health check failing
   * (`adminServer`'s `/health`) before it shuts down, so that a load balancer polling it stops
   * sending first; HTTP responses meanwhile end their connections. A second SIGTERM stops it at
   * once; `shutdown()` and the `signal` option do not wait. Default 5 with `adminServer` (a
   * balancer checking every second or two, marking it down after two failures), 0 without.
   */
  shutdownDelay?: number;
  /**
   * As `Deno.serve`'s: the server shuts down (`shutdown()`) when this signal aborts, at once once
   * it listens if it aborted before. Default null.
   */
  signal?: AbortSignal | null;
  /**
   * As `Deno.serve`'s: called once with the bound address (`server.addr`) when the server
   * listens, in the process that called `start()`. Default null.
   */
  onListen?: ((addr: Deno.NetAddr | Deno.UnixAddr) => void) | null;
}

/** How log lines are written (`logFormat`). */
export type LogFormat = "text" | "json";

/** The log levels, least severe first (`logLevel`). */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Swoole's socket types: TCP, UDP, and Unix stream and datagram sockets. */
export type SockType = "tcp" | "udp" | "unix" | "unixDgram";

/** The socket types whose address is a path. */
export function isUnix(sockType: SockType): boolean {
  return sockType === "unix" || sockType === "unixDgram";
}

/** The socket types that carry datagrams (`packet`, `sendto`) rather than sessions. */
export function isDatagram(sockType: SockType): boolean {
  return sockType === "udp" || sockType === "unixDgram";
}

export const sockTypes: readonly SockType[] = ["tcp", "udp", "unix", "unixDgram"];

/** Options after defaults, as the server uses them. */
/** Every option with its value after defaults (`server.options`). */
export type ResolvedOptions = Required<ServerOptions>;

export const defaults: ResolvedOptions = {
  host: "0.0.0.0",
  port: 9501,
  mode: "base",
  sockType: "tcp",
  reactorNum: 0,
  dispatchMode: 2,
  enableUnsafeEvent: false,
  discardTimeoutRequest: false,
  workerNum: 1,
  openEofCheck: false,
  openEofSplit: false,
  packageEof: "",
  openLengthCheck: false,
  packageLengthFunc: null,
  signal: null,
  onListen: null,
  logFormat: "text",
  adminServer: "",
  shutdownDelay: 0,
  packageLengthType: "N",
  packageLengthOffset: 0,
  packageBodyOffset: 0,
  packageMaxLength: 2 * 1024 * 1024,
  openHttpProtocol: false,
  openWebsocketProtocol: false,
  websocketMaxMessageSize: 2 * 1024 * 1024,
  websocketPingInterval: 0,
  closeOnBackpressureLimit: false,
  websocketCompression: false,
  websocketIdleTimeout: 0,
  openWebsocketCloseFrame: false,
  openWebsocketPingFrame: false,
  openWebsocketPongFrame: false,
  httpMaxHeaderSize: 16 * 1024,
  httpMaxHeaders: 100,
  httpMaxRequestTarget: 8 * 1024,
  httpHeaderTimeout: 10,
  httpKeepAliveTimeout: 60,
  httpMinBodyRate: 1024,
  httpMaxPipelined: 32,
  httpCompression: true,
  httpCompressionLevel: 1,
  httpCompressionMinLength: 20,
  httpCompressionTypes: [],
  enableStaticHandler: false,
  documentRoot: "",
  httpIndexFiles: ["index.html"],
  staticHandlerLocations: [],
  uploadTmpDir: "/tmp",
  uploadMaxFilesize: 0,
  heartbeatCheckInterval: 0,
  heartbeatIdleTime: 0,
  maxIdleTime: 0,
  bufferHighWatermark: 0,
  bufferLowWatermark: 0,
  enableDelayReceive: false,
  openProxyProtocol: false,
  tcpDeferAccept: 0,
  tcpFastopen: 0,
  openTcpKeepalive: false,
  tcpKeepidle: 0,
  tcpKeepinterval: 0,
  tcpKeepcount: 0,
  tcpUserTimeout: 0,
  tcpNotsentLowat: -1,
  kernelSocketRecvBufferSize: 0,
  kernelSocketSendBufferSize: 0,
  maxQueuedBytes: 0,
  taskWorkerNum: 0,
  taskMaxRequest: 0,
  maxRequest: 0,
  maxRequestGrace: -1,
  reloadAsync: true,
  pidFile: "",
  logFile: "",
  daemonize: false,
  user: "",
  group: "",
  backlog: 512,
  openTcpNodelay: true,
  enableReusePort: false,
  ipv6Only: false,
  maxConnection: 10_000,
  startSessionId: 0,
  socketBufferSize: 8 * 1024 * 1024,
  maxWaitTime: 3,
  ringSize: 4 * 1024 * 1024,
  borrowedViews: false,
  inlineReactor: true,
  logLevel: "info",
};

const known = new Set(Object.keys(defaults));

/** workerNum and taskWorkerNum: at most this many per CPU. */
const processesPerCpu = 16;

function integer(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(`Option "${name}" must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) {
    throw new RangeError(`Option "${name}" must be from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function boolean(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") {
    throw new TypeError(`Option "${name}" must be a boolean, got ${describe(value)}`);
  }
  return value;
}

/** `enableStaticHandler` and its options; `documentRoot` made absolute. */
function checkStatic(o: ResolvedOptions) {
  boolean("enableStaticHandler", o.enableStaticHandler);
  const list = (
    name: "httpIndexFiles" | "staticHandlerLocations",
    ok: (s: string) => boolean,
    what: string,
  ) => {
    const value: unknown = o[name];
    if (!Array.isArray(value) || !value.every((s) => typeof s === "string" && ok(s))) {
      throw new TypeError(`Option "${name}" must be an array of ${what}, got ${describe(value)}`);
    }
  };
  list("httpIndexFiles", (s) => s !== "" && !s.includes("/") && !s.includes("\n"), "file names");
  list(
    "staticHandlerLocations",
    (s) => s.startsWith("/") && !s.includes("\n"),
    'paths starting with "/"',
  );
  if (typeof o.documentRoot !== "string") {
    throw new TypeError(
      `Option "documentRoot" must be a directory's path, got ${describe(o.documentRoot)}`,
    );
  }
  if (!o.enableStaticHandler) return;
  if (!o.openHttpProtocol) {
    throw new TypeError(
      'Option "enableStaticHandler" needs HTTP (an HttpServer, or "openHttpProtocol")',
    );
  }
  if (o.documentRoot === "") {
    throw new TypeError(
      'Option "enableStaticHandler" needs "documentRoot", the directory to serve',
    );
  }
  if (!o.documentRoot.startsWith("/")) o.documentRoot = `${Deno.cwd()}/${o.documentRoot}`;
}

function describe(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

/** Applies defaults and checks every option; throws TypeError/RangeError naming the option. */
export function resolveOptions(options: ServerOptions = {}): ResolvedOptions {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Server options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new TypeError(`Unknown option "${key}"`);
  }
  const o = { ...defaults, ...withoutUndefined(options) };
  if (typeof o.host !== "string" || o.host.length === 0) {
    throw new TypeError(`Option "host" must be a non-empty string, got ${describe(o.host)}`);
  }
  if (!sockTypes.includes(o.sockType)) {
    throw new RangeError(
      `Option "sockType" must be "tcp", "udp", "unix" or "unixDgram", got ${describe(o.sockType)}`,
    );
  }
  if (isUnix(o.sockType)) {
    if (!o.host.startsWith("/") && !o.host.startsWith(".")) {
      throw new TypeError(
        `Option "host" must be the socket's path with sockType "${o.sockType}", got ${
          describe(o.host)
        }`,
      );
    }
    if (new TextEncoder().encode(o.host).length > 107) {
      throw new RangeError(`Option "host": a Unix socket's path is at most 107 bytes`);
    }
    o.port = 0;
    if (options.enableReusePort) {
      throw new TypeError(`Option "enableReusePort" does not apply to sockType "${o.sockType}"`);
    }
  }
  if (o.host === "localhost") o.host = "127.0.0.1";
  integer("port", o.port, 0, 65535);
  if (o.mode !== "base" && o.mode !== "process") {
    throw new RangeError(`Option "mode" must be "base" or "process", got ${describe(o.mode)}`);
  }
  // Each worker is a Deno process of about 45 MB: like Swoole, a multiple of the CPUs bounds it.
  const processesMax = processesPerCpu * navigator.hardwareConcurrency;
  for (const [name, min] of [["workerNum", 1], ["taskWorkerNum", 0]] as const) {
    if (!Number.isInteger(o[name]) || o[name] < min || o[name] > processesMax) {
      throw new RangeError(
        `Option "${name}" must be from ${min} to ${processesMax} (${processesPerCpu} per CPU; ` +
          `each is a process of about 45 MB), got ${describe(o[name])}`,
      );
    }
  }
  boolean("openEofCheck", o.openEofCheck);
  boolean("openEofSplit", o.openEofSplit);
  boolean("openLengthCheck", o.openLengthCheck);
  if (typeof o.adminServer !== "string") {
    throw new TypeError(`Option "adminServer" must be a string, got ${describe(o.adminServer)}`);
  }
  if (o.adminServer !== "") parseAdminAddress(o.adminServer);
  if (options.shutdownDelay === undefined) o.shutdownDelay = o.adminServer !== "" ? 5 : 0;
  if (typeof o.shutdownDelay !== "number" || !(o.shutdownDelay >= 0) || o.shutdownDelay > 3600) {
    throw new RangeError(
      `Option "shutdownDelay" must be seconds from 0 to 3600, got ${describe(o.shutdownDelay)}`,
    );
  }
  if (o.logFormat !== "text" && o.logFormat !== "json") {
    throw new RangeError(
      `Option "logFormat" must be "text" or "json", got ${describe(o.logFormat)}`,
    );
  }
  if (o.signal !== null && !(o.signal instanceof AbortSignal)) {
    throw new TypeError(
      `Option "signal" must be an AbortSignal or null, got ${describe(o.signal)}`,
    );
  }
  if (o.onListen !== null && typeof o.onListen !== "function") {
    throw new TypeError(
      `Option "onListen" must be a function or null, got ${describe(o.onListen)}`,
    );
  }
  if (o.packageLengthFunc !== null && typeof o.packageLengthFunc !== "function") {
    throw new TypeError(
      `Option "packageLengthFunc" must be a function or null, got ${describe(o.packageLengthFunc)}`,
    );
  }
  if ((o.openEofCheck || o.openEofSplit) && (o.openLengthCheck || o.packageLengthFunc)) {
    throw new TypeError(
      'Options "openEofCheck"/"openEofSplit" and "openLengthCheck"/"packageLengthFunc" exclude each other',
    );
  }
  if (o.packageLengthFunc) o.openLengthCheck = true;
  boolean("openHttpProtocol", o.openHttpProtocol);
  if (o.openHttpProtocol && (o.openEofCheck || o.openEofSplit || o.openLengthCheck)) {
    throw new TypeError(
      'Option "openHttpProtocol" excludes the EOF and length framing options (HTTP frames itself)',
    );
  }
  if (o.openHttpProtocol && isDatagram(o.sockType)) {
    throw new TypeError(`Option "openHttpProtocol" needs a stream socket, not "${o.sockType}"`);
  }
  boolean("openWebsocketProtocol", o.openWebsocketProtocol);
  if (o.openWebsocketProtocol && !o.openHttpProtocol) {
    throw new TypeError(
      'Option "openWebsocketProtocol" needs HTTP (a WebSocketServer, or "openHttpProtocol")',
    );
  }
  integer("websocketMaxMessageSize", o.websocketMaxMessageSize, 1, 2 ** 32 - 1);
  boolean("openWebsocketCloseFrame", o.openWebsocketCloseFrame);
  boolean("openWebsocketPingFrame", o.openWebsocketPingFrame);
  boolean("openWebsocketPongFrame", o.openWebsocketPongFrame);
  boolean("closeOnBackpressureLimit", o.closeOnBackpressureLimit);
  boolean("websocketCompression", o.websocketCompression);
  integer("httpMaxHeaderSize", o.httpMaxHeaderSize, 64, 65535);
  integer("httpMaxHeaders", o.httpMaxHeaders, 1, 256);
  integer("httpMaxRequestTarget", o.httpMaxRequestTarget, 1, 65535);
  integer("httpMinBodyRate", o.httpMinBodyRate, 0, 2 ** 31);
  integer("uploadMaxFilesize", o.uploadMaxFilesize, 0, 2 ** 31);
  integer("httpMaxPipelined", o.httpMaxPipelined, 1, 65536);
  if (typeof o.uploadTmpDir !== "string" || o.uploadTmpDir === "") {
    throw new TypeError(
      `Option "uploadTmpDir" must be a directory's path, got ${describe(o.uploadTmpDir)}`,
    );
  }
  checkStatic(o);
  boolean("httpCompression", o.httpCompression);
  integer("httpCompressionLevel", o.httpCompressionLevel, 1, 9);
  integer("httpCompressionMinLength", o.httpCompressionMinLength, 0, 2 ** 31);
  if (
    !Array.isArray(o.httpCompressionTypes) ||
    !o.httpCompressionTypes.every((s) => typeof s === "string" && /^[\w.+-]+\/[\w.+-]+$/.test(s))
  ) {
    throw new TypeError(
      `Option "httpCompressionTypes" must be an array of content types, got ${
        describe(o.httpCompressionTypes)
      }`,
    );
  }
  for (
    const name of [
      "httpHeaderTimeout",
      "httpKeepAliveTimeout",
      "websocketPingInterval",
      "websocketIdleTimeout",
    ] as const
  ) {
    if (typeof o[name] !== "number" || !(o[name] >= 0) || o[name] > 86400) {
      throw new RangeError(
        `Option "${name}" must be seconds from 0 to 86400, got ${describe(o[name])}`,
      );
    }
  }
  if (o.openEofCheck || o.openEofSplit) {
    const bytes = typeof o.packageEof === "string"
      ? new TextEncoder().encode(o.packageEof).length
      : 0;
    if (bytes < 1 || bytes > 8) {
      throw new RangeError(
        `Option "packageEof" must be 1 to 8 bytes, got ${describe(o.packageEof)}`,
      );
    }
  }
  if (typeof o.packageLengthType !== "string" || !/^[cCsSnNvVlLqQ]$/.test(o.packageLengthType)) {
    throw new RangeError(
      `Option "packageLengthType" must be one of c C s S n N v V l L q Q, got ${
        describe(o.packageLengthType)
      }`,
    );
  }
  integer("packageLengthOffset", o.packageLengthOffset, 0, 65535);
  integer("packageBodyOffset", o.packageBodyOffset, 0, 65535);
  integer("packageMaxLength", o.packageMaxLength, 1, 2 ** 31);
  integer("bufferHighWatermark", o.bufferHighWatermark, 0, 2 ** 31);
  integer("bufferLowWatermark", o.bufferLowWatermark, 0, 2 ** 31);
  if (o.bufferHighWatermark > 0 && o.bufferLowWatermark > o.bufferHighWatermark) {
    throw new RangeError(
      `Option "bufferLowWatermark" (${o.bufferLowWatermark}) must not be above "bufferHighWatermark" (${o.bufferHighWatermark})`,
    );
  }
  boolean("enableDelayReceive", o.enableDelayReceive);
  boolean("openProxyProtocol", o.openProxyProtocol);
  if (o.openProxyProtocol && isDatagram(o.sockType)) {
    throw new TypeError(`Option "openProxyProtocol" needs a stream socket, not "${o.sockType}"`);
  }
  boolean("openTcpKeepalive", o.openTcpKeepalive);
  integer("tcpDeferAccept", o.tcpDeferAccept, 0, 3600);
  integer("tcpFastopen", o.tcpFastopen, 0, 65535);
  integer("tcpKeepidle", o.tcpKeepidle, 0, 32767);
  integer("tcpKeepinterval", o.tcpKeepinterval, 0, 32767);
  integer("tcpKeepcount", o.tcpKeepcount, 0, 127);
  integer("tcpUserTimeout", o.tcpUserTimeout, 0, 2 ** 31 - 1);
  integer("tcpNotsentLowat", o.tcpNotsentLowat, -1, 2 ** 31 - 1);
  integer("kernelSocketRecvBufferSize", o.kernelSocketRecvBufferSize, 0, 2 ** 31 - 1);
  integer("maxQueuedBytes", o.maxQueuedBytes, 0, 2 ** 30);
  integer("kernelSocketSendBufferSize", o.kernelSocketSendBufferSize, 0, 2 ** 31 - 1);
  for (const name of ["heartbeatCheckInterval", "heartbeatIdleTime"] as const) {
    if (typeof o[name] !== "number" || !(o[name] >= 0) || o[name] > 86400) {
      throw new RangeError(
        `Option "${name}" must be seconds from 0 to 86400, got ${describe(o[name])}`,
      );
    }
  }
  if (typeof o.maxIdleTime !== "number" || !(o.maxIdleTime >= 0) || o.maxIdleTime > 86400) {
    throw new RangeError(
      `Option "maxIdleTime" must be seconds from 0 to 86400, got ${describe(o.maxIdleTime)}`,
    );
  }
  if (o.maxIdleTime > 0) {
    if (!o.heartbeatCheckInterval) o.heartbeatCheckInterval = Math.min(1, o.maxIdleTime);
    if (options.heartbeatIdleTime === undefined) o.heartbeatIdleTime = o.maxIdleTime;
  }
  if (options.heartbeatIdleTime === undefined && !(o.maxIdleTime > 0)) {
    o.heartbeatIdleTime = 2 * o.heartbeatCheckInterval;
  }
  // Swoole: an idle time alone checks every half of it.
  if (!o.heartbeatCheckInterval && o.heartbeatIdleTime > 0) {
    o.heartbeatCheckInterval = o.heartbeatIdleTime / 2;
  }
  integer("taskMaxRequest", o.taskMaxRequest, 0, 2 ** 31);
  integer("startSessionId", o.startSessionId, 0, 2 ** 32 - 2);
  integer("maxRequest", o.maxRequest, 0, 2 ** 31);
  // Swoole's rule: a grace only above 10 requests, half of them by default.
  if (options.maxRequestGrace === undefined) {
    o.maxRequestGrace = o.maxRequest > 10 ? Math.floor(o.maxRequest / 2) : 0;
  }
  integer("maxRequestGrace", o.maxRequestGrace, 0, 2 ** 31);
  boolean("reloadAsync", o.reloadAsync);
  for (const name of ["pidFile", "logFile", "user", "group"] as const) {
    if (typeof o[name] !== "string") {
      throw new TypeError(`Option "${name}" must be a string, got ${describe(o[name])}`);
    }
  }
  boolean("daemonize", o.daemonize);
  if (options.reactorNum === undefined) {
    o.reactorNum = Math.max(1, Math.min(navigator.hardwareConcurrency, 8, o.workerNum));
  }
  integer("reactorNum", o.reactorNum, 1, 256);
  if (![1, 2, 3, 4, 5].includes(o.dispatchMode)) {
    const modes = "1 (round-robin), 2 (fd modulo), 3 (idle worker), 4 (client IP hash) or 5 (uid)";
    throw new RangeError(
      Number.isInteger(o.dispatchMode) && o.dispatchMode >= 6 && o.dispatchMode <= 10
        ? `Option "dispatchMode" ${o.dispatchMode} is not supported: use ${modes}`
        : `Option "dispatchMode" must be ${modes}, got ${describe(o.dispatchMode)}`,
    );
  }
  boolean("enableUnsafeEvent", o.enableUnsafeEvent);
  boolean("discardTimeoutRequest", o.discardTimeoutRequest);
  integer("backlog", o.backlog, 1, 65535);
  boolean("openTcpNodelay", o.openTcpNodelay);
  boolean("enableReusePort", o.enableReusePort);
  boolean("ipv6Only", o.ipv6Only);
  integer("maxConnection", o.maxConnection, 1, 1_048_576);
  integer("socketBufferSize", o.socketBufferSize, 1, 2 ** 31);
  if (typeof o.maxWaitTime !== "number" || !(o.maxWaitTime > 0) || o.maxWaitTime > 3600) {
    throw new RangeError(
      `Option "maxWaitTime" must be a number of seconds above 0, at most 3600, got ${
        describe(o.maxWaitTime)
      }`,
    );
  }
  integer("ringSize", o.ringSize, 256 * 1024, 1024 * 1024 * 1024);
  if ((o.ringSize & (o.ringSize - 1)) !== 0) {
    throw new RangeError(`Option "ringSize" must be a power of two, got ${o.ringSize}`);
  }
  boolean("borrowedViews", o.borrowedViews);
  boolean("inlineReactor", o.inlineReactor);
  if (!["debug", "info", "warning", "error"].includes(o.logLevel)) {
    throw new RangeError(
      `Option "logLevel" must be "debug", "info", "warning" or "error", got ${
        describe(o.logLevel)
      }`,
    );
  }
  return o;
}

function withoutUndefined(options: ServerOptions): ServerOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}

/** `host:port`, with an IPv6 host in brackets, as error messages name an address. */
export function formatAddress(host: string, port: number): string {
  if (host.startsWith("/") || host.startsWith(".")) return host;
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `adminServer`'s host and port (`host:port`, `[v6]:port`); throws a RangeError otherwise. */
export function parseAdminAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new RangeError(
      `Option "adminServer" must be "host:port" (e.g. "127.0.0.1:9502"), got "${address}"`,
    );
  }
  return { host: match[1] ?? match[2], port };
}
