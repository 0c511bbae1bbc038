/**
 * Ziggurat: Swoole's `Server` for Deno. A TCP server whose I/O runs in a native core (Zig,
 * loaded with `Deno.dlopen`) and whose application code is ordinary callbacks.
 *
 * Run with `--allow-ffi --allow-env --allow-read` (the core is a shared library).
 *
 * @example Echo server
 * ```ts
 * import { Server } from "@ziggurat/server";
 *
 * const server = new Server({ host: "127.0.0.1", port: 9501 });
 * server.on("receive", (s, sessionId, _reactorId, data) => s.send(sessionId, data));
 * await server.start(); // resolves after server.shutdown() or SIGTERM
 * ```
 * @module
 */

export { Server } from "./src/server.ts";
export { HttpServer } from "./src/http/http_server.ts";
export type { HttpRequest, HttpRequestServer, UploadedFile } from "./src/http/request.ts";
export { HttpResponse } from "./src/http/response.ts";
export type { CookieArgs } from "./src/http/response.ts";
export { serve } from "./src/http/serve.ts";
export { WebSocketServer } from "./src/websocket/websocket_server.ts";
export { upgradeWebSocket } from "./src/websocket/serve_websocket.ts";
export type {
  ServeWebSocket,
  UpgradeWebSocketOptions,
  WebSocketUpgrade,
} from "./src/websocket/serve_websocket.ts";
export type { WebSocketFrame } from "./src/websocket/websocket_frame.ts";
export { CloseCode, FrameFlag, Opcode, WebSocketStatus } from "./src/websocket/frame.ts";
export type {
  ServeHandle,
  ServeHandler,
  ServeHandlerInfo,
  ServeOptions,
} from "./src/http/serve.ts";
export type { PacketInfo, ServerEvent, ServerEvents } from "./src/events.ts";
export type { ClientInfo } from "./src/client_info.ts";
export type { ServerStats } from "./src/stats.ts";
export type { TaskWaitOptions } from "./src/tasks.ts";
export type {
  DispatchMode,
  LogFormat,
  LogLevel,
  Mode,
  ResolvedOptions,
  ServerOptions,
  SockType,
} from "./src/options.ts";
export type { PackageLengthFunc } from "./src/framer.ts";
export { ErrorCode, ZigguratError } from "./src/errors.ts";
export { Port } from "./src/port.ts";
export type { Connections } from "./src/connections.ts";
export type { PortEvent, PortOptions, PortStats } from "./src/port.ts";
