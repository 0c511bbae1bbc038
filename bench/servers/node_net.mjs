/**
 * Peer: a Node.js echo server on `node:net`.
 *
 *   node bench/servers/node_net.mjs [--host 127.0.0.1] [--port 0]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM or SIGINT.
 */
import net from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
  },
});

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on("data", (chunk) => {
    // `write` queues whatever the kernel does not take at once; stop reading until that queue
    // drains, so a slow client cannot make the server buffer without bound.
    if (!socket.write(chunk)) {
      socket.pause();
      socket.once("drain", () => socket.resume());
    }
  });
  socket.on("error", () => socket.destroy()); // reset by the client: just drop it
});

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
server.listen(Number(values.port), values.host, () => {
  console.log(`listening ${values.host}:${server.address().port}`);
});
