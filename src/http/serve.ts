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
import { ServeRequest } from "./serve_request.ts";

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
  const { promise: completed, resolve: complete } = Promise.withResolvers<void>();
  let request: ServeRequest | undefined;
  const stopWatching = res.onClose(() => {
    request?.clientGone();
    complete();
  });
  try {
    const method = req.getMethod();
    const fields = req.fields();
    let host = "";
    for (const [name, value] of fields) {
      if (name.length === 4 && name.toLowerCase() === "host") host = value;
    }
    if (host === "") host = `${server.host}:${server.port}`;
    const target = req.url.startsWith("/") ? req.url : `/${req.url}`;
    const body = method === "GET" || method === "HEAD" ? null : req.getContent();
    request = new ServeRequest(`http://${host}${target}`, method, fields, body);
    let remoteAddr: ServeHandlerInfo["remoteAddr"] | undefined;
    const info: ServeHandlerInfo = {
      get remoteAddr() {
        if (remoteAddr) return remoteAddr;
        const peer = req.server;
        return remoteAddr = { transport: "tcp", hostname: peer.remoteAddr, port: peer.remotePort };
      },
      completed,
    };
    let response: Response;
    try {
      response = await handler(request, info);
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

/**
 * Deno keeps a `Response`'s body as it was given (a string or bytes) until it is read, for its
 * own server's fast path, under a symbol of its own. Read there, a one-chunk body costs no
 * stream, no reader and no promise per read (the stream path costs about 12 µs a response).
 * Found by its description on a probe; when this Deno has no such symbol, every body takes the
 * stream path, which works for all of them.
 */
const fastBody = (() => {
  const probe = new Response("");
  const symbols = Object.getOwnPropertySymbols(probe);
  const body = symbols.find((s) => s.description === "serve fast body");
  const consumed = symbols.find((s) => s.description === "serve fast consumed");
  if (!body || !consumed) return undefined;
  return (response: Response): string | Uint8Array | undefined => {
    if (response.bodyUsed) return undefined;
    const record = response as unknown as Record<symbol, unknown>;
    if (record[consumed] !== false) return undefined;
    const value = record[body];
    return typeof value === "string" || value instanceof Uint8Array ? value : undefined;
  };
})();

/** A `Response` on the wire: a body that is one chunk gets a Content-Length, a longer one is chunked. */
async function write(response: Response, res: HttpResponse) {
  // (First: reading `headers` turns the kept body into a stream.)
  const fixed = fastBody?.(response);
  res.status(response.status, response.statusText || undefined);
  for (const [name, value] of response.headers) {
    if (name === "set-cookie") continue;
    res.header(name, value);
  }
  for (const cookie of response.headers.getSetCookie()) res.addSetCookie(cookie);
  if (fixed !== undefined) {
    res.end(fixed);
    return;
  }
  if (!response.body) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  let done = false;
  try {
    const first = await reader.read();
    if (first.done) {
      done = true;
      res.end();
      return;
    }
    let next = await reader.read();
    if (next.done) {
      done = true;
      res.end(first.value);
      return;
    }
    // A stream: chunked, each part as it comes, at the client's pace.
    if (!res.write(first.value)) return;
    while (!next.done) {
      if (!res.write(next.value)) return;
      await res.drained();
      next = await reader.read();
    }
    done = true;
    res.end();
  } finally {
    // A stream the client left early is told so.
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
