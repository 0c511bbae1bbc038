/**
 * Memory of a Ziggurat tree: resident memory (RSS) of each process when idle, and what each
 * open connection adds in the process that holds the sockets.
 *
 *   deno run -A bench/memory.ts [--connections 5000] [--mode process|base] [--workers 2]
 *
 * It starts bench/servers/ziggurat_echo.ts, reads every process's RSS from /proc, opens the
 * connections (one echo round trip each, so every session is fully set up), reads RSS again
 * and prints a Markdown table. Kernel socket buffers are not in any process's RSS; they are
 * the same for every server and are left out.
 * @module
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    connections: { type: "string", default: "5000" },
    mode: { type: "string", default: "process" },
    workers: { type: "string", default: "2" },
  },
});
const connections = Number(values.connections);
const root = new URL("..", import.meta.url).pathname;

/** Resident kilobytes of a process (VmRSS). */
function rssKb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

function children(pid: number): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(entry.name));
    } catch {
      // Exited meanwhile.
    }
  }
  return out;
}

const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    `${root}bench/servers/ziggurat_echo.ts`,
    "--mode",
    values.mode!,
    "--workers",
    values.workers!,
    "--reactors",
    "1",
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
let text = "";
while (!text.includes("listening")) {
  const { value, done } = await reader.read();
  if (done) throw new Error("the server exited before listening");
  text += value;
}
const port = Number(/:(\d+)/.exec(text)![1]);
// Raise the fd limit for the client side if the shell's is lower.
const master = server.pid;
const workers = children(master);
// Every worker is up once it answers; an echo round trip on a few connections proves it.
const probe = await Deno.connect({ hostname: "127.0.0.1", port });
await probe.write(new Uint8Array([1]));
await probe.read(new Uint8Array(1));
probe.close();

const before = { master: rssKb(master), workers: workers.map(rssKb) };
const conns: Deno.TcpConn[] = [];
const byte = new Uint8Array(1);
for (let i = 0; i < connections; i++) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(byte);
  await conn.read(byte);
  conns.push(conn);
}
const after = { master: rssKb(master), workers: workers.map(rssKb) };
for (const conn of conns) conn.close();
server.kill("SIGTERM");
await server.status;

const holder = values.mode === "process" ? "master (reactor threads)" : "workers, summed";
const grown = values.mode === "process"
  ? after.master - before.master
  : after.workers.reduce((a, b) => a + b, 0) - before.workers.reduce((a, b) => a + b, 0);
console.log(`| process | idle RSS MiB | RSS MiB with ${connections} connections |`);
console.log("| ------- | -----------: | ---------------: |");
console.log(
  `| master/manager | ${(before.master / 1024).toFixed(1)} | ${(after.master / 1024).toFixed(1)} |`,
);
workers.forEach((_, i) =>
  console.log(
    `| worker ${i} | ${(before.workers[i] / 1024).toFixed(1)} | ${
      (after.workers[i] / 1024).toFixed(1)
    } |`,
  )
);
console.log(
  `\nper open connection in the ${holder}: ${(grown * 1024 / connections).toFixed(0)} bytes`,
);
