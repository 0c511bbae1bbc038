/**
 * Ziggurat's `WebSocketServer` for bench/websocket.ts: echoes every message (same opcode);
 * `/sub` connections are subscribed to one topic in `open` and told "ready"; a text message
 * starting "pub:" is published to that topic.
 *
 *   deno run -A bench/servers/ziggurat_ws.ts [--host 127.0.0.1] [--port 0] [--mode base|process]
 *                                            [--workers N] [--reactors N]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM.
 */
import { parseArgs } from "node:util";
import { WebSocketServer } from "../../mod.ts";
import type { Mode } from "../../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    mode: { type: "string", default: "base" },
    workers: { type: "string", default: "1" },
    reactors: { type: "string" },
  },
});
const server = new WebSocketServer({
  host: values.host,
  port: Number(values.port),
  mode: values.mode as Mode,
  workerNum: Number(values.workers),
  ...(values.reactors ? { reactorNum: Number(values.reactors) } : {}),
  maxConnection: 12_000,
  logLevel: "warning",
});
server.on("start", (s) => console.log(`listening ${s.host}:${s.port}`));
server.on("open", (s, req) => {
  if (req.server.pathInfo !== "/sub") return;
  const ws = s as WebSocketServer;
  ws.subscribe(req.fd, "room");
  ws.push(req.fd, "ready");
});
server.on("message", (s, frame) => {
  const ws = s as WebSocketServer;
  if (typeof frame.data === "string" && frame.data.startsWith("pub:")) {
    ws.publish("room", frame.data);
  } else {
    ws.push(frame.fd, frame.data, frame.opcode);
  }
});
await server.start();
