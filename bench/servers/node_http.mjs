/**
 * Peer: Node's `http`, answering `hello` (a POST: its body's length); `/static/…` from the
 * `--root` directory (a read stream piped to the response).
 *
 *   node bench/servers/node_http.mjs [--host 127.0.0.1] [--port 0] [--root DIR]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM.
 */
import { createServer } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    root: { type: "string", default: "." },
  },
});
const hello = Buffer.from("hello");
process.on("SIGTERM", () => process.exit(0));
const server = createServer((req, res) => {
  if (req.url.startsWith("/static/")) {
    const path = `${values.root}${req.url}`;
    res.setHeader("content-length", statSync(path).size);
    createReadStream(path).pipe(res);
    return;
  }
  if (req.method === "POST") {
    let length = 0;
    req.on("data", (chunk) => length += chunk.length);
    req.on("end", () => res.end(String(length)));
    return;
  }
  res.end(hello);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), values.host, () => {
  console.log(`listening ${values.host}:${server.address().port}`);
});
