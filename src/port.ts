/**
 * A port: one more listening socket of a server (Swoole's `listen` / `addListener`), with its
 * own framing settings and callbacks if it has any; what it has not, it takes from the server.
 * @module
 */

import type { ResolvedOptions, ServerOptions, SockType } from "./options.ts";
import { isUnix, resolveOptions, sockTypes } from "./options.ts";
import type { ServerEvents } from "./events.ts";

/**
 * The settings a port may have of its own (Swoole's port-level ones): framing and the message
 * size limit, the heartbeat's idle time, output watermarks, delayed receive and the options
 * of accepted sockets.
 */
export type PortOptions = Pick<
  ServerOptions,
  | "heartbeatIdleTime"
  | "bufferHighWatermark"
  | "bufferLowWatermark"
  | "enableDelayReceive"
  | "openProxyProtocol"
  | "openTcpNodelay"
  | "openTcpKeepalive"
  | "tcpKeepidle"
  | "tcpKeepinterval"
  | "tcpKeepcount"
  | "tcpUserTimeout"
  | "tcpNotsentLowat"
  | "kernelSocketRecvBufferSize"
  | "kernelSocketSendBufferSize"
  | "openEofCheck"
  | "openEofSplit"
  | "packageEof"
  | "openLengthCheck"
  | "packageLengthFunc"
  | "packageLengthType"
  | "packageLengthOffset"
  | "packageBodyOffset"
  | "packageMaxLength"
  | "openHttpProtocol"
  | "httpMaxHeaderSize"
  | "httpMaxHeaders"
  | "httpMaxRequestTarget"
  | "httpHeaderTimeout"
  | "httpKeepAliveTimeout"
  | "httpMinBodyRate"
  | "httpMaxPipelined"
>;

const portOptionNames: readonly (keyof PortOptions)[] = [
  "heartbeatIdleTime",
  "bufferHighWatermark",
  "bufferLowWatermark",
  "enableDelayReceive",
  "openProxyProtocol",
  "openTcpNodelay",
  "openTcpKeepalive",
  "tcpKeepidle",
  "tcpKeepinterval",
  "tcpKeepcount",
  "tcpUserTimeout",
  "tcpNotsentLowat",
  "kernelSocketRecvBufferSize",
  "kernelSocketSendBufferSize",
  "openEofCheck",
  "openEofSplit",
  "packageEof",
  "openLengthCheck",
  "packageLengthFunc",
  "packageLengthType",
  "packageLengthOffset",
  "packageBodyOffset",
  "packageMaxLength",
  "openHttpProtocol",
  "httpMaxHeaderSize",
  "httpMaxHeaders",
  "httpMaxRequestTarget",
  "httpHeaderTimeout",
  "httpKeepAliveTimeout",
  "httpMinBodyRate",
  "httpMaxPipelined",
];

/** One port's counters across the whole server (`Port.stats()`). */
export interface PortStats {
  /** Sessions open now. */
  connectionNum: number;
  /** Connections accepted since start. */
  acceptCount: number;
  /** Sessions closed since start. */
  closeCount: number;
  /** Sessions that ended by an error or a reset close. */
  abortCount: number;
  /** Connections refused at `maxConnection`. */
  refusedCount: number;
  /** Messages handed to workers (`receive` records, datagrams). */
  dispatchCount: number;
  /** Bytes read from sessions. */
  totalRecvBytes: number;
  /** Bytes written to sessions. */
  totalSendBytes: number;
  /** Sessions closed for a malformed or oversize message. */
  protocolErrorCount: number;
  /** Sessions the heartbeat closed. */
  heartbeatCloseCount: number;
  /** HTTP: requests read (those the reactor answered itself too: static files, refusals). */
  httpRequestCount: number;
  /** HTTP: requests the static handler answered (`enableStaticHandler`): files, 304s, ranges, redirects, refusals. */
  httpStaticCount: number;
  /** HTTP: responses written, by status class (interim `100 Continue` in `http1xxCount`). */
  http1xxCount: number;
  /** HTTP: 2xx responses written. */
  http2xxCount: number;
  /** HTTP: 3xx responses written. */
  http3xxCount: number;
  /** HTTP: 4xx responses written. */
  http4xxCount: number;
  /** HTTP: 5xx responses written. */
  http5xxCount: number;
}

/** The events a port may handle itself. */
export type PortEvent = "connect" | "receive" | "close" | "packet";

/** A listening socket more (`server.listen()`, Swoole's `addListener`): its own address, settings (`set`), callbacks (`on`) and counters (`stats`). */
export class Port {
  /** Its address (a Unix socket's path for the Unix types). */
  readonly host: string;
  /** Its socket type. */
  readonly sockType: SockType;
  /** The index of its listening socket in the server (the main one is 0). */
  readonly index: number;
  #port: number;
  /** Its own settings, merged over the server's when it starts; undefined: the server's. */
  #own: PortOptions | undefined;
  /** Its own callbacks. */
  readonly callbacks: Partial<{ [E in PortEvent]: ServerEvents[E] }> = {};

  #counters: () => PortStats;
  /**
   * The server's admin listener (`adminServer`): its HTTP requests are answered by the library
   * (src/admin/), not by the `request` callback.
   */
  admin = false;

  /** @internal `server.listen()` makes ports. */
  constructor(
    host: string,
    port: number,
    sockType: SockType,
    index: number,
    counters: () => PortStats,
  ) {
    this.#counters = counters;
    this.host = host;
    this.#port = port;
    this.sockType = sockType;
    this.index = index;
  }

  /** The port number (the bound one once the server started, when 0 was asked for). */
  get port(): number {
    return this.#port;
  }

  /** @internal The server sets the bound port. */
  bound(port: number) {
    this.#port = port;
  }

  /**
   * This port's counters, across the whole server (every worker, every reactor thread): its
   * part of `stats()`. After the server stopped, the last ones.
   */
  stats(): PortStats {
    return this.#counters();
  }

  /** Settings of this port alone (see `PortOptions`); checked as the server's are. */
  set(options: PortOptions): this {
    for (const key of Object.keys(options)) {
      if (!portOptionNames.includes(key as keyof PortOptions)) {
        throw new TypeError(`Option "${key}" is not a port's own: set it on the server`);
      }
    }
    const own = { ...this.#own, ...options };
    // Validated as this port's type would be (the PROXY protocol and HTTP need a stream).
    resolveOptions({ ...own, sockType: this.sockType, host: this.host }); // with earlier calls
    this.#own = own;
    return this;
  }

  /** The port's effective options over the server's, or undefined when it has none. */
  optionsOver(server: ResolvedOptions): ResolvedOptions | undefined {
    if (!this.#own) return undefined;
    const base = pick(server);
    // A port that picks a protocol has that one only, not the server's as well.
    const own = this.#own;
    if (
      own.openEofCheck || own.openEofSplit || own.openLengthCheck || own.packageLengthFunc ||
      own.openHttpProtocol !== undefined
    ) {
      base.openEofCheck = base.openEofSplit = base.openLengthCheck = false;
      base.packageLengthFunc = null;
      base.openHttpProtocol = false;
    }
    // A high watermark of its own goes with its own low one (0 unless it set one), not the
    // server's, which may be above it.
    if (own.bufferHighWatermark !== undefined) base.bufferLowWatermark = 0;
    const merged = { ...base, ...own, sockType: server.sockType, host: server.host };
    const resolved = resolveOptions(merged);
    if (!resolved.openHttpProtocol || !server.openWebsocketProtocol) return resolved;
    // An HTTP port of a WebSocket server speaks WebSocket as the server's own socket does.
    const websocket: Partial<ResolvedOptions> = {};
    for (const name of websocketOptionNames) {
      (websocket as Record<string, unknown>)[name] = server[name];
    }
    return resolveOptions({ ...websocket, ...merged });
  }

  /** The heartbeat idle time this port set itself, in seconds (0: the server's). */
  get ownHeartbeatIdleTime(): number {
    return this.#own?.heartbeatIdleTime ?? 0;
  }

  /** A callback for this port alone; the server's handles the events it has none for. */
  on<E extends PortEvent>(event: E, callback: ServerEvents[E]): this {
    if (!["connect", "receive", "close", "packet"].includes(event)) {
      throw new TypeError(`A port handles connect, receive, close and packet, not "${event}"`);
    }
    if (typeof callback !== "function") {
      throw new TypeError(`The callback for "${event}" must be a function`);
    }
    this.callbacks[event] = callback as this["callbacks"][E];
    return this;
  }
}

/** The server's WebSocket options, which its HTTP ports share. */
const websocketOptionNames = [
  "openWebsocketProtocol",
  "websocketMaxMessageSize",
  "openWebsocketCloseFrame",
  "openWebsocketPingFrame",
  "openWebsocketPongFrame",
  "websocketPingInterval",
  "websocketIdleTimeout",
  "closeOnBackpressureLimit",
  "websocketCompression",
] as const;

function pick(o: ResolvedOptions): PortOptions {
  const out: Record<string, unknown> = {};
  for (const name of portOptionNames) out[name] = o[name];
  return out as PortOptions;
}

/** A server has at most this many listening sockets: its own and seven ports. */
const maxPorts = 7;

/**
 * Swoole's `listen(host, port, type)`: checks the address and adds the next port to `ports`
 * (listener `ports.length + 1`), whose counters `counters(index)` reads.
 */
export function addPort(
  ports: Port[],
  host: string,
  port: number,
  sockType: SockType,
  counters: (index: number) => PortStats,
): Port {
  if (typeof host !== "string" || host.length === 0) {
    throw new TypeError(`listen() takes a host, got ${host}`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`listen() takes a port from 0 to 65535, got ${port}`);
  }
  if (!sockTypes.includes(sockType)) {
    throw new RangeError(
      `listen() takes the type "tcp", "udp", "unix" or "unixDgram", got ${sockType}`,
    );
  }
  if (isUnix(sockType) && !host.startsWith("/") && !host.startsWith(".")) {
    throw new TypeError(`listen() takes a socket's path as the host of a "${sockType}" port`);
  }
  if (ports.length >= maxPorts) throw new RangeError("A server has at most 8 ports");
  const index = ports.length + 1;
  const p = new Port(
    host === "localhost" ? "127.0.0.1" : host,
    port,
    sockType,
    index,
    () => counters(index),
  );
  ports.push(p);
  return p;
}

/** Which listeners speak HTTP, by index (0: the server's own socket, then each port's). */
export function httpListeners(o: ResolvedOptions, ports: readonly Port[]): boolean[] {
  return [o.openHttpProtocol, ...ports.map((p) => (p.optionsOver(o) ?? o).openHttpProtocol)];
}
