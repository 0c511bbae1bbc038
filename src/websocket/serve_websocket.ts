/**
 * WebSocket in `serve()`, as `Deno.upgradeWebSocket` offers it: the handler calls
 * `upgradeWebSocket(request, { protocol, idleTimeout })` on an upgrade request and returns
 * the `response`; the `socket` is a standard-shaped `WebSocket` (events and `on…` handlers,
 * `send`, `close`, `readyState`, `bufferedAmount`, `binaryType`) over the `WebSocketServer`
 * underneath. Upgrade requests reach the handler through the server's `handshake` callback: a
 * handler that returns the upgrade's response accepts (101), any other response refuses.
 * @module
 */

import type { HttpRequest } from "../http/request.ts";
import type { HttpResponse } from "../http/response.ts";
import type { WebSocketServer } from "./websocket_server.ts";
import { Opcode } from "./frame.ts";
import { WebSocketState } from "../_ffi/layout.ts";
import { deflateAnswer } from "./websocket_layer.ts";
import { contexts } from "../context.ts";
import type { ServerContext } from "../context.ts";
import { ErrorCode } from "../errors.ts";
import type { WebSocketFrame } from "./websocket_frame.ts";

/** `Deno.UpgradeWebSocketOptions`. */
export interface UpgradeWebSocketOptions {
  /** The subprotocol to answer with (one the client offered). */
  protocol?: string;
  /**
   * Seconds without a pong (or anything) from the client before it is closed; the server
   * pings it after half of that. Default 30; 0 turns both off.
   */
  idleTimeout?: number;
}

/** `Deno.WebSocketUpgrade`. */
export interface WebSocketUpgrade {
  /** The connection's socket (a `ServeWebSocket`). */
  socket: WebSocket;
  /** The 101 to return from the handler. */
  response: Response;
}

/** What a request needs to be upgraded: set for the upgrade requests `serve()` hands over. */
interface Pending {
  server: WebSocketServer;
  fd: number;
  url: string;
  upgrade?: { socket: ServeWebSocket; response: Response; protocol: string; idle: number };
}

const pendingOf = new WeakMap<Request, Pending>();

/** The upgrade's response: status 101 (which `new Response` refuses), no body. */
class UpgradeResponse extends Response {
  constructor() {
    super(null, { status: 200 });
  }
  override get status(): number {
    return 101;
  }
  override get ok(): boolean {
    return false;
  }
  override get statusText(): string {
    return "Switching Protocols";
  }
}

/**
 * Upgrades a `serve()` request to a WebSocket; the handler must return `response`. Throws a
 * TypeError for a request that is not a WebSocket upgrade (of this server, not answered yet).
 */
export function upgradeWebSocket(
  request: Request,
  options: UpgradeWebSocketOptions = {},
): WebSocketUpgrade {
  const pending = pendingOf.get(request);
  const o = pending ? contexts.get(pending.server)!.options : undefined;
  if (o?.mode === "process" && o.dispatchMode !== 2 && o.dispatchMode !== 4) {
    throw new TypeError(
      "upgradeWebSocket(): a connection's messages and its close must reach the worker that holds its socket: dispatch mode 2 or 4 in PROCESS mode",
    );
  }
  if (!pending) {
    throw new TypeError(
      "upgradeWebSocket(): not a WebSocket upgrade request of a serve() server (its 'upgrade' header must be 'websocket')",
    );
  }
  if (pending.upgrade) throw new TypeError("upgradeWebSocket(): this request is upgraded already");
  const protocol = options.protocol ?? "";
  if (protocol !== "") {
    const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) =>
      p.trim()
    );
    if (!offered.includes(protocol)) {
      throw new TypeError(
        `upgradeWebSocket(): the client did not offer the protocol "${protocol}"`,
      );
    }
  }
  const idle = options.idleTimeout ?? 30;
  if (typeof idle !== "number" || !(idle >= 0) || idle > 86400) {
    throw new RangeError(`upgradeWebSocket(): idleTimeout is seconds from 0 to 86400, got ${idle}`);
  }
  const socket = new ServeWebSocket(pending.server, pending.fd, pending.url, protocol);
  const response = new UpgradeResponse();
  pending.upgrade = { socket, response, protocol, idle };
  return { socket: socket as unknown as WebSocket, response };
}

/** The sockets of this worker's connections, by fd. */
type Sockets = Map<number, ServeWebSocket>;

/**
 * Sets `server` up for `serve()`'s upgrades: `handshake` runs `answer` (the handler; it marks
 * its `Request` upgradable before the handler sees it), and `open`, `message` and `close`
 * reach each connection's socket. `answer` resolves to the handler's `Response` (or
 * `onError`'s).
 */
export function serveUpgrades(
  server: WebSocketServer,
  answer: (
    req: HttpRequest,
    res: HttpResponse,
    upgradable: (request: Request) => void,
  ) => Promise<Response>,
  write: (response: Response, res: HttpResponse) => Promise<void> | undefined,
) {
  const sockets: Sockets = new Map();
  const opening = new Map<number, ServeWebSocket>();
  server.on("handshake", async (req, res) => {
    let pending: Pending | undefined;
    let marked: Request | undefined;
    const response = await answer(req, res, (request) => {
      marked = request;
      pending = { server, fd: req.fd, url: wsUrl(request.url) };
      pendingOf.set(request, pending);
    });
    if (marked) pendingOf.delete(marked);
    const upgrade = pending?.upgrade;
    if (!upgrade || response !== upgrade.response) {
      // Refused: its response goes out, and the connection ends with it.
      await write(response, res);
      upgrade?.socket.refused();
      return false;
    }
    if (upgrade.protocol !== "") res.header("Sec-WebSocket-Protocol", upgrade.protocol);
    for (const [name, value] of response.headers) res.header(name, value);
    opening.set(req.fd, upgrade.socket);
    server.setIdleTimeout(req.fd, upgrade.idle);
    return true;
  });
  server.on("open", (_s, req) => {
    const socket = opening.get(req.fd);
    opening.delete(req.fd);
    if (!socket) return;
    sockets.set(req.fd, socket);
    socket.opened();
  });
  server.on("message", (_s, frame) => {
    const socket = sockets.get(frame.fd);
    if (socket) return socket.received(frame);
    // A connection whose socket this process does not have (PROCESS mode: a worker that took
    // over from one that left, or a message given to another worker): it cannot be served.
    if (frame.opcode !== Opcode.close) server.disconnect(frame.fd, 1012, "service restart");
  });
  server.on("close", (_s, fd) => {
    opening.delete(fd);
    const socket = sockets.get(fd);
    sockets.delete(fd);
    socket?.ended();
  });
}

function wsUrl(url: string): string {
  return url.replace(/^http/, "ws");
}

const encoder = new TextEncoder();

/** A connection's `WebSocket` in `serve()`. */
export class ServeWebSocket extends EventTarget {
  /** `readyState`: the upgrade is not answered yet. */
  static readonly CONNECTING = 0;
  /** `readyState`: open. */
  static readonly OPEN = 1;
  /** `readyState`: a Close was sent or received. */
  static readonly CLOSING = 2;
  /** `readyState`: the connection has ended. */
  static readonly CLOSED = 3;
  /** `readyState`: the upgrade is not answered yet. */
  readonly CONNECTING = 0;
  /** `readyState`: open. */
  readonly OPEN = 1;
  /** `readyState`: a Close was sent or received. */
  readonly CLOSING = 2;
  /** `readyState`: the connection has ended. */
  readonly CLOSED = 3;

  /** The URL the client asked for (`ws:` or `wss:`). */
  readonly url: string;
  /** The subprotocol chosen ("" when none). */
  readonly protocol: string;
  #extensions = "";
  #readyState = 0;
  #binaryType: BinaryType = "blob";
  #server: WebSocketServer;
  #fd: number;
  /** The peer's Close (code and reason), once it came. */
  #closeFrame: { code: number; reason: string } | undefined;
  /** Sends that wait (for a Blob's bytes, for room in the output), in order, and how many. */
  #queue: Promise<void> | undefined;
  #pending = 0;
  /** Their bytes. */
  #waiting = 0;
  /** `close()` waits behind them. */
  #closing = false;
  /** The Close this side sent, reported when the connection ends (1006: it failed). */
  #sent: { code: number; reason: string } | undefined;
  #ctx: ServerContext;
  #handlers: Record<string, ((event: Event) => void) | null> = {};

  /** @internal `upgradeWebSocket()` makes them. */
  constructor(server: WebSocketServer, fd: number, url: string, protocol: string) {
    super();
    this.#server = server;
    this.#ctx = contexts.get(server)!;
    this.#fd = fd;
    this.url = url;
    this.protocol = protocol;
  }

  /** The extensions negotiated: permessage-deflate's answer with `websocketCompression`. */
  get extensions(): string {
    return this.#extensions;
  }

  /** CONNECTING, OPEN, CLOSING or CLOSED. */
  get readyState(): number {
    return this.#readyState;
  }

  /** How binary messages arrive: `"blob"` (the default) or `"arraybuffer"`. */
  get binaryType(): BinaryType {
    return this.#binaryType;
  }
  set binaryType(type: BinaryType) {
    if (type === "blob" || type === "arraybuffer") this.#binaryType = type;
  }

  /** Bytes sent and not yet written to the connection. */
  get bufferedAmount(): number {
    const queued = this.#readyState === 1
      ? this.#server.getClientInfo(this.#fd)?.sendQueuedBytes ?? 0
      : 0;
    return queued + this.#waiting;
  }

  /** Called once the connection is open. */
  get onopen(): ((event: Event) => void) | null {
    return (this.#handlers.open ?? null) as ((event: Event) => void) | null;
  }
  set onopen(f: ((event: Event) => void) | null) {
    this.#handler("open", f);
  }
  /** Called with each message. */
  get onmessage(): ((event: MessageEvent) => void) | null {
    return (this.#handlers.message ?? null) as ((event: MessageEvent) => void) | null;
  }
  set onmessage(f: ((event: MessageEvent) => void) | null) {
    this.#handler("message", f as ((event: Event) => void) | null);
  }
  /** Called once the connection has ended, with its code and reason. */
  get onclose(): ((event: CloseEvent) => void) | null {
    return (this.#handlers.close ?? null) as ((event: CloseEvent) => void) | null;
  }
  set onclose(f: ((event: CloseEvent) => void) | null) {
    this.#handler("close", f as ((event: Event) => void) | null);
  }
  /** Called when the connection fails. */
  get onerror(): ((event: Event) => void) | null {
    return (this.#handlers.error ?? null) as ((event: Event) => void) | null;
  }
  set onerror(f: ((event: Event) => void) | null) {
    this.#handler("error", f);
  }

  #handler(type: string, f: ((event: Event) => void) | null) {
    const old = this.#handlers[type];
    if (old) this.removeEventListener(type, old);
    this.#handlers[type] = typeof f === "function" ? f : null;
    if (typeof f === "function") this.addEventListener(type, f);
  }

  /**
   * Sends a message: text for a string, binary for bytes or a Blob. Never dropped: what the
   * connection's output cannot take now (`socketBufferSize`), or what waits for a Blob's
   * bytes, waits here in order (`bufferedAmount` counts it).
   */
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void {
    if (this.#readyState === 0) {
      throw new DOMException("the WebSocket is not open yet", "InvalidStateError");
    }
    if (this.#readyState !== 1) return;
    if (data instanceof Blob) {
      this.#waiting += data.size;
      const bytes = data.arrayBuffer();
      // (Its failure is handled in turn, below; not an unhandled rejection meanwhile.)
      bytes.catch(() => {});
      this.#enqueue(async () => {
        this.#waiting -= data.size;
        let buffer: ArrayBuffer;
        try {
          buffer = await bytes;
        } catch {
          // (A Blob that cannot be read: the connection fails, as a browser's would: error,
          // then close with 1006, once it ends.)
          this.#failed(1011, "a Blob could not be read");
          return;
        }
        await this.#push(new Uint8Array(buffer), Opcode.binary);
      });
      return;
    }
    const payload = typeof data === "string"
      ? encoder.encode(data)
      : ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data as ArrayBuffer);
    const opcode = typeof data === "string" ? Opcode.text : Opcode.binary;
    if (this.#queue === undefined && this.#server.push(this.#fd, payload, opcode)) return;
    if (this.#queue === undefined && this.#ctx.lastError !== ErrorCode.outputBufferOverflow) {
      return; // (The connection is gone or closing: nothing more goes out.)
    }
    const copy = payload.slice();
    this.#waiting += copy.length;
    this.#enqueue(async () => {
      this.#waiting -= copy.length;
      await this.#push(copy, opcode);
    });
  }

  /** Runs `step` after the sends that wait; the queue is gone once they are all done. */
  #enqueue(step: () => Promise<void>) {
    this.#pending++;
    const run = async () => {
      try {
        if (this.#readyState === 1 || this.#closing) await step();
      } finally {
        if (--this.#pending === 0) this.#queue = undefined;
      }
    };
    this.#queue = (this.#queue ?? Promise.resolve()).then(run, run);
  }

  /** One message out, waiting for the output to drain while it is full. */
  async #push(payload: Uint8Array, opcode: number) {
    // (Open, or closed by `close()`, which waits behind what was sent before it.)
    while (this.#readyState === 1 || (this.#readyState === 2 && this.#closing)) {
      if (this.#server.push(this.#fd, payload, opcode)) return;
      if (this.#ctx.lastError !== ErrorCode.outputBufferOverflow) return;
      if (!await this.#ctx.sessions.whenDrained(this.#fd)) return;
    }
  }

  /** Starts the closing handshake (code 1000 or 3000–4999, a reason of up to 123 bytes). */
  close(code?: number, reason = ""): void {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw new DOMException(`close code ${code} is not 1000 or 3000-4999`, "InvalidAccessError");
    }
    if (encoder.encode(reason).length > 123) {
      throw new DOMException("the close reason is over 123 bytes", "SyntaxError");
    }
    if (this.#readyState >= 2) return;
    const state = this.#readyState;
    this.#readyState = 2;
    this.#sent = { code: code ?? 1000, reason };
    if (state === 0) return;
    const send = () => void this.#server.disconnect(this.#fd, code ?? 1000, reason);
    if (this.#queue) {
      // (What was sent before goes first.)
      this.#closing = true;
      this.#enqueue(() => Promise.resolve(send()));
    } else send();
  }

  /** The connection fails: a Close with `code`, and the close event as the peer's. */
  #failed(code: number, reason: string) {
    if (this.#readyState >= 2) return;
    this.#readyState = 2;
    this.#sent = { code: 1006, reason: "" };
    this.#server.disconnect(this.#fd, code, reason);
  }

  /** @internal The 101 is on its way. */
  opened() {
    if (this.#readyState !== 0) {
      // Closed before it opened: the Close it asked for goes now.
      this.#server.disconnect(this.#fd, this.#sent?.code ?? 1000, this.#sent?.reason ?? "");
      return;
    }
    this.#readyState = 1;
    const state = this.#ctx.sessions.websocketStatus(this.#fd);
    if (state & WebSocketState.deflate) this.#extensions = deflateAnswer;
    this.dispatchEvent(new Event("open"));
  }

  /** @internal The handler's response was not the upgrade's. */
  refused() {
    this.#readyState = 3;
  }

  /** @internal A message (or the peer's Close). */
  received(frame: WebSocketFrame) {
    if (frame.opcode === Opcode.close) {
      this.#closeFrame = { code: frame.code ?? 1005, reason: frame.reason ?? "" };
      if (this.#readyState === 1) this.#readyState = 2;
      return;
    }
    if (this.#readyState !== 1) return;
    let data: string | ArrayBuffer | Blob;
    if (typeof frame.data === "string") data = frame.data;
    else {
      const bytes = frame.data;
      const buffer = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? bytes.buffer as ArrayBuffer
        : bytes.slice().buffer as ArrayBuffer;
      data = this.#binaryType === "arraybuffer" ? buffer : new Blob([buffer]);
    }
    this.dispatchEvent(new MessageEvent("message", { data, origin: new URL(this.url).origin }));
  }

  /** @internal The connection ended. */
  ended() {
    if (this.#readyState === 3) return;
    // The peer's Close, or (the core ends the connection once its own is written) the one
    // this side sent; neither: the connection just ended (1006).
    const close = this.#closeFrame ?? (this.#sent?.code === 1006 ? undefined : this.#sent);
    this.#readyState = 3;
    if (!close) this.dispatchEvent(new Event("error"));
    this.dispatchEvent(
      new CloseEvent("close", {
        code: close?.code ?? 1006,
        reason: close?.reason ?? "",
        wasClean: close !== undefined,
      }),
    );
  }
}
