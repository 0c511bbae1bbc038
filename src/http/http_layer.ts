/**
 * HTTP on an event worker: each request message from the core (one per request, parsed and
 * whole) becomes an `HttpRequest` and an `HttpResponse` for the `request` callback; responses
 * of one connection go out in the order of their requests, whatever order they end in.
 * @module
 */

import { SendFlag } from "../_ffi/layout.ts";
import { ErrorCode } from "../errors.ts";
import { httpRequest } from "../_ffi/layout.ts";
import type { ServerContext } from "../context.ts";
import type { Sessions } from "../sessions.ts";
import { HttpRequest } from "./request.ts";
import type { RequestPeer } from "./request.ts";
import { HttpResponse } from "./response.ts";
import { removeUploads } from "./multipart.ts";
import type { FilePart, ResponseSink } from "./response.ts";
import type { CompressionSettings } from "./compression.ts";
import { UpgradeFlag, WebSocketLayer } from "../websocket/websocket_layer.ts";
import { answerAdmin } from "../admin/admin_port.ts";
import { Rotation, rotationOf } from "../operations/rotation.ts";

/** A part of a response on its way: bytes, or a file the reactor writes. */
type Part = Uint8Array | FilePart;

/** A part waiting for room in the session's output. */
interface OutItem {
  bytes: Part;
  last: boolean;
  close: boolean;
  status: number;
}

const nothing = new Uint8Array(0);

/** A copy of bytes the caller may reuse (a file part stays as it is). */
const kept = (part: Part): Part => part instanceof Uint8Array ? part.slice() : part;

/** What a connection owes: its requests are numbered; responses go out in that order. */
interface Conn {
  /** The number the next request gets. */
  next: number;
  /** The response being written now. */
  current: number;
  /** Later responses' bytes, held until `current` reaches them. */
  held: Map<number, { parts: Part[]; ended: boolean; close: boolean; status: number }>;
  /** What runs when the connection ends (`HttpResponse.onClose`). */
  onClose: Set<() => void>;
  /**
   * Bytes that did not fit the session's output buffer (`socketBufferSize`), in order; they
   * go as it drains (`#drain`), and everything written meanwhile waits behind them.
   */
  outbox: OutItem[];
  /** The drain of `outbox` under way. */
  draining: Promise<void> | undefined;
  /** Upload files of a response's request, removed when that response ends. */
  uploads: Map<number, string[]> | undefined;
  /** Detached responses not ended yet, oldest first (written by `writeDetached`). */
  detached: number[] | undefined;
  /** `logLevel: "debug"`: each request in hand's line (method, target) and start time. */
  logged: Map<number, { line: string; began: number }> | undefined;
}

export class HttpLayer implements ResponseSink {
  #ctx: ServerContext;
  #sessions: Sessions;
  #conns = new Map<number, Conn>();

  #compression: CompressionSettings | undefined;
  /** The listener speaks WebSocket too (`openWebsocketProtocol`). */
  #websocket: WebSocketLayer | undefined;

  constructor(ctx: ServerContext, sessions: Sessions) {
    this.#ctx = ctx;
    this.#sessions = sessions;
    const o = ctx.options;
    this.#compression = o.httpCompression
      ? {
        level: o.httpCompressionLevel,
        minLength: o.httpCompressionMinLength,
        types: o.httpCompressionTypes.map((type) => type.toLowerCase()),
      }
      : undefined;
    if (o.openWebsocketProtocol) this.#websocket = new WebSocketLayer(ctx);
  }

  /** A WebSocket server with no `request` callback: a plain request is told to upgrade. */
  #notWebSocket = (_request: HttpRequest, response: HttpResponse) => {
    response.status(426);
    response.header("Upgrade", "websocket");
    response.header("Content-Type", "text/plain");
    response.end("This is a WebSocket endpoint: upgrade to WebSocket\n");
  };

  /** An `HttpRequest` of session `fd` outside the request flow (the `open` callback's). */
  #requestOf(fd: number, bytes: Uint8Array): HttpRequest {
    return new HttpRequest(fd, bytes, this.#peerOf(fd));
  }

  /** Where session `fd` comes from, looked up when a request is asked. */
  #peerOf(fd: number): () => RequestPeer {
    const ctx = this.#ctx;
    return () => {
      const info = ctx.server.getClientInfo(fd);
      return {
        remoteAddr: info?.remoteIp ?? "",
        remotePort: info?.remotePort ?? 0,
        serverPort: info?.serverPort ?? ctx.server.port,
      };
    };
  }

  /**
   * Whether `request` keeps nothing of `bytes` past the call but what it copies (a WebSocket
   * message): then the caller may hand over its ring's memory itself.
   */
  copiesOwn(bytes: Uint8Array): boolean {
    return this.#websocket !== undefined && WebSocketLayer.isMessage(bytes);
  }

  /**
   * A request message for session `fd`: the `request` callback; on a WebSocket listener, a
   * message or an upgrade (src/websocket/).
   */
  request(fd: number, bytes: Uint8Array, listener = 0) {
    const ctx = this.#ctx;
    // The admin listener's requests are the library's (src/admin/admin_port.ts).
    const admin = listener > 0 && ctx.ports[listener - 1]?.admin === true;
    const ws = admin ? undefined : this.#websocket;
    let upgrade = 0;
    if (ws) {
      if (WebSocketLayer.isMessage(bytes)) return ws.message(fd, bytes);
      upgrade = WebSocketLayer.upgradeOf(bytes);
      if (upgrade & UpgradeFlag.open) return ws.open(this.#requestOf(fd, bytes));
    }
    let conn = this.#conns.get(fd);
    if (!conn) {
      this.#conns.set(
        fd,
        conn = {
          next: 0,
          current: 0,
          held: new Map(),
          onClose: new Set(),
          outbox: [],
          draining: undefined,
          uploads: undefined,
          detached: undefined,
          logged: undefined,
        },
      );
    }
    const seq = conn.next++;
    const owner = conn;
    const request = new HttpRequest(fd, bytes, this.#peerOf(fd), {
      tmpDir: ctx.options.uploadTmpDir,
      maxFileSize: ctx.options.uploadMaxFilesize,
      written: (paths) => (owner.uploads ??= new Map()).set(seq, paths),
    });
    if (ctx.log.debugging) {
      (conn.logged ??= new Map()).set(seq, {
        line: `${request.getMethod()} ${request.url} ${request.protocol}`,
        began: performance.now(),
      });
    }
    const response = new HttpResponse(fd, seq, this, {
      minor: bytes[httpRequest.minorVersion],
      keepAlive: request.keepAlive,
      head: request.isHead,
      compression: this.#compression,
      fields: request,
    });
    const callback: (req: HttpRequest, res: HttpResponse) => unknown = admin
      ? (req, res) => answerAdmin(ctx, req, res)
      : upgrade
      ? (req, res) => ws!.handshake(req, res, upgrade)
      : ctx.callbacks.events.request ?? this.#notWebSocket;
    const failed = (error: unknown) => {
      ctx.callbacks.failed("request", fd, error);
      // The client hears of it; a response that had begun cannot be finished: the connection
      // ends (after what was sent), so that the requests after it are not held for ever.
      if (response.status(500)) response.end();
      else if (response.isWritable()) this.#sessions.close(fd);
    };
    try {
      const result = callback?.(request, response);
      if (result instanceof Promise) ctx.callbacks.settle(result, failed);
    } catch (error) {
      failed(error);
    }
  }

  /** Session `fd` ended: what it was owed is dropped. */
  closed(fd: number) {
    const conn = this.#conns.get(fd);
    if (!conn) return;
    this.#conns.delete(fd);
    for (const paths of conn.uploads?.values() ?? []) removeUploads(paths);
    for (const callback of conn.onClose) {
      try {
        callback();
      } catch (error) {
        this.#ctx.callbacks.failed("request", fd, error);
      }
    }
  }

  /** Response `seq` of session `fd` was detached: its parts come through `writeDetached`. */
  detach(fd: number, seq: number): boolean {
    const o = this.#ctx.options;
    // Round-robin and idle-worker dispatch: no worker a created response could find.
    if (o.mode === "process" && (o.dispatchMode === 1 || o.dispatchMode === 3)) {
      this.warning(fd, "detach() needs dispatch mode 2, 4 or 5 in PROCESS mode; refused");
      return false;
    }
    const conn = this.#conns.get(fd);
    if (!conn) return false;
    (conn.detached ??= []).push(seq);
    return true;
  }

  /** Whether session `fd` has a detached response still to be written here. */
  detachedOf(fd: number): boolean {
    return (this.#conns.get(fd)?.detached?.length ?? 0) > 0;
  }

  /** A part of session `fd`'s oldest detached response (from `HttpResponse.create`, here or by mail). */
  writeDetached(
    fd: number,
    bytes: Uint8Array,
    last: boolean,
    close: boolean,
    status: number,
  ): boolean {
    const conn = this.#conns.get(fd);
    const seq = conn?.detached?.[0];
    if (conn === undefined || seq === undefined) {
      this.warning(fd, "a part of a detached response came, but none is detached; dropped");
      return false;
    }
    if (last) conn.detached!.shift();
    return this.write(fd, seq, bytes, last, close, status);
  }

  whenClosed(fd: number, callback: () => void): () => void {
    const conn = this.#conns.get(fd);
    if (!conn) return () => {};
    conn.onClose.add(callback);
    return () => {
      conn.onClose.delete(callback);
      this.#forgetIfIdle(fd, conn);
    };
  }

  /**
   * A connection owed nothing (every response ended, no one waiting for its close) is
   * forgotten: its close may go to another worker (round-robin dispatch), and a new request
   * starts it again.
   */
  #forgetIfIdle(fd: number, conn: Conn): boolean {
    if (
      conn.current !== conn.next || conn.held.size > 0 || conn.onClose.size > 0 ||
      conn.outbox.length > 0
    ) {
      return false;
    }
    if (this.#conns.get(fd) === conn) this.#conns.delete(fd);
    return true;
  }

  /**
   * Connections stay open after a response while the server runs, and through a PROCESS-mode
   * worker's own exit (a reload, a recycle: they live in the master and go on with its
   * successor); not when the server shuts down, nor when a BASE worker (whose sessions end
   * with it) stops.
   */
  keepOpen(): boolean {
    const ctx = this.#ctx;
    // (A server that waits out its shutdownDelay ends them too: they would end soon anyway.)
    return (ctx.state === "running" && rotationOf(ctx) !== Rotation.leaving) ||
      (ctx.noReactor && ctx.leaving);
  }

  open(fd: number): boolean {
    return this.#conns.has(fd) && this.#ctx.server.exists(fd);
  }

  warning(fd: number, message: string) {
    this.#ctx.log.warning(`session ${fd}: ${message}`);
  }

  write(
    fd: number,
    seq: number,
    bytes: Part,
    last: boolean,
    close = false,
    status = 0,
  ): boolean {
    const conn = this.#conns.get(fd);
    if (!conn) return false;
    if (last) {
      this.#ctx.counters.httpResponse(status);
      const logged = conn.logged?.get(seq);
      if (logged) {
        conn.logged!.delete(seq);
        const ms = (performance.now() - logged.began).toFixed(1);
        this.#ctx.log.debug(`session ${fd}: ${logged.line} -> ${status} in ${ms} ms`);
      }
    }
    // The response ended: its request's uploads go (unless the handler moved them).
    if (last && conn.uploads?.has(seq)) {
      removeUploads(conn.uploads.get(seq)!);
      conn.uploads.delete(seq);
    }
    if (seq !== conn.current) {
      // An earlier response is still being written: this one waits its turn.
      let held = conn.held.get(seq);
      if (!held) conn.held.set(seq, held = { parts: [], ended: false, close: false, status: 0 });
      if (!(bytes instanceof Uint8Array) || bytes.length > 0) held.parts.push(kept(bytes));
      held.ended ||= last;
      held.close ||= close;
      if (last) held.status = status;
      return true;
    }
    if (!this.#out(fd, conn, bytes, last, close, status)) return false;
    if (!last) return true;
    // The next responses that are ready go now, in order.
    conn.current++;
    if (this.#forgetIfIdle(fd, conn)) return true;
    while (true) {
      const held = conn.held.get(conn.current);
      if (!held) break;
      conn.held.delete(conn.current);
      for (let i = 0; i < held.parts.length; i++) {
        const end = held.ended && i === held.parts.length - 1;
        if (!this.#out(fd, conn, held.parts[i], end, end && held.close, held.status)) return true;
      }
      if (held.parts.length === 0 && held.ended) {
        this.#out(fd, conn, new Uint8Array(0), true, held.close, held.status);
      }
      if (!held.ended) {
        // It goes on writing as the current one.
        break;
      }
      conn.current++;
    }
    // (Every held response went: nothing is owed.)
    this.#forgetIfIdle(fd, conn);
    return true;
  }

  /** Resolves once what session `fd` owes its output buffer has gone (at once when nothing). */
  room(fd: number): Promise<void> {
    return this.#conns.get(fd)?.draining ?? Promise.resolve();
  }

  #out(
    fd: number,
    conn: Conn,
    bytes: Part,
    last: boolean,
    close: boolean,
    status: number,
  ): boolean {
    const item: OutItem = { bytes, last, close, status };
    if (conn.outbox.length > 0) {
      item.bytes = kept(bytes);
      conn.outbox.push(item);
      return true;
    }
    if (this.#sendItem(fd, item)) return true;
    // Over `socketBufferSize` (the client takes less than is written): it waits in order
    // until the output drains.
    if (this.#ctx.lastError === ErrorCode.outputBufferOverflow && this.#ctx.server.exists(fd)) {
      item.bytes = kept(item.bytes);
      conn.outbox.push(item);
      this.#drain(fd, conn);
      return true;
    }
    return false;
  }

  /**
   * Sends a part of a response; its last carries the status (the reactor counts it by class).
   * A file, once queued, leaves the item as the end marker alone, so that a retry (the end
   * found no room) does not send the file again.
   */
  #sendItem(fd: number, item: OutItem): boolean {
    if (!(item.bytes instanceof Uint8Array)) {
      // (The response resolved and sized the file already.)
      const file = item.bytes;
      if (!this.#sessions.queueFile(fd, file.path, file.offset, file.length)) return false;
      item.bytes = nothing;
      if (!item.last) return true;
    }
    const ok = item.last
      ? this.#sessions.send(fd, item.bytes, SendFlag.responseEnd, item.status)
      : this.#sessions.send(fd, item.bytes, SendFlag.responsePart);
    if (ok && item.close) this.#sessions.close(fd);
    return ok;
  }

  #drain(fd: number, conn: Conn) {
    if (conn.draining) return;
    conn.draining = (async () => {
      while (conn.outbox.length > 0) {
        if (!await this.#sessions.whenDrained(fd)) {
          // The session ended: what waited goes with it.
          conn.outbox = [];
          break;
        }
        while (conn.outbox.length > 0) {
          const item = conn.outbox[0];
          if (!this.#sendItem(fd, item)) {
            if (this.#ctx.lastError === ErrorCode.outputBufferOverflow) break;
            conn.outbox = [];
            break;
          }
          conn.outbox.shift();
        }
      }
      conn.draining = undefined;
      this.#forgetIfIdle(fd, conn);
    })();
  }
}
