/**
 * Operating servers from the command line as pm2 users do: `list`, `stats` of any server,
 * a `reload` that waits and keeps the options, `logs` (and `-f`), `restart`. Real daemons in a
 * directory of their own.
 */
import assert from "node:assert/strict";
import { connect, readBytes, startFixture, until, withTimeout } from "./_helpers.ts";
import { TextLineStream } from "./_lines.ts";
import { setting } from "../src/cli/start.ts";
import type { ServerReport } from "../src/cli/report.ts";

import { alive, cli, cliEnv, runCli } from "./_cli.ts";
const decoder = new TextDecoder();

function run(
  cwd: string,
  ...args: string[]
): Promise<{ code: number; out: string; err: string }> {
  return runCli(args, cwd);
}

/** The app: every line gets back the server's packageEof and the worker's pid, as JSON. */
const app = `export default (server) => {
  server.on("receive", (s, id) => {
    s.send(id, JSON.stringify({ eof: s.options.packageEof, pid: Deno.pid }) + "\\n");
  });
};
`;

/** One message, whichever of the two markers ends it ("\n" or "|"): the app's answer. */
async function ask(port: number): Promise<{ eof: string; pid: number }> {
  const conn = await connect(port);
  try {
    await conn.write(new TextEncoder().encode("hello\n|"));
    let text = "";
    while (!text.endsWith("\n")) {
      text += decoder.decode(await withTimeout(readBytes(conn, 1), "the app's answer"));
    }
    return JSON.parse(text);
  } finally {
    conn.close();
  }
}

Deno.test("cli operations: list, stats by status name, a reload that waits and keeps the options, logs and logs -f, restart that reads the config anew", async () => {
  const dir = Deno.realPathSync(await Deno.makeTempDir());
  const config = `${dir}/ziggurat.json`;
  const writeConfig = (eof: string) =>
    Deno.writeTextFileSync(
      config,
      JSON.stringify({ workerNum: 2, port: 0, openEofSplit: true, packageEof: eof }),
    );
  writeConfig("\n");
  Deno.writeTextFileSync(`${dir}/app.ts`, app);
  let pid = 0;
  try {
    const started = await run(
      dir,
      ...["start", "app.ts", "--config", config, "--daemonize", "--log-file", "z.log"],
    );
    assert.equal(started.code, 0, started.err);
    const match = /background: pid (\d+), listening on 127\.0\.0\.1:(\d+)/.exec(started.out);
    assert.ok(match, started.out);
    pid = Number(match[1]);
    let port = Number(match[2]);

    // list: this directory's servers; another directory's list has none of it but --all.
    const listed = await run(dir, "list");
    assert.equal(listed.code, 0, listed.err);
    assert.match(
      listed.out,
      new RegExp(`^${pid}\\s+\\S+\\s+2/0/0\\s+.*tcp 127\\.0\\.0\\.1:${port}`, "m"),
    );
    const json = JSON.parse((await run(dir, "list", "--json")).out);
    assert.equal(json.length, 1);
    assert.equal(json[0].pid, pid);
    assert.equal(json[0].pidFile, `${dir}/ziggurat.pid`);
    assert.equal(json[0].logFile, `${dir}/z.log`);
    assert.deepEqual(json[0].workers, { event: 2, task: 0, process: 0 });
    assert.deepEqual(json[0].listening, [`tcp 127.0.0.1:${port}`]);
    assert.match(json[0].command, /app\.ts --config/);
    assert.ok(json[0].memoryBytes > 1024 * 1024);
    const elsewhere = JSON.parse((await run("/", "list", "--json")).out);
    assert.ok(!elsewhere.some((s: { pid: number }) => s.pid === pid));
    const all = JSON.parse((await run("/", "list", "--all", "--json")).out);
    assert.ok(all.some((s: { pid: number }) => s.pid === pid));

    // stats: statuses by name, uptimes for people.
    const before = await ask(port);
    assert.equal(before.eof, "\n");
    const report = JSON.parse((await run(dir, "stats", "--json")).out);
    assert.equal(report.kind, "tree");
    assert.match(report.uptime, /^\d+s$/);
    assert.deepEqual(report.processes.map((p: { status: string }) => p.status), ["idle", "idle"]);
    assert.ok(report.processes.every((p: { uptime: string }) => /^\d+s$/.test(p.uptime)));
    const oldPids = report.processes.map((p: { pid: number }) => p.pid);

    // A line in the log (a reopening, in all three processes), for logs -f to start from.
    const rtmin = await new Deno.Command("kill", { args: ["-RTMIN", String(pid)] }).output();
    assert.ok(rtmin.success);
    await until(
      "three reopen lines",
      () => (Deno.readTextFileSync(`${dir}/z.log`).match(/log file reopened/g) ?? []).length === 3,
    );
    // logs -f from now on, while the config changes and a reload runs.
    const follow = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, "logs", "-f", "--lines", "1"],
      cwd: dir,
      env: cliEnv(),
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    const followed = follow.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
      new TextLineStream(),
    ).getReader();
    // Its first line (the log's last so far) says it reads: what comes next, it follows.
    assert.ok(!(await withTimeout(followed.read(), "logs -f's first line")).done);
    writeConfig("|");
    const reload = await run(dir, "reload");
    assert.equal(reload.code, 0, reload.err);
    assert.match(
      reload.out,
      new RegExp(`^reloaded: 2 event workers replaced in [\\d.]+ s \\(pid ${pid}\\)`),
    );
    // Waited for: every worker is new and ready now.
    const after = JSON.parse((await run(dir, "stats", "--json")).out);
    for (const [i, p] of after.processes.entries()) {
      assert.notEqual(p.pid, oldPids[i]);
      assert.ok(p.status === "idle" || p.status === "busy", p.status);
    }
    const reloaded = await ask(port);
    assert.equal(reloaded.eof, "\n", "a reload keeps the options the server started with");
    assert.ok(!oldPids.includes(reloaded.pid));
    await withTimeout(
      (async () => {
        for (;;) {
          const { value, done } = await followed.read();
          assert.ok(!done, "logs -f ended early");
          if (/reload done/.test(value)) return;
        }
      })(),
      "logs -f showing the reload",
    );
    // A rotation as logrotate does it: renamed, then the server told to reopen. logs -f reads
    // the renamed file to its end and then the new one; it never prints the old lines again.
    await Deno.rename(`${dir}/z.log`, `${dir}/z.log.1`);
    const reopen = await new Deno.Command("kill", { args: ["-RTMIN", String(pid)] }).output();
    assert.ok(reopen.success);
    const seen: string[] = [];
    await withTimeout(
      (async () => {
        let reopened = 0;
        while (reopened < 3) {
          const { value, done } = await followed.read();
          assert.ok(!done, "logs -f ended early");
          seen.push(value);
          assert.doesNotMatch(value, /reload done/, "logs -f printed the rotated file again");
          if (/log file reopened/.test(value)) reopened++;
        }
      })(),
      "logs -f following the rotation",
    ).catch((error) => {
      const text = (name: string) => {
        try {
          return Deno.readTextFileSync(`${dir}/${name}`);
        } catch (e) {
          return String(e);
        }
      };
      throw new Error(
        `${error.message}\nlogs -f printed:\n${seen.join("\n")}\nz.log:\n${
          text("z.log")
        }\nz.log.1 (end):\n${text("z.log.1").slice(-2000)}`,
      );
    });
    const tail = await run(dir, "logs", "--lines", "1");
    assert.equal(tail.code, 0, tail.err);
    assert.equal(tail.out.split("\n").filter(Boolean).length, 1);

    // restart: a new master, the config read anew.
    const restarted = await run(dir, "restart");
    assert.equal(restarted.code, 0, restarted.err);
    const again = /restarted: pid (\d+) stopped, pid (\d+) runs/.exec(restarted.out);
    assert.ok(again, restarted.out);
    assert.equal(Number(again[1]), pid);
    assert.ok(!alive(pid));
    // logs -f saw its server go, and ended.
    assert.equal((await withTimeout(follow.status, "logs -f to end")).code, 0);
    followed.releaseLock();
    await follow.stdout.cancel().catch(() => {});
    await follow.stderr.cancel();
    pid = Number(again[2]);
    port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(restarted.out)![1]);
    assert.equal((await ask(port)).eof, "|", "a restart reads the config again");

    const stop = await run(dir, "stop");
    assert.equal(stop.code, 0, stop.err);
    assert.ok(!alive(pid));
    assert.equal((await run(dir, "list", "--json")).out.trim(), "[]");
  } finally {
    if (pid > 0 && alive(pid)) Deno.kill(pid, "SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli operations: stats of a one-worker server, read from its channel; restart and logs say why not for a foreground one", async () => {
  const pidFile = await Deno.makeTempFile();
  await using server = await startFixture({ pidFile });
  const conn = await connect(server.port);
  await conn.write(new TextEncoder().encode("ping"));
  assert.equal(decoder.decode(await readBytes(conn, 4)), "ping");
  let report = {} as ServerReport;
  // The counters are published once the batch ends: right after the echo.
  await until("the echo counted", async () => {
    report = JSON.parse((await run("/", "stats", "--json", "--pid-file", pidFile)).out);
    return report.stats.requestCount >= 1;
  });
  conn.close();
  assert.equal(report.kind, "single");
  assert.equal(report.pid, server.child.pid);
  assert.equal(report.stats.workerNum, 1);
  assert.ok(report.stats.acceptCount >= 1);
  assert.ok(report.stats.totalRecvBytes >= 4);
  assert.ok(report.stats.responseCount >= 1);
  assert.deepEqual(
    report.processes.map((p: { pid: number; type: string }) => [p.type, p.pid]),
    [["event", server.child.pid]],
  );
  const table = await run("/", "stats", "--pid", String(server.child.pid));
  assert.equal(table.code, 0, table.err);
  assert.match(table.out, /acceptCount\s+\d+/);
  const restart = await run("/", "restart", "--pid-file", pidFile);
  assert.equal(restart.code, 1);
  assert.match(restart.err, /runs in the foreground/);
  const logs = await run("/", "logs", "--pid-file", pidFile);
  assert.equal(logs.code, 1);
  assert.match(logs.err, /logs to its stderr, not to a file/);
  const notOurs = await run("/", "stats", "--pid", "1");
  assert.equal(notOurs.code, 1);
  assert.match(notOurs.err, /pid 1 is no running Ziggurat server's master/);
  assert.ok(alive(server.child.pid), "none of it touched the server");
  await Deno.remove(pidFile);
});

Deno.test("cli operations: --set takes a string option's value as it is, JSON for the others", () => {
  assert.deepEqual(setting("user=1000"), ["user", "1000"]);
  assert.deepEqual(setting("packageEof=0"), ["packageEof", "0"]);
  assert.deepEqual(setting('packageEof="\\r\\n"'), ["packageEof", "\r\n"]);
  assert.deepEqual(setting("workerNum=4"), ["workerNum", 4]);
  assert.deepEqual(setting("openEofSplit=true"), ["openEofSplit", true]);
  assert.deepEqual(setting('httpIndexFiles=["a.html"]'), ["httpIndexFiles", ["a.html"]]);
  assert.deepEqual(
    setting("workerNum=four"),
    ["workerNum", "four"],
    "left for the check to refuse",
  );
  assert.throws(() => setting("packageLengthFunc=1"), /set it in code/);
  assert.throws(() => setting("=1"), /NAME=VALUE/);
});
