/**
 * Peer: Node's `http` with the npm `ws` package (bench/websocket.ts installs it, pinned, and
 * passes its directory). Echoes every message; `/sub` sockets join a set (`ws` has no publish)
 * and are told "ready"; a text message starting "pub:" is sent to every socket of the set.
 *
 *   node bench/servers/node_ws.mjs --ws DIR [--host 127.0.0.1] [--port 0]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM.
 */
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    ws: { type: "string" },
  },
});
const { WebSocketServer } = createRequire(`${values.ws}/`)("ws");
const room = new Set();
process.on("SIGTERM", () => process.exit(0));
const http = createServer((_req, res) => res.writeHead(400).end("WebSocket only"));
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
wss.on("connection", (socket, request) => {
  if (request.url === "/sub") {
    room.add(socket);
    socket.send("ready");
  }
  socket.on("close", () => room.delete(socket));
  socket.on("message", (data, isBinary) => {
    if (!isBinary && data.length >= 4 && data.toString("latin1", 0, 4) === "pub:") {
      for (const s of room) s.send(data, { binary: false });
    } else {
      socket.send(data, { binary: isBinary });
    }
  });
});
http.listen(Number(values.port), values.host, () => {
  const { address, port } = http.address();
  console.log(`listening ${address}:${port}`);
});
