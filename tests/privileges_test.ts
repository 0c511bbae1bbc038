/**
 * `user` / `group`: no user callback runs before its process gives up root, in every mode; an
 * unknown name fails start() with an error naming it, before anything listens. Real
 * processes (the first test needs root).
 */
import assert from "node:assert/strict";
import { startFixture, treeModes, workersStarted } from "./_helpers.ts";

const nobody = Number(
  Deno.readTextFileSync("/etc/passwd").split("\n").find((l) => l.startsWith("nobody:"))
    ?.split(":")[2] ?? "65534",
);

for (const [name, options] of treeModes) {
  Deno.test({
    name: `user/group (${name}): start and workerStart already run as the user given`,
    ignore: Deno.uid() !== 0,
    fn: async () => {
      await using server = await startFixture({ ...options, user: "nobody", group: "nogroup" });
      const workers = (options as { workerNum?: number }).workerNum ?? 1;
      for (const started of await workersStarted(server, workers)) {
        assert.equal(started.uid, nobody, `workerStart of worker ${started.workerId}`);
      }
      const start = server.events.find((e) => e.event === "start")!;
      // PROCESS mode runs `start` in the master, which keeps root to bind and supervise.
      assert.equal(start.uid, "mode" in options ? 0 : nobody);
    },
  });
}

for (
  const [name, options] of [
    ["one worker", {}],
    ["four BASE workers", { workerNum: 4 }],
    ["PROCESS mode, one worker", { mode: "process", workerNum: 1 }],
    ["PROCESS mode, four workers", { mode: "process", workerNum: 4 }],
  ] as const
) {
  Deno.test(`user/group (${name}): an unknown user or group fails start() naming it, before anything listens`, async () => {
    for (
      const [ids, message] of [
        [{ user: "no-such-user-zg" }, /there is no user "no-such-user-zg" \(option user\)/],
        [{ group: "no-such-group-zg" }, /there is no group "no-such-group-zg" \(option group\)/],
      ] as const
    ) {
      const error = await startFixture({ ...options, ...ids }).then(
        () => undefined,
        (e: Error) => e,
      );
      assert.ok(error, "start() failed");
      assert.match(error.message, message);
      assert.match(error.message, /fixture exited \(1\) before it listened/);
      assert.doesNotMatch(error.message, /respawning/);
    }
  });
}
