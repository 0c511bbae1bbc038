/**
 * The files a server writes (logFile, pidFile): never through a symbolic link, the pid file
 * whole and 0644, refused while a running server holds it, replaced when stale, and a start
 * that cannot write it fails before anything listens. Real processes.
 */
import assert from "node:assert/strict";
import { startFixture, withTimeout } from "./_helpers.ts";
import { treeModes } from "./_helpers.ts";

const cli = new URL("../cli.ts", import.meta.url).pathname;

/** Starting the fixture must fail; returns its stderr. */
async function startFails(options: Record<string, unknown>): Promise<string> {
  const error = await startFixture(options).then(
    async (server) => {
      await server[Symbol.asyncDispose]();
      return undefined;
    },
    (error: Error) => error,
  );
  assert.ok(error, "the server did not start");
  assert.doesNotMatch(error.message, /"event":"start"/);
  return error.message;
}

/** A root-owned 0600 file with known bytes, and a symbolic link to it. */
async function linkedSecret(dir: string): Promise<{ target: string; link: string }> {
  const target = `${dir}/secret`;
  Deno.writeTextFileSync(target, "secret\n", { mode: 0o600 });
  const link = `${dir}/link`;
  await Deno.symlink(target, link);
  return { target, link };
}

function assertUntouched(target: string) {
  assert.equal(Deno.readTextFileSync(target), "secret\n");
  const stat = Deno.statSync(target);
  assert.equal(stat.mode! & 0o777, 0o600);
  assert.equal(stat.uid, Deno.uid());
}

for (const [name, options] of treeModes) {
  Deno.test(`files (${name}): a logFile or pidFile that is a symbolic link fails start(); its target is untouched`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const { target, link } = await linkedSecret(dir);
      const user = Deno.uid() === 0 ? { user: "nobody" } : {};
      const log = await startFails({ ...options, ...user, logFile: link });
      assert.match(log, /Cannot open the log file ".*link": it is a symbolic link/);
      assertUntouched(target);
      const pid = await startFails({ ...options, ...user, pidFile: link });
      assert.match(pid, /Cannot write the pid file ".*link": it is a symbolic link/);
      assertUntouched(target);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("files: a pid file in a missing directory fails start() before anything listens", async () => {
  const message = await startFails({ pidFile: "/nonexistent-dir/z.pid" });
  assert.match(message, /Cannot write the pid file "\/nonexistent-dir\/z.pid": not found/);
  const log = await startFails({ logFile: "/nonexistent-dir/z.log" });
  assert.match(log, /Cannot open the log file "\/nonexistent-dir\/z.log": not found/);
});

Deno.test("files: the pid file is written whole (0644, the master's pid); a second server is refused it; a stale one is replaced", async () => {
  const dir = await Deno.makeTempDir();
  const pidFile = `${dir}/z.pid`;
  try {
    // Stale: a server that died by SIGKILL left it, naming a pid that is gone.
    Deno.writeTextFileSync(pidFile, "999999999\n");
    {
      await using first = await startFixture({ pidFile, workerNum: 2 });
      const master = first.child.pid;
      assert.equal(Deno.readTextFileSync(pidFile), `${master}\n`);
      assert.equal(Deno.statSync(pidFile).mode! & 0o777, 0o644);
      assert.deepEqual(
        [...Deno.readDirSync(dir)].map((e) => e.name),
        ["z.pid"],
        "no temporary file is left",
      );
      const second = await startFails({ pidFile });
      assert.match(
        second,
        new RegExp(`pid file ".*z.pid": it belongs to a running server \\(pid ${master}\\)`),
      );
      assert.equal(Deno.readTextFileSync(pidFile), `${master}\n`, "the first's file stays");
      first.child.kill("SIGTERM");
      await first.exited();
    }
    assert.throws(() => Deno.statSync(pidFile), "removed on the way out");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("files: the CLI signals only the server that holds the pid file, never a pid some other program took", async () => {
  const dir = await Deno.makeTempDir();
  const pidFile = `${dir}/z.pid`;
  // A live process that is not a server, named by a pid file.
  const bystander = new Deno.Command("sleep", { args: ["60"] }).spawn();
  try {
    Deno.writeTextFileSync(pidFile, `${bystander.pid}\n`);
    for (const command of ["stop", "reload", "stats"]) {
      const out = await withTimeout(
        new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", cli, command, "--pid-file", pidFile],
          stdout: "piped",
          stderr: "piped",
        }).output(),
        `ziggurat ${command}`,
      );
      assert.equal(out.code, 1);
      assert.match(new TextDecoder().decode(out.stderr), /is stale: no running Ziggurat server/);
    }
    const exited = await Promise.race([
      bystander.status.then(() => true),
      new Promise((resolve) => setTimeout(() => resolve(false), 200)),
    ]);
    assert.equal(exited, false, "the bystander was not signalled");
  } finally {
    bystander.kill("SIGKILL");
    await bystander.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("files: a daemon whose pid file cannot be written makes the launcher exit non-zero", async () => {
  const out = await withTimeout(
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        cli,
        "start",
        "--daemonize",
        "--port",
        "0",
        "--pid-file",
        "/nonexistent-dir/z.pid",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output(),
    "the daemon launcher",
  );
  assert.notEqual(out.code, 0);
  assert.doesNotMatch(new TextDecoder().decode(out.stdout), /stop it with/);
});
