/**
 * Options as the core takes them: the `abi.ServerConfig` and `abi.FramingConfig` structs, the
 * heartbeat's two numbers and the listen flags, written from resolved options (src/options.ts
 * checks them first).
 * @module
 */

import { dispatchUnsafeEvent, framingConfig, layout, ListenFlag, serverConfig } from "./layout.ts";
import { isDatagram, isUnix } from "../options.ts";
import type { ResolvedOptions, SockType } from "../options.ts";

/**
 * The core's `abi.ServerConfig` for these options: `reactorId` names the reactor (the worker id
 * in BASE mode), `sessionStride` how many reactors share the session id space.
 */
export function nativeConfig(
  o: ResolvedOptions,
  reactorId: number,
  sessionStride: number,
): Uint32Array {
  const config = new Uint32Array(layout.serverConfigSize / 4);
  const set = (field: keyof typeof serverConfig, value: number) => {
    config[serverConfig[field] / 4] = value;
  };
  set("maxConnection", o.maxConnection);
  set("socketBufferSize", o.socketBufferSize);
  set("ringBytes", o.ringSize);
  set("maxWaitTimeMs", Math.max(1, Math.round(o.maxWaitTime * 1000)));
  set("reactorId", reactorId);
  set("logLevel", ["debug", "info", "warning", "error"].indexOf(o.logLevel));
  set("sessionStride", sessionStride);
  set("dispatch", o.dispatchMode | (o.enableUnsafeEvent ? dispatchUnsafeEvent : 0));
  set("startSessionId", o.startSessionId);
  return config;
}

/** The core's `abi.FramingConfig` for these options. */
export function nativeFraming(
  o: ResolvedOptions,
  portIdleTime = 0,
  workerHandshake = false,
): Uint8Array {
  const bytes = new Uint8Array(layout.framingConfigSize);
  const u32 = new Uint32Array(bytes.buffer);
  const set = (field: Exclude<keyof typeof framingConfig, "marker">, value: number) => {
    u32[framingConfig[field] / 4] = value;
  };
  const eof = new TextEncoder().encode(o.packageEof);
  set(
    "kind",
    o.openHttpProtocol
      ? 5
      : o.openEofSplit
      ? 1
      : o.openEofCheck
      ? 2
      : o.packageLengthFunc
      ? 4
      : o.openLengthCheck
      ? 3
      : 0,
  );
  set("markerLen", eof.length);
  bytes.set(eof.subarray(0, 8), framingConfig.marker);
  set("lengthType", o.packageLengthType.charCodeAt(0));
  set("lengthOffset", o.packageLengthOffset);
  set("bodyOffset", o.packageBodyOffset);
  set("maxLength", o.packageMaxLength);
  set("highWatermark", o.bufferHighWatermark);
  set("lowWatermark", o.bufferLowWatermark);
  set("delayReceive", o.enableDelayReceive ? 1 : 0);
  set("proxyProtocol", o.openProxyProtocol ? 1 : 0);
  set("keepalive", o.openTcpKeepalive ? 1 : 0);
  set("keepIdle", o.tcpKeepidle);
  set("keepInterval", o.tcpKeepinterval);
  set("keepCount", o.tcpKeepcount);
  set("userTimeoutMs", o.tcpUserTimeout);
  set("notsentLowat", o.tcpNotsentLowat >= 0 ? o.tcpNotsentLowat : o.openHttpProtocol ? 16384 : 0);
  set("recvBuffer", o.kernelSocketRecvBufferSize);
  set("sendBuffer", o.kernelSocketSendBufferSize);
  set("maxQueuedBytes", o.maxQueuedBytes);
  // A port's own heartbeat idle time (the server's goes with the heartbeat call).
  set("heartbeatIdleMs", Math.round(portIdleTime * 1000));
  set("httpMaxHead", o.httpMaxHeaderSize);
  set("httpMaxHeaders", o.httpMaxHeaders);
  set("httpMaxTarget", o.httpMaxRequestTarget);
  set("httpHeaderTimeoutMs", Math.round(o.httpHeaderTimeout * 1000));
  set("httpKeepaliveMs", Math.round(o.httpKeepAliveTimeout * 1000));
  set("httpMinBodyRate", o.httpMinBodyRate);
  set("httpMaxPipelined", o.httpMaxPipelined);
  // (websocket_session.Settings' bits.)
  set(
    "websocket",
    o.openWebsocketProtocol
      ? 1 | (workerHandshake ? 2 : 0) | (o.openWebsocketPingFrame ? 4 : 0) |
        (o.openWebsocketPongFrame ? 8 : 0) | (o.openWebsocketCloseFrame ? 16 : 0) |
        (o.closeOnBackpressureLimit ? 32 : 0) | (o.websocketCompression ? 64 : 0)
      : 0,
  );
  set("websocketMaxMessage", o.websocketMaxMessageSize);
  set("websocketPingMs", Math.round(o.websocketPingInterval * 1000));
  // (Idle: twice the ping interval unless set.)
  const idle = o.websocketIdleTimeout > 0 ? o.websocketIdleTimeout : 2 * o.websocketPingInterval;
  set("websocketIdleMs", Math.round(idle * 1000));
  return bytes;
}

/**
 * The core's heartbeat: the check interval and the server's idle time, in ms. A port may have
 * an idle time of its own (`Port.set`); when only ports have one, the check runs every half of
 * the shortest (at least every second) and the server's own sessions are never idle-closed.
 */
export function heartbeatMs(
  o: ResolvedOptions,
  portIdleTimes: number[],
): { intervalMs: number; idleMs: number } {
  const own = portIdleTimes.filter((t) => t > 0);
  if (o.heartbeatCheckInterval > 0 || own.length === 0) {
    return {
      intervalMs: Math.round(o.heartbeatCheckInterval * 1000),
      idleMs: Math.round(o.heartbeatIdleTime * 1000),
    };
  }
  return {
    intervalMs: Math.max(1, Math.round(Math.min(1, Math.min(...own) / 2) * 1000)),
    idleMs: 0x7fff_ffff,
  };
}

/** The core's listen flags of a socket type (and the server's socket options). */
export function listenFlags(
  sockType: SockType,
  o: Readonly<ResolvedOptions>,
): number {
  return (o.ipv6Only ? ListenFlag.ipv6Only : 0) |
    (o.enableReusePort && sockType === "tcp" ? ListenFlag.reusePort : 0) |
    (o.openTcpNodelay ? ListenFlag.tcpNodelay : 0) |
    (isUnix(sockType) ? ListenFlag.unix : 0) |
    (isDatagram(sockType) ? ListenFlag.udp : 0);
}
