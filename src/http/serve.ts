/**
 * `serve()`: the `Deno.serve`-shaped tier over `HttpServer`: a handler from a standard
 * `Request` to a `Response`, and a handle with `addr`, `finished` and `shutdown()`. Every
 * `Server` option applies too (workers, PROCESS mode, task workers …).
 * @module
 */

import { HttpServer } from "./http_server.ts";
import type { HttpRequest } from "./request.ts";
import type { HttpResponse } from "./response.ts";
import type { ServerOptions } from "../options.ts";

/** Where a request came from, and when its response is done (`Deno.ServeHandlerInfo`). */
export interface ServeHandlerInfo {
  remoteAddr: { transport: "tcp"; hostname: string; port: number };
  /** Resolves once the response has been handed to the connection (or the client left). */
  completed: Promise<void>;
}

export type ServeHandler = (
  request: Request,
  info: ServeHandlerInfo,
) => Response | Promise<Response>;

/** `Deno.serve`'s options, and every `Server` option. */
export interface ServeOptions extends Omit<ServerOptions, "host"> {
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
  readonly addr: { transport: "tcp"; hostname: string; port: number };
  /** Resolves once the server has stopped. */
  readonly finished: Promise<void>;
  /** Stops the server gracefully; resolves once it has. */
  shutdown(): Promise<void>;
  /** The `HttpServer` underneath. */
  readonly server: HttpServer;
}

const serveKeys = ["hostname", "port", "signal", "onListen", "onError", "handler"];

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
export function serve(options: ServeOptions, handler?: ServeHandler): ServeHandle;
export function serve(a: ServeHandler | ServeOptions, b?: ServeHandler): ServeHandle {
  const options: ServeOptions = typeof a === "function" ? {} : a;
  const handler = typeof a === "function" ? a : b ?? options.handler;
  if (typeof handler !== "function") throw new TypeError("serve() needs a handler function");
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (!serveKeys.includes(key)) rest[key] = value;
  }
  const server = new HttpServer({
    ...rest as ServerOptions,
    host: options.hostname ?? "0.0.0.0",
    port: options.port ?? 8000,
  });
  // Without `onError`, a failure goes to the server's own handling: logged (rate-limited),
  // counted in `stats().callbackErrorCount`, and answered with 500.
  const onError = options.onError;
  server.on("start", (s) => {
    options.onListen?.({ transport: "tcp", hostname: s.host, port: s.port });
  });
  server.on("request", (req, res) => answer(server, handler, onError, req, res));
  const finished = server.start();
  const shutdown = () => {
    server.shutdown();
    return finished;
  };
  options.signal?.addEventListener("abort", () => server.shutdown(), { once: true });
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

/** One request: the handler's `Response` (or `onError`'s) written to `res`. */
async function answer(
  server: HttpServer,
  handler: ServeHandler,
  onError: ((error: unknown) => Response | Promise<Response>) | undefined,
  req: HttpRequest,
  res: HttpResponse,
) {
  const abort = new AbortController();
  const { promise: completed, resolve: complete } = Promise.withResolvers<void>();
  const stopWatching = res.onClose(() => {
    abort.abort(new Error("the client closed the connection"));
    complete();
  });
  try {
    const method = req.getMethod();
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.header)) {
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
    }
    const host = typeof req.header.host === "string"
      ? req.header.host
      : `${server.host}:${server.port}`;
    const target = req.url.startsWith("/") ? req.url : `/${req.url}`;
    const body = method === "GET" || method === "HEAD" ? null : req.getContent();
    const request = new Request(`http://${host}${target}`, {
      method,
      headers,
      body: body as Uint8Array<ArrayBuffer> | null,
      signal: abort.signal,
    });
    const peer = req.server;
    let response: Response;
    try {
      response = await handler(request, {
        remoteAddr: { transport: "tcp", hostname: peer.remoteAddr, port: peer.remotePort },
        completed,
      });
      if (!(response instanceof Response)) {
        throw new TypeError("the handler must return a Response");
      }
    } catch (error) {
      if (!onError) throw error;
      response = await onError(error);
    }
    await write(response, res);
  } finally {
    stopWatching();
    complete();
  }
}

/** A `Response` on the wire: a body that is one chunk gets a Content-Length, a longer one is chunked. */
async function write(response: Response, res: HttpResponse) {
  res.status(response.status, response.statusText || undefined);
  for (const [name, value] of response.headers) {
    if (name === "set-cookie") continue;
    res.header(name, value);
  }
  for (const cookie of response.headers.getSetCookie()) res.addSetCookie(cookie);
  if (!response.body) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  try {
    let first = await reader.read();
    if (first.done) {
      res.end();
      return;
    }
    let next = await reader.read();
    if (next.done) {
      res.end(first.value);
      return;
    }
    // A stream: chunked, each part as it comes (what the client cannot take yet stops it).
    if (!res.write(first.value)) return;
    while (!next.done) {
      if (!res.write(next.value)) return;
      first = next;
      next = await reader.read();
    }
    res.end();
  } finally {
    reader.releaseLock();
    await response.body.cancel().catch(() => {});
  }
}
