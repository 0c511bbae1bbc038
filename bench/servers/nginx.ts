/**
 * Peer: nginx (Debian's nginx-light), one worker process, `return 200 "hello"` (a POST: its body
 * is read and dropped, and the answer is the same); with `--root DIR`, `/static/` from DIR
 * (sendfile).
 *
 *   deno run -A bench/servers/nginx.ts [--host 127.0.0.1] [--port 0] [--root DIR]
 *
 * nginx cannot bind port 0 and say which it got, so this picks a free port, writes a config in a
 * temporary directory, runs `nginx -g 'daemon off;'` and prints `listening <host>:<port>` once it
 * accepts connections; SIGTERM stops nginx (quickly) and this process.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    root: { type: "string" },
  },
});
let port = Number(values.port);
if (port === 0) {
  const probe = Deno.listen({ hostname: values.host, port: 0 });
  port = probe.addr.port;
  probe.close();
}
const dir = await Deno.makeTempDir({ prefix: "bench-nginx-" });
await Deno.writeTextFile(
  `${dir}/nginx.conf`,
  `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  client_max_body_size 8m;
  client_body_buffer_size 128k;
  keepalive_requests 1000000;
  sendfile on;
  tcp_nopush on;
  server {
    listen ${values.host}:${port} reuseport;
    location / { default_type text/plain; return 200 "hello"; }
${values.root ? `    location /static/ { root ${values.root}; }` : ""}
  }
}
`,
);
const nginx = new Deno.Command("nginx", {
  args: ["-p", dir, "-c", `${dir}/nginx.conf`, "-g", "daemon off;"],
  stdin: "null",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
Deno.addSignalListener("SIGTERM", async () => {
  nginx.kill("SIGTERM");
  await nginx.status;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  Deno.exit(0);
});
for (let i = 0; i < 200; i++) {
  try {
    (await Deno.connect({ hostname: values.host, port })).close();
    console.log(`listening ${values.host}:${port}`);
    break;
  } catch {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
await nginx.status;
