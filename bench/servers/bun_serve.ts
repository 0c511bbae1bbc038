/**
 * Peer: `Bun.serve`, answering `hello` (a POST: its body's length); `/static/…` from the
 * `--root` directory (`Bun.file`).
 *
 *   scripts/bun bench/servers/bun_serve.ts [--host 127.0.0.1] [--port 0] [--root DIR]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM.
 */
import { parseArgs } from "node:util";

declare const Bun: {
  file(path: string): Blob;
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
    root: { type: "string", default: "." },
  },
});
const hello = new TextEncoder().encode("hello");
process.on("SIGTERM", () => process.exit(0));
const server = Bun.serve({
  hostname: values.host!,
  port: Number(values.port),
  async fetch(request) {
    const path = new URL(request.url).pathname;
    // A file as Bun's docs show it (Bun sends it with sendfile).
    if (path.startsWith("/static/")) return new Response(Bun.file(`${values.root}${path}`));
    if (request.method === "POST") {
      return new Response(String((await request.arrayBuffer()).byteLength));
    }
    return new Response(hello);
  },
});
console.log(`listening ${server.hostname}:${server.port}`);
