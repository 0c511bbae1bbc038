/**
 * The admin listener (`adminServer: "127.0.0.1:9502"`, Swoole's `admin_server`): one more port
 * of the server, speaking HTTP through the core's parser, whose requests the library answers
 * in whichever event worker gets them: `GET /metrics`, the tree's `stats()` for Prometheus
 * (src/admin/metrics.ts), and `GET /health` for load balancers: 200 while the server is in
 * rotation, 503 once it is drained or stops (src/operations/rotation.ts).
 * @module
 */

import type { ServerContext } from "../context.ts";
import type { HttpRequest } from "../http/request.ts";
import type { HttpResponse } from "../http/response.ts";
import { addPort } from "../port.ts";
import { portStats } from "../stats.ts";
import { metricsText } from "./metrics.ts";
import { parseAdminAddress } from "../options.ts";
import { healthOf } from "../operations/rotation.ts";

/** Adds the admin listener to the server's ports (before it starts, in every process alike). */
export function addAdminPort(ctx: ServerContext, address: string): void {
  const { host, port } = parseAdminAddress(address);
  const admin = addPort(ctx.ports, host, port, "tcp", (index) => portStats(ctx, index));
  // (Never the server's PROXY protocol: the admin listener is polled directly.)
  admin.set({ openHttpProtocol: true, openProxyProtocol: false });
  admin.admin = true;
}

/** A request on the admin listener. */
export function answerAdmin(ctx: ServerContext, req: HttpRequest, res: HttpResponse): void {
  const path = req.server.pathInfo;
  if (req.server.requestMethod !== "GET" && req.server.requestMethod !== "HEAD") {
    res.status(405);
    res.header("Allow", "GET, HEAD");
    res.end();
    return;
  }
  if (path === "/metrics") {
    res.header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    res.end(metricsText(ctx));
    return;
  }
  if (path === "/health") {
    const status = healthOf(ctx);
    res.status(status === "ok" ? 200 : 503);
    res.header("Content-Type", "application/json");
    res.header("Cache-Control", "no-store");
    res.end(JSON.stringify({ status }));
    return;
  }
  res.status(404);
  res.header("Content-Type", "text/plain; charset=utf-8");
  res.end("not found: the admin listener answers /metrics and /health\n");
}
