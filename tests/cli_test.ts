/**
 * The command line: every command's output and exit code, a daemon's whole life (start in the
 * background, stats, reload, stop), and log reopening. Real processes.
 */
import assert from "node:assert/strict";
import {
  connect,
  readBytes,
  startFixture,
  until,
  withTimeout,
  workersStarted,
} from "./_helpers.ts";
import type { Fixture } from "./_helpers.ts";
import { TextLineStream } from "./_lines.ts";

import { alive, cli, runCli } from "./_cli.ts";
import { env } from "../src/roles/role.ts";

function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runCli(args);
}

Deno.test("cli: a daemon starts in the background, answers stats and reload, and stop ends it", async () => {
  const dir = await Deno.makeTempDir();
  const pidFile = `${dir}/z.pid`;
  const logFile = `${dir}/z.log`;
  const started = await run(
    "start",
    ...["--daemonize", "--pid-file", pidFile, "--log-file", logFile, "--port", "0"],
    ...["--mode", "process", "--workers", "2", "--task-workers", "1"],
  );
  assert.equal(started.code, 0, started.err);
  const match = /background: pid (\d+), listening on 127\.0\.0\.1:(\d+)/.exec(started.out);
  assert.ok(match, started.out);
  const [pid, port] = [Number(match[1]), Number(match[2])];
  try {
    assert.equal(Deno.readTextFileSync(pidFile).trim(), String(pid));
    // Detached: a session of its own, not a child of the launcher.
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    assert.equal(Number(fields[3]), pid, "it leads its own session");
    const conn = await connect(port);
    await conn.write(new TextEncoder().encode("ping"));
    assert.equal(new TextDecoder().decode(await readBytes(conn, 4)), "ping");
    conn.close();

    const stats = await run("stats", "--json", "--pid-file", pidFile);
    assert.equal(stats.code, 0, stats.err);
    const report = JSON.parse(stats.out);
    assert.equal(report.pid, pid);
    assert.equal(report.stats.workerNum, 2);
    assert.equal(report.stats.taskWorkerNum, 1);
    assert.ok(report.stats.acceptCount >= 1);
    const before = report.processes.map((p: { pid: number }) => p.pid);
    assert.equal(before.length, 3);

    const table = await run("stats", "--pid-file", pidFile);
    assert.equal(table.code, 0);
    assert.match(table.out, /master pid \d+/);
    assert.match(table.out, /workerNum\s+2/);

    const reload = await run("reload", "--pid-file", pidFile);
    assert.equal(reload.code, 0, reload.err);
    assert.match(reload.out, /^reloaded: 2 event workers and 1 task worker replaced in/);
    const now = JSON.parse((await run("stats", "--json", "--pid-file", pidFile)).out);
    assert.ok(
      now.processes.every((p: { pid: number }, i: number) => p.pid > 0 && p.pid !== before[i]),
      "the reload was waited for: every worker is new",
    );
    const noWait = await run("reload", "--task", "--no-wait", "--pid-file", pidFile);
    assert.equal(noWait.code, 0, noWait.err);
    assert.match(noWait.out, /reload of the task workers requested/);

    const stop = await run("stop", "--pid-file", pidFile);
    assert.equal(stop.code, 0, stop.err);
    assert.match(stop.out, new RegExp(`stopped \\(pid ${pid}\\)`));
    assert.ok(!alive(pid));
    assert.throws(() => Deno.statSync(pidFile), "the pid file is removed");
    assert.match(Deno.readTextFileSync(logFile), /SIGTERM: shutting down/);
  } finally {
    if (alive(pid)) Deno.kill(pid, "SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: failures give one line and a non-zero exit code; --help works for every command", async () => {
  const missing = await run("stop", "--pid-file", "/nonexistent/z.pid");
  assert.equal(missing.code, 1);
  assert.equal(
    missing.err.trim(),
    "ziggurat stop: no pid file at /nonexistent/z.pid (is the server running?)",
  );
  for (const name of ["reload", "stats", "restart", "logs"]) {
    const r = await run(name, "--pid-file", "/nonexistent/z.pid");
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`^ziggurat ${name}: no pid file`));
  }
  const stale = await Deno.makeTempFile();
  Deno.writeTextFileSync(stale, "999999999\n");
  const gone = await run("stop", "--pid-file", stale);
  assert.equal(gone.code, 1);
  assert.match(gone.err, /is stale: no running Ziggurat server holds it/);
  await Deno.remove(stale);
  const unknown = await run("bogus");
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /^ziggurat bogus: unknown command "bogus"/);
  const port = await run("start", "--port", "99999");
  assert.equal(port.code, 2);
  assert.match(port.err, /^ziggurat start: --port must be a number from 0 to 65535, got "99999"/);
  for (const name of ["start", "stop", "reload", "stats", "list", "logs", "restart"]) {
    const help = await run(name, "--help");
    assert.equal(help.code, 0);
    assert.match(help.out, new RegExp(`^Usage: ziggurat ${name}`));
  }
  const top = await run("--help");
  assert.equal(top.code, 0);
  assert.match(top.out, /Commands:/);
});

Deno.test("cli: reload on a one-worker server says why not; SIGUSR1 leaves it running", async () => {
  const pidFile = await Deno.makeTempFile();
  await using server = await startFixture({ pidFile });
  const reload = await run("reload", "--pid-file", pidFile);
  assert.equal(reload.code, 1);
  assert.match(reload.err, /runs no worker processes to replace/);
  // A SIGUSR1 anyway is taken and noted: it neither ends the server nor starts Deno's
  // inspector.
  Deno.kill(server.child.pid, "SIGUSR1");
  await server.waitForStderr(/reload asked for, but this server runs no worker processes/);
  assert.doesNotMatch(server.stderr(), /Debugger listening/);
  const conn = await connect(server.port);
  await conn.write(new TextEncoder().encode("ping"));
  assert.equal(new TextDecoder().decode(await readBytes(conn, 4)), "ping");
  conn.close();
});

/**
 * Renames the log as a rotation does and sends SIGRTMIN to the master; every process (the
 * master and two workers) logs its reopening into the new file.
 */
async function rotate(server: Fixture, logFile: string) {
  await Deno.rename(logFile, `${logFile}.1`);
  // SIGRTMIN: Deno has no name for it, so the shell's kill sends it.
  const sent = await new Deno.Command("kill", { args: ["-RTMIN", String(server.child.pid)] })
    .output();
  assert.ok(sent.success);
  await until("three reopen lines in the new file", () => {
    try {
      return (Deno.readTextFileSync(logFile).match(/log file reopened/g) ?? []).length === 3;
    } catch {
      return false;
    }
  });
}

Deno.test("SIGRTMIN while the workers are still in workerStart reopens their log too", async () => {
  const dir = await Deno.makeTempDir();
  const logFile = `${dir}/server.log`;
  try {
    await using server = await startFixture(
      { workerNum: 2, logFile, enableReusePort: true },
      { extra: { slowWorkerStart: 1500 } },
    );
    await workersStarted(server, 2);
    await rotate(server, logFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a renamed log file is reopened on SIGRTMIN, in the master and every worker", async () => {
  const dir = await Deno.makeTempDir();
  const logFile = `${dir}/server.log`;
  try {
    await using server = await startFixture({ workerNum: 2, logFile, enableReusePort: true });
    await workersStarted(server, 2);
    await until("the log file", () => Deno.readTextFileSync(logFile).length >= 0);
    await rotate(server, logFile);
    // And what a worker logs from now on goes there too.
    const conn = await connect(server.port);
    await conn.write(new TextEncoder().encode("!throw\n"));
    await until(
      "the worker's error line",
      () => /deliberate failure in receive/.test(Deno.readTextFileSync(logFile)),
    );
    conn.close();
    assert.doesNotMatch(Deno.readTextFileSync(`${logFile}.1`), /log file reopened/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: --config and --set configure any option (--set over --config over the flags); --version", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = `${dir}/ziggurat.json`;
    // The config asks for 2 workers and port 1; the flag says port 0; --set turns heartbeat on.
    await Deno.writeTextFile(
      config,
      JSON.stringify({ workerNum: 2, port: 1, heartbeatIdleTime: 60 }),
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        ...["run", "-A", cli, "start", "--config", config, "--port", "0"],
        ...["--set", "heartbeatIdleTime=1", "--set", "heartbeatCheckInterval=1"],
      ],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    try {
      const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
        new TextLineStream(),
      ).getReader();
      const banner = (await withTimeout(lines.read(), "the banner")).value ?? "";
      const match = /listening on 127\.0\.0\.1:(\d+) \(pid \d+, 2 worker\(s\)\)/.exec(banner);
      assert.ok(match, banner);
      assert.notEqual(match[1], "1", "the --port flag over the config's port");
      // The heartbeat --set asked for closes an idle connection (EOF), well before the config's.
      const conn = await connect(Number(match[1]));
      const n = await withTimeout(conn.read(new Uint8Array(16)), "the heartbeat's close");
      assert.equal(n, null);
      conn.close();
      lines.releaseLock();
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel();
    }
    const bad = await run("start", "--set", "noSuchOption=1");
    assert.equal(bad.code, 2);
    assert.match(bad.err, /Unknown option "noSuchOption"/);
    const notJson = `${dir}/bad.json`;
    await Deno.writeTextFile(notJson, "[1]");
    const badConfig = await run("start", "--config", notJson);
    assert.equal(badConfig.code, 2);
    assert.match(badConfig.err, /must hold a JSON object/);
    const version = await run("--version");
    assert.equal(version.code, 0);
    const deno = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
    assert.equal(version.out.trim(), `ziggurat ${deno.version}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: a start that is no worker of a tree takes its own options, not ones its environment inherited", async () => {
  // As a `ziggurat start` run from a server's callback would inherit them from its master.
  const inherited = { [env.cliOptions]: JSON.stringify({ host: "127.0.0.1", port: 0 }) };
  const run = await runCli(["start", "--set", "workerNum=-1"], undefined, inherited);
  assert.equal(run.code, 2, run.err);
  assert.match(run.err, /workerNum/);
});
