/**
 * `serve()`: the `Deno.serve`-shaped tier over `HttpServer`: a handler from a standard
 * `Request` to a `Response`, and a handle with `addr`, `finished` and `shutdown()`. Every
 * `Server` option applies too (workers, PROCESS mode, task workers …).
 * @module
 */

import type { HttpServer } from "./http_server.ts";
import { WebSocketServer } from "../websocket/websocket_server.ts";
import { serveUpgrades } from "../websocket/serve_websocket.ts";
import type { HttpRequest } from "./request.ts";
import type { HttpResponse } from "./response.ts";
import type { ServerOptions } from "../options.ts";
import { ServeRequest } from "./serve_request.ts";
import { write } from "./serve_response.ts";
import { contexts } from "../context.ts";

/** Where a request came from, and when its response is done (`Deno.ServeHandlerInfo`). */
export interface ServeHandlerInfo {
  /** The client's address. */
  remoteAddr: { transport: "tcp"; hostname: string; port: number };
  /** Resolves once the response has been handed to the connection (or the client left). */
  completed: Promise<void>;
}

/** `Deno.ServeHandler`: a request to its response. */
export type ServeHandler = (
  request: Request,
  info: ServeHandlerInfo,
) => Response | Promise<Response>;

/** `Deno.serve`'s options, and every `Server` option. */
export interface ServeOptions extends Omit<ServerOptions, "host" | "signal" | "onListen"> {
  /** Default "0.0.0.0". */
  hostname?: string;
  /** Default 8000; 0 picks a free one. */
  port?: number;
  /** Aborting it shuts the server down. */
  signal?: AbortSignal;
  /** Runs once, when the server listens. */
  onListen?: (addr: { transport: "tcp"; hostname: string; port: number }) => void;
  /**
   * The response for a handler that threw or rejected. Default: 500, the error logged (rate-
   * limited) and counted in `stats().callbackErrorCount`.
   */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** The handler, when not given as the second argument. */
  handler?: ServeHandler;
}

/** What `serve()` returns (`Deno.HttpServer`). */
export interface ServeHandle extends AsyncDisposable {
  /** The address the server listens on. */
  readonly addr: { transport: "tcp"; hostname: string; port: number };
  /** Resolves once the server has stopped. */
  readonly finished: Promise<void>;
  /** Stops the server gracefully; resolves once it has. */
  shutdown(): Promise<void>;
  /** The `WebSocketServer` underneath (an `HttpServer`). */
  readonly server: WebSocketServer;
}

const serveKeys = ["hostname", "port", "onListen", "onError", "handler"];

/**
 * Serves HTTP/1.1 with a `Request` → `Response` handler, as `Deno.serve` does.
 *
 * @example
 * ```ts
 * import { serve } from "@ziggurat/server";
 *
 * const server = serve({ port: 0 }, (req) => new Response(`hello ${new URL(req.url).pathname}`));
 * await server.shutdown();
 * ```
 */
export function serve(handler: ServeHandler): ServeHandle;
/** `serve(options, handler)`: as `Deno.serve`, the options first. */
export function serve(options: ServeOptions, handler?: ServeHandler): ServeHandle;
export function serve(a: ServeHandler | ServeOptions, b?: ServeHandler): ServeHandle {
  const options: ServeOptions = typeof a === "function" ? {} : a;
  const handler = typeof a === "function" ? a : b ?? options.handler;
  if (typeof handler !== "function") throw new TypeError("serve() needs a handler function");
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (!serveKeys.includes(key)) rest[key] = value;
  }
  // A WebSocket server underneath, for `upgradeWebSocket` (src/websocket/serve_websocket.ts):
  // its Close frames reach the sockets (their code and reason).
  const server = new WebSocketServer({
    ...rest as ServerOptions,
    openWebsocketCloseFrame: true,
    host: options.hostname ?? "0.0.0.0",
    port: options.port ?? 8000,
    // (The server's own: once, in the process that called `start()`.)
    onListen: options.onListen as ServerOptions["onListen"],
  });
  // A reload's successor could not give those sockets back their `WebSocket` objects: a BASE
  // worker's upgraded connections close with it (1001), as on shutdown.
  contexts.get(server)!.carryWebSockets = false;
  // Without `onError`, a failure goes to the server's own handling: logged (rate-limited),
  // counted in `stats().callbackErrorCount`, and answered with 500.
  const onError = options.onError;
  server.on("request", (req, res) => answer(server, handler, onError, req, res));
  serveUpgrades(
    server,
    async (req, res, upgradable) => {
      const exchange = new Exchange(res);
      try {
        const request = requestOf(server, req, exchange);
        upgradable(request);
        let response: Response;
        try {
          response = await handler(request, new ServeInfo(req, exchange));
          if (!(response instanceof Response)) {
            throw new TypeError("the handler must return a Response");
          }
        } catch (error) {
          if (!onError) throw error;
          response = await onError(error);
        }
        return response;
      } finally {
        exchange.finish();
      }
    },
    write,
  );
  const finished = server.start();
  const shutdown = () => server.shutdown();
  return {
    get addr() {
      return { transport: "tcp" as const, hostname: server.host, port: server.port };
    },
    finished,
    shutdown,
    server,
    [Symbol.asyncDispose]: shutdown,
  };
}

/**
 * What one request's `signal` and `info.completed` watch: the client going away. Nothing is
 * watched until one of them is read (a watch, a promise and an `AbortSignal` per request cost
 * more than the rest of a small request's way).
 */
class Exchange {
  #res: HttpResponse;
  #request: ServeRequest | undefined;
  #completed: Promise<void> | undefined;
  #complete: (() => void) | undefined;
  #unwatch: (() => void) | undefined;
  /** The response was handed over (or the client left). */
  done = false;

  constructor(res: HttpResponse) {
    this.#res = res;
  }

  /** The request's `signal` was read. */
  watchFor(request: ServeRequest) {
    this.#request = request;
    this.#watch();
  }

  get completed(): Promise<void> {
    if (this.#completed) return this.#completed;
    if (this.done) return this.#completed = Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#complete = resolve;
    this.#watch();
    return this.#completed = promise;
  }

  #watch() {
    if (this.done || this.#unwatch) return;
    if (!this.#res.isWritable()) {
      // Not writable and not ended: the client went.
      if (!this.#res.finished) this.#gone();
      return;
    }
    this.#unwatch = this.#res.onClose(() => this.#gone());
  }

  #gone() {
    this.#request?.clientGone();
    this.finish();
  }

  finish() {
    this.done = true;
    this.#unwatch?.();
    this.#complete?.();
  }
}

/** A handler's promised `Response` (or `onError`'s), written when it comes. */
async function answerLater(
  result: Promise<Response>,
  onError: ((error: unknown) => Response | Promise<Response>) | undefined,
  res: HttpResponse,
  exchange: Exchange,
): Promise<void> {
  try {
    let response: Response;
    try {
      response = await result;
      if (!(response instanceof Response)) {
        throw new TypeError("the handler must return a Response");
      }
    } catch (error) {
      if (!onError) throw error;
      response = await onError(error);
    }
    await write(response, res);
  } finally {
    exchange.finish();
  }
}

/** `info`: made when read, from the request and its exchange. */
class ServeInfo implements ServeHandlerInfo {
  #req: HttpRequest;
  #exchange: Exchange;
  #remoteAddr: ServeHandlerInfo["remoteAddr"] | undefined;

  constructor(req: HttpRequest, exchange: Exchange) {
    this.#req = req;
    this.#exchange = exchange;
  }

  get remoteAddr(): ServeHandlerInfo["remoteAddr"] {
    if (this.#remoteAddr) return this.#remoteAddr;
    const peer = this.#req.server;
    return this.#remoteAddr = {
      transport: "tcp",
      hostname: peer.remoteAddr,
      port: peer.remotePort,
    };
  }

  get completed(): Promise<void> {
    return this.#exchange.completed;
  }
}

/** The standard `Request` of `req`. */
function requestOf(server: HttpServer, req: HttpRequest, exchange: Exchange): ServeRequest {
  const method = req.getMethod();
  const fields = req.fields(true);
  let host = "";
  for (const [name, value] of fields) {
    if (name === "host") host = value;
  }
  if (host === "") host = `${server.host}:${server.port}`;
  const target = req.url.startsWith("/") ? req.url : `/${req.url}`;
  const body = method === "GET" || method === "HEAD" ? null : req.getContent();
  return new ServeRequest(`http://${host}${target}`, method, fields, body, exchange);
}

/** One request: the handler's `Response` (or `onError`'s) written to `res`; a promise only when something is awaited. */
function answer(
  server: HttpServer,
  handler: ServeHandler,
  onError: ((error: unknown) => Response | Promise<Response>) | undefined,
  req: HttpRequest,
  res: HttpResponse,
): void | Promise<void> {
  const exchange = new Exchange(res);
  let pending: Promise<void> | undefined;
  try {
    const request = requestOf(server, req, exchange);
    const info = new ServeInfo(req, exchange);
    let result: Response | Promise<Response>;
    let fallback = onError;
    try {
      result = handler(request, info);
    } catch (error) {
      if (!onError) throw error;
      // (`onError`'s own failure is not given to it again: it goes to the 500.)
      fallback = undefined;
      result = onError(error);
    }
    if (result instanceof Response) {
      const written = write(result, res);
      if (written) pending = written.finally(() => exchange.finish());
    } else {
      pending = answerLater(result, fallback, res, exchange);
    }
  } finally {
    if (!pending) exchange.finish();
  }
  return pending;
}
