/**
 * One of the servers behind the load balancer: HTTP on one port, a TCP echo on another, both
 * taking the balancer's PROXY protocol header (so the client's own address is what they see),
 * and the admin listener, whose `GET /health` the balancer polls.
 *
 *   deno run -A examples/load-balancer/server.ts --name s1 --http 8081 --tcp 9081 --admin 9581 \
 *     [--host 127.0.0.1] [--workers 2] [--shutdown-delay 5] [--daemonize --pid-file s1.pid --log-file s1.log]
 *
 * HTTP answers every request with JSON: which server, its pid, and the client's address. The
 * TCP port echoes what it gets; a line "who\n" alone is answered with "NAME IP PORT\n", the
 * client's address as the server sees it.
 *
 * Outside this repository, import `jsr:@ziggurat/server` instead of ../../mod.ts.
 * @module
 */
import { parseArgs } from "node:util";
import { HttpServer } from "../../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    name: { type: "string", default: "s1" },
    host: { type: "string", default: "127.0.0.1" },
    http: { type: "string", default: "8081" },
    tcp: { type: "string", default: "9081" },
    admin: { type: "string", default: "9581" },
    workers: { type: "string", default: "2" },
    "shutdown-delay": { type: "string", default: "5" },
    daemonize: { type: "boolean", default: false },
    "pid-file": { type: "string", default: "" },
    "log-file": { type: "string", default: "" },
  },
});
const name = values.name;

const server = new HttpServer({
  host: values.host,
  port: Number(values.http),
  workerNum: Number(values.workers),
  openProxyProtocol: true,
  adminServer: `${values.host}:${values.admin}`,
  shutdownDelay: Number(values["shutdown-delay"]),
  daemonize: values.daemonize,
  pidFile: values["pid-file"],
  logFile: values["log-file"],
});

server.on("request", (req, res) => {
  res.header("Content-Type", "application/json");
  res.end(JSON.stringify({
    server: name,
    pid: Deno.pid,
    client: `${req.server.remoteAddr}:${req.server.remotePort}`,
  }));
});

const who = new TextEncoder().encode("who\n");
server.listen(values.host, Number(values.tcp)).set({
  openHttpProtocol: false,
  openProxyProtocol: true,
}).on("receive", (s, sessionId, _reactorId, data) => {
  if (data.length === who.length && data.every((b, i) => b === who[i])) {
    const info = s.getClientInfo(sessionId);
    s.send(sessionId, `${name} ${info?.remoteIp} ${info?.remotePort}\n`);
    return;
  }
  s.send(sessionId, data);
});

server.on("start", (s) => {
  console.log(
    `${name} listening: http ${s.host}:${s.port}, tcp ${s.ports[0].port}, admin ${
      s.ports.find((p) => p.admin)?.port
    } (pid ${Deno.pid})`,
  );
});

await server.start();
