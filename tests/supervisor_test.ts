/**
 * Process supervisors, as systemd drives them: readiness (`NOTIFY_SOCKET`: READY=1 once the
 * server listens, STOPPING=1 when it stops) and socket activation (`LISTEN_FDS`, here from
 * systemd's own `systemd-socket-activate`). Real processes; the test set-up installs the tool.
 */
import assert from "node:assert/strict";
import { readBytes, stopChild, withTimeout } from "./_helpers.ts";
import { TextLineStream } from "./_lines.ts";

const fixture = new URL("./fixtures/server.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

function spawn(command: string, args: string[], env: Record<string, string> = {}) {
  return new Deno.Command(command, {
    args,
    env,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
}

/** The fixture's first event line (its start, with the port it listens on). */
async function started(child: Deno.ChildProcess): Promise<Record<string, unknown>> {
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TextLineStream(),
  ).getReader();
  while (true) {
    const { value, done } = await withTimeout(lines.read(), "the server's start");
    if (done) throw new Error("the server exited before it listened");
    const event = JSON.parse(value);
    if (event.event === "start") {
      lines.releaseLock();
      return event;
    }
  }
}

Deno.test("supervisor: with NOTIFY_SOCKET the master says READY=1 once it listens and STOPPING=1 on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "zg-notify-" });
  const path = `${dir}/notify`;
  const socket = Deno.listenDatagram({ transport: "unixpacket", path });
  try {
    const child = spawn(Deno.execPath(), [
      ...["run", "-A", fixture, JSON.stringify({ workerNum: 2 })],
    ], { NOTIFY_SOCKET: path });
    const [message] = await withTimeout(socket.receive(), "READY=1");
    assert.equal(decoder.decode(message), "READY=1");
    await started(child);
    child.kill("SIGTERM");
    const [stopping] = await withTimeout(socket.receive(), "STOPPING=1");
    assert.equal(decoder.decode(stopping), "STOPPING=1");
    assert.equal((await stopChild(child)).code, 0);
  } finally {
    socket.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("supervisor: systemd-socket-activate's socket (LISTEN_FDS) is taken instead of binding, by one worker and by a tree", async () => {
  for (const workerNum of [1, 2]) {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    // The options say another port: the handed socket wins.
    const child = spawn("systemd-socket-activate", [
      ...["-l", `127.0.0.1:${port}`, "-E", "PATH", "-E", "HOME"],
      ...[Deno.execPath(), "run", "-A", fixture, JSON.stringify({ workerNum, port: 0 })],
    ]);
    try {
      // It says when it listens; the first connection then starts the server (the connection
      // waits in the socket's backlog meanwhile).
      const errors = child.stderr.pipeThrough(new TextDecoderStream()).pipeThrough(
        new TextLineStream(),
      ).getReader();
      while (true) {
        const { value, done } = await withTimeout(errors.read(), "systemd-socket-activate");
        if (done) throw new Error("systemd-socket-activate exited");
        if (/Listening on/.test(value)) break;
      }
      errors.releaseLock();
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const start = await started(child);
      assert.equal(start.port, port, "it listens on the socket it was handed");
      await conn.write(new TextEncoder().encode("activated"));
      assert.equal(decoder.decode(await readBytes(conn, 9)), "activated");
      conn.close();
    } finally {
      const status = await stopChild(child);
      assert.equal(status.code, 0, `workerNum ${workerNum}`);
    }
  }
});
