/**
 * `HttpServer`: Swoole's `Http\Server`, a `Server` whose socket speaks HTTP/1.1 (parsed in the
 * core, docs/http.md): every `Server` option, event and method, plus the `request` callback.
 * @module
 */

import { Server } from "../server.ts";
import type { ServerOptions } from "../options.ts";

/**
 * An HTTP/1.1 server.
 *
 * @example Hello
 * ```ts
 * import { HttpServer } from "@ziggurat/server";
 *
 * const http = new HttpServer({ host: "127.0.0.1", port: 9501 });
 * http.on("request", (req, res) => {
 *   res.header("content-type", "text/plain");
 *   res.end(`hello ${req.get.name ?? "world"}`);
 * });
 * await http.start();
 * ```
 */
export class HttpServer extends Server {
  /** Creates the server (`openHttpProtocol` on); nothing is bound until `start()`. */
  constructor(options: ServerOptions = {}) {
    super({ openHttpProtocol: true, ...options });
  }
}
