/**
 * Peer: `Bun.serve`, answering `hello` (a POST: its body's length).
 *
 *   scripts/bun bench/servers/bun_serve.ts [--host 127.0.0.1] [--port 0]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM.
 */
import { parseArgs } from "node:util";

declare const Bun: {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request): Response | Promise<Response>;
  }): { port: number; hostname: string };
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
const hello = new TextEncoder().encode("hello");
process.on("SIGTERM", () => process.exit(0));
const server = Bun.serve({
  hostname: values.host!,
  port: Number(values.port),
  async fetch(request) {
    if (request.method === "POST") {
      return new Response(String((await request.arrayBuffer()).byteLength));
    }
    return new Response(hello);
  },
});
console.log(`listening ${server.hostname}:${server.port}`);
