/**
 * Peer: a Bun echo server on `Bun.listen` socket handlers.
 *
 *   bun bench/servers/bun_listen.ts [--host 127.0.0.1] [--port 0]
 *
 * Prints `listening <host>:<port>` once bound; exits 0 on SIGTERM or SIGINT.
 *
 * This file is run by Bun, not Deno: `Bun` is declared loosely below so that `deno lint` and
 * `deno fmt` (which the repository runs over bench/) accept it without Bun's type package.
 */
import { parseArgs } from "node:util";
import process from "node:process";

interface BunSocket {
  data: Pending;
  /** Bytes the kernel took: possibly fewer than given, or -1 when the socket is closed. */
  write(data: Uint8Array): number;
}

interface Pending {
  /** Output the socket did not take yet, oldest first; each chunk is our own copy. */
  queue: Uint8Array[];
}

declare const Bun: {
  listen(options: {
    hostname: string;
    port: number;
    socket: {
      open(socket: BunSocket): void;
      data(socket: BunSocket, chunk: Uint8Array): void;
      drain(socket: BunSocket): void;
      error(socket: BunSocket, error: Error): void;
    };
  }): { port: number; stop(closeActiveConnections?: boolean): void };
};

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
  },
});

/** Writes as much of `queue` as the socket takes; returns true when all of it went out. */
function flush(socket: BunSocket): boolean {
  const queue = socket.data.queue;
  while (queue.length > 0) {
    const chunk = queue[0];
    const n = socket.write(chunk);
    if (n < 0) {
      queue.length = 0; // closed: the close handler follows, drop the rest
      return true;
    }
    if (n < chunk.length) {
      queue[0] = chunk.subarray(n);
      return false;
    }
    queue.shift();
  }
  return true;
}

const listener = Bun.listen({
  hostname: values.host,
  port: Number(values.port),
  socket: {
    open(socket) {
      socket.data = { queue: [] };
    },
    data(socket, chunk) {
      const queue = socket.data.queue;
      if (queue.length === 0) {
        const n = socket.write(chunk);
        if (n < 0 || n === chunk.length) return;
        // Bun may reuse `chunk`'s memory after this handler returns: keep a copy of the rest.
        // (`chunk` is a Buffer, whose `slice` is a view, hence `new Uint8Array`.)
        queue.push(new Uint8Array(chunk.subarray(n)));
      } else {
        queue.push(new Uint8Array(chunk)); // queue behind what is already waiting, in order
      }
    },
    drain(socket) {
      flush(socket);
    },
    error() {
      // Reset by the client; Bun closes the socket.
    },
  },
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    listener.stop(true);
    process.exit(0);
  });
}
console.log(`listening ${values.host}:${listener.port}`);
