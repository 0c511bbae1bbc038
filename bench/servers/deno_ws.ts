/**
 * Peer: `Deno.upgradeWebSocket` on `Deno.serve`. Echoes every message; `/sub` sockets join a
 * set (Deno has no publish) and are told "ready"; a text message starting "pub:" is sent to
 * every socket of the set.
 *
 *   deno run --allow-net bench/servers/deno_ws.ts [--host 127.0.0.1] [--port 0]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
  },
});
const room = new Set<WebSocket>();
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
Deno.serve({
  hostname: values.host,
  port: Number(values.port),
  onListen: ({ hostname, port }) => console.log(`listening ${hostname}:${port}`),
}, (request) => {
  const { socket, response } = Deno.upgradeWebSocket(request);
  const subscriber = new URL(request.url).pathname === "/sub";
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    if (!subscriber) return;
    room.add(socket);
    socket.send("ready");
  };
  socket.onclose = () => room.delete(socket);
  socket.onmessage = (e) => {
    if (typeof e.data === "string" && e.data.startsWith("pub:")) {
      for (const s of room) s.send(e.data);
    } else {
      socket.send(e.data);
    }
  };
  return response;
});
