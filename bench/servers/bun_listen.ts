/**
 * Peer: a Bun echo server on `Bun.listen` socket handlers.
 *
 *   bun bench/servers/bun_listen.ts [--host 127.0.0.1] [--port 0] [--workers N]
 *
 * Prints `listening <host>:<port>` once bound (with `--workers`, once every process is);
 * exits 0 on SIGTERM or SIGINT. `--workers N` runs N processes on one port with SO_REUSEPORT:
 * this one and N - 1 copies of it (the peer of Ziggurat's BASE mode with several workers).
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
    reusePort?: boolean;
  }): { port: number; stop(closeActiveConnections?: boolean): void };
  spawn(
    command: string[],
    options: { stdout: "pipe"; stderr: "inherit"; stdin: "ignore" },
  ): { stdout: ReadableStream<Uint8Array>; kill(signal?: number): void };
  argv: string[];
};

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    workers: { type: "string", default: "1" },
    // Internal: a copy started by the first process.
    child: { type: "boolean", default: false },
  },
});
const workers = Number(values.workers);

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
  reusePort: workers > 1 || values.child,
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

const children: { kill(signal?: number): void }[] = [];
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    for (const child of children) child.kill(15);
    listener.stop(true);
    process.exit(0);
  });
}
// The copies bind the port this process got; each says when it listens.
for (let i = 1; i < workers && !values.child; i++) {
  const child = Bun.spawn(
    [
      process.execPath,
      Bun.argv[1],
      "--host",
      values.host!,
      "--port",
      String(listener.port),
      "--child",
    ],
    { stdout: "pipe", stderr: "inherit", stdin: "ignore" },
  );
  children.push(child);
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  if (!value || !new TextDecoder().decode(value).startsWith("listening")) {
    throw new Error("a copy of the Bun server failed to start");
  }
}
console.log(`listening ${values.host}:${listener.port}`);
