/**
 * Peer: `Bun.serve` with `websocket`. Echoes every message; `/sub` sockets subscribe to one
 * topic and are told "ready"; a text message starting "pub:" is `server.publish`ed to it.
 *
 *   scripts/bun bench/servers/bun_ws.ts [--host 127.0.0.1] [--port 0]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM.
 */
import { parseArgs } from "node:util";

interface BunSocket {
  data: { subscriber: boolean };
  send(data: string | Uint8Array): number;
  subscribe(topic: string): void;
}
interface BunServer {
  port: number;
  hostname: string;
  upgrade(request: Request, options: { data: { subscriber: boolean } }): boolean;
  publish(topic: string, data: string | Uint8Array): number;
}
declare const Bun: {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request, server: BunServer): Response | undefined;
    websocket: {
      open(ws: BunSocket): void;
      message(ws: BunSocket, message: string | Uint8Array): void;
    };
  }): BunServer;
};
declare const process: {
  on(signal: string, f: () => void): void;
  exit(code: number): never;
  argv: string[];
};

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
  },
});
process.on("SIGTERM", () => process.exit(0));
const server = Bun.serve({
  hostname: values.host!,
  port: Number(values.port),
  fetch(request, server) {
    const subscriber = new URL(request.url).pathname === "/sub";
    if (server.upgrade(request, { data: { subscriber } })) return undefined;
    return new Response("WebSocket only", { status: 400 });
  },
  websocket: {
    open(ws) {
      if (!ws.data.subscriber) return;
      ws.subscribe("room");
      ws.send("ready");
    },
    message(ws, message) {
      if (typeof message === "string" && message.startsWith("pub:")) {
        server.publish("room", message);
      } else {
        ws.send(message);
      }
    },
  },
});
console.log(`listening ${server.hostname}:${server.port}`);
