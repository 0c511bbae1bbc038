/**
 * Task workers, pipe messages and user processes: the processes of a tree talking through
 * their mailboxes. Real processes, real sockets, real signals.
 */
import assert from "node:assert/strict";
import {
  command,
  connect,
  readLine,
  startFixture,
  until,
  withTimeout,
  workersStarted,
} from "./_helpers.ts";
import type { Fixture } from "./_helpers.ts";

async function tree(options: Record<string, unknown>, extra?: Record<string, unknown>) {
  const server = await startFixture(options, { extra });
  const w = (options.workerNum as number | undefined) ?? 1;
  const t = (options.taskWorkerNum as number | undefined) ?? 0;
  await workersStarted(server, w + t);
  return server;
}

function finishOf(server: Fixture, taskId: number, workerId: number) {
  return server.waitFor(
    (e) => e.event === "finish" && e.taskId === taskId && e.workerId === workerId,
    `finish of task ${taskId} in worker ${workerId}`,
  );
}

for (const mode of ["base", "process"]) {
  Deno.test(`${mode}: each task's finish reaches the worker that sent it, and only that one`, async () => {
    await using server = await tree({
      mode,
      workerNum: 2,
      taskWorkerNum: 2,
      enableReusePort: true,
    });
    const conns: Deno.TcpConn[] = [];
    try {
      const sent: { taskId: number; workerId: number }[] = [];
      // Connections (the kernel spreads them) until both workers have sent a few tasks.
      for (
        let i = 0;
        i < 100 && (sent.length < 8 || new Set(sent.map((s) => s.workerId)).size < 2);
        i++
      ) {
        const conn = await connect(server.port);
        conns.push(conn);
        const workerId = (await command(conn, "!whoami")).workerId as number;
        const { taskId } = await command(conn, '!task {"op":"who"}');
        sent.push({ taskId: taskId as number, workerId });
      }
      assert.ok(new Set(sent.map((s) => s.workerId)).size === 2, "both workers sent tasks");
      for (const { taskId, workerId } of sent) {
        const finish = await finishOf(server, taskId, workerId);
        const result = finish.result as { workerId: number; srcWorkerId: number; taskId: number };
        assert.equal(result.srcWorkerId, workerId);
        assert.equal(result.taskId, taskId);
        assert.ok(
          result.workerId >= 2 && result.workerId < 4,
          `ran in task worker ${result.workerId}`,
        );
      }
      // Task ids are per sender: a finish for (id, worker) never shows up in the other worker.
      const finishes = server.events.filter((e) => e.event === "finish");
      assert.equal(finishes.length, sent.length);
    } finally {
      for (const c of conns) c.close();
    }
  });
}

Deno.test("taskwait resolves with the result, rejects with the handler's error, and times out cleanly", async () => {
  await using server = await tree({ workerNum: 1, taskWorkerNum: 2 });
  await using conn = await connect(server.port);
  assert.deepEqual(await command(conn, '!taskwait 5 {"op":"echo","value":{"a":[1,2,3]}}'), {
    ok: true,
    result: { a: [1, 2, 3] },
  });
  assert.deepEqual(await command(conn, '!taskwait 5 {"op":"finish","value":"via finish()"}'), {
    ok: true,
    result: "via finish()",
  });
  assert.deepEqual(await command(conn, '!taskwait 5 {"op":"throw"}'), {
    ok: false,
    error: "Error: task failed on purpose",
  });
  const late = await command(conn, '!taskwait 0.2 {"op":"sleep","ms":1000,"value":1}');
  assert.equal(late.ok, false);
  assert.match(late.error as string, /TimedOut: taskwait\(\): task \d+ had no result after 0.2 s/);
  await server.waitForStderr(/came after taskwait\(\) gave up; dropped/);
  // The worker carries on.
  assert.deepEqual(await command(conn, '!taskwait 5 {"op":"echo","value":2}'), {
    ok: true,
    result: 2,
  });
  const stats = await command(conn, "!stats");
  assert.equal(stats.taskWorkerNum, 2);
  assert.ok((stats.taskCount as number) >= 5, `taskCount ${stats.taskCount}`);
  assert.equal(stats.taskingNum, 0);
});

Deno.test("taskWaitMulti returns the results that completed in time, by index", async () => {
  await using server = await tree({ workerNum: 1, taskWorkerNum: 3 });
  await using conn = await connect(server.port);
  const reply = await command(
    conn,
    '!multi 1 [{"op":"echo","value":"a"},{"op":"sleep","ms":2500,"value":"b"},{"op":"echo","value":"c"}]',
  );
  assert.deepEqual(reply, { results: { 0: "a", 2: "c" } });
});

Deno.test("16 MiB task payloads and results arrive intact", async () => {
  await using server = await tree({ workerNum: 1, taskWorkerNum: 1 });
  await using conn = await connect(server.port);
  assert.deepEqual(await command(conn, `!bigtask ${16 * 1024 * 1024}`), { ok: true, same: true });
});

Deno.test("a task worker killed mid-task is respawned, and the waiting caller hears at once", async () => {
  await using server = await tree({ workerNum: 1, taskWorkerNum: 1 });
  await using conn = await connect(server.port);
  await conn.write(new TextEncoder().encode('!taskwait 60 {"op":"hang"}\n'));
  const hanging = await server.waitFor((e) => e.event === "hanging", "the task to start");
  const started = performance.now();
  Deno.kill(hanging.pid as number, "SIGKILL");
  const reply = JSON.parse(await withTimeout(readLine(conn), "the caller's answer"));
  assert.equal(reply.ok, false);
  assert.match(reply.error, /task \d+ was lost: task worker 1 died while running it/);
  assert.ok(performance.now() - started < 30_000, "well before the 60 s timeout");
  const error = await server.waitFor((e) => e.event === "workerError", "workerError");
  assert.equal(error.workerId, 1);
  await server.waitFor(
    (e) => e.event === "workerStart" && e.workerId === 1 && e.pid !== hanging.pid,
    "task worker 1 respawned",
  );
  assert.deepEqual(await command(conn, '!taskwait 10 {"op":"echo","value":"again"}'), {
    ok: true,
    result: "again",
  });
});

Deno.test("pipe messages arrive in order, large ones whole", async () => {
  await using server = await tree({ workerNum: 2, taskWorkerNum: 1, enableReusePort: true });
  await using conn = await connect(server.port);
  const from = (await command(conn, "!whoami")).workerId as number;
  // To the task worker (id 2), then to the other event worker.
  for (const to of [2, 1 - from]) {
    assert.deepEqual(await command(conn, `!msgs ${to} 200 ${4 * 1024 * 1024}`), { sent: 201 });
    await server.waitFor(
      (e) => e.event === "pipeMessage" && e.to === to && e.seq === 200,
      `the last message to ${to}`,
    );
    const got = server.events.filter((e) => e.event === "pipeMessage" && e.to === to);
    assert.deepEqual(got.map((e) => e.seq), Array.from({ length: 201 }, (_, i) => i));
    assert.ok(got.every((e) => e.from === from));
    assert.equal(got.at(-1)!.size, 4 * 1024 * 1024);
  }
});

Deno.test("a user process sends to sessions, is respawned when killed, and stops with the server", async () => {
  const server = await tree({ workerNum: 2, taskWorkerNum: 1 }, { userProcess: true });
  const first = await server.waitFor((e) => e.event === "userProcess", "the user process");
  // In it, task, taskwait and sendMessage work.
  assert.equal(
    (await server.waitFor((e) => e.event === "userTask", "the user process's task")).result,
    "from a user process",
  );
  const message = await server.waitFor(
    (e) => e.event === "pipeMessage" && e.seq === -1,
    "its pipe message",
  );
  assert.equal(message.to, 0);
  assert.equal(message.from, 3, "the user process's id comes after the 2 event and 1 task workers");
  const conn = await connect(server.port);
  assert.equal(
    await withTimeout(readLine(conn), "the user process's greeting"),
    "hello from a user process",
  );
  Deno.kill(first.pid as number, "SIGKILL");
  const again = await server.waitFor(
    (e) => e.event === "userProcess" && e.pid !== first.pid,
    "the user process respawned",
  );
  // The new process greets every session again.
  assert.equal(
    await withTimeout(readLine(conn), "the second greeting"),
    "hello from a user process",
  );
  const stats = await command(conn, "!stats");
  assert.equal(stats.userWorkerNum, 1);
  conn.close();
  // The manager is the fixture process itself (`start` ran in worker 0).
  Deno.kill(server.child.pid, "SIGTERM");
  assert.equal((await withTimeout(server.exited(), "the tree to stop")).code, 0);
  assert.throws(() => Deno.kill(again.pid as number, "SIGCONT"), "the user process is gone");
  await server[Symbol.asyncDispose]();
});

Deno.test("a task worker and a user process see the port the master bound (port 0)", async () => {
  {
    await using server = await tree({ port: 0, workerNum: 1, taskWorkerNum: 1 });
    await using conn = await connect(server.port);
    const reply = await command(conn, '!taskwait 10 {"op":"who"}');
    assert.equal((reply.result as { port: number }).port, server.port);
  }
  await using server = await tree({ port: 0, workerNum: 1 }, { userProcess: true });
  const user = await server.waitFor((e) => e.event === "userProcess", "the user process");
  assert.equal(user.port, server.port);
});

Deno.test("taskMaxRequest: a task worker is replaced after that many tasks, and no task is lost", async () => {
  await using server = await tree({ workerNum: 1, taskWorkerNum: 1, taskMaxRequest: 3 });
  await using conn = await connect(server.port);
  const pids: number[] = [];
  for (let i = 0; i < 7; i++) {
    const reply = await command(conn, '!taskwait 10 {"op":"who"}');
    assert.equal(reply.ok, true);
    pids.push((reply.result as { pid: number }).pid);
  }
  assert.deepEqual(pids.map((p) => pids.indexOf(p)), [0, 0, 0, 3, 3, 3, 6]);
  assert.equal(server.events.filter((e) => e.event === "workerError").length, 0);
});

Deno.test("taskMaxRequest 200 over 4 task workers and 4,000 tasks: none runs more than 200, each task runs once", async () => {
  const max = 200, tasks = 4000;
  await using server = await tree({ workerNum: 1, taskWorkerNum: 4, taskMaxRequest: max });
  await using conn = await connect(server.port);
  const reply = await command(conn, `!manytasks ${tasks} 60`);
  assert.equal(reply.answered, tasks);
  const perPid = Object.values(reply.perPid as Record<string, number>);
  assert.ok(perPid.every((n) => n <= max), `tasks per task worker: ${perPid}`);
  // Each task ran exactly once (the task workers report each run on their stdout).
  const runs = new Map<number, number>();
  await server.waitFor(() => {
    runs.clear();
    for (const e of server.events) {
      if (e.event === "ran") runs.set(e.seq as number, (runs.get(e.seq as number) ?? 0) + 1);
    }
    return runs.size === tasks;
  }, "every task's run");
  assert.equal(runs.size, tasks);
  assert.ok([...runs.values()].every((n) => n === 1), "a task ran twice");
  assert.equal(server.events.filter((e) => e.event === "workerError").length, 0);
});

Deno.test("process mode: task() works in the master's start callback", async () => {
  await using server = await tree(
    { mode: "process", workerNum: 1, taskWorkerNum: 1 },
    { taskOnStart: true },
  );
  const done = await server.waitFor((e) => e.event === "startTask", "the start callback's task");
  assert.deepEqual(done, { event: "startTask", result: "from start", workerId: -1 });
});

Deno.test("taskMaxRequest 2 with six tasks queued at once: every task is answered", async () => {
  await using server = await tree({ workerNum: 1, taskWorkerNum: 1, taskMaxRequest: 2 });
  await using conn = await connect(server.port);
  const list = Array.from({ length: 6 }, (_, i) => ({ op: "echo", value: `r${i}` }));
  const reply = await command(conn, `!multi 20 ${JSON.stringify(list)}`);
  assert.deepEqual(reply, { results: { 0: "r0", 1: "r1", 2: "r2", 3: "r3", 4: "r4", 5: "r5" } });
});

for (const mode of ["base", "process"]) {
  Deno.test(`${mode}: connections lists every open session of the tree, from an event worker and from a task worker`, async () => {
    await using server = await tree({ mode, workerNum: 2, taskWorkerNum: 1 });
    const conns = await Promise.all(Array.from({ length: 5 }, () => connect(server.port)));
    try {
      const ids: number[] = [];
      for (const conn of conns) ids.push((await command(conn, "!info")).sessionId as number);
      ids.sort((a, b) => a - b);
      const seen = await command(conns[0], "!connections");
      assert.deepEqual(seen, { ids, size: 5, has: true });
      const fromTask = await command(conns[1], '!taskwait 10 {"op":"connections"}');
      assert.deepEqual(fromTask, { ok: true, result: { ids, size: 5 } });
      // A closed session is gone from it.
      conns.pop()!.close();
      await until("the closed session to leave connections", async () => {
        const now = await command(conns[0], "!connections");
        return (now.ids as number[]).length === 4;
      });
      const after = await command(conns[0], "!connections");
      assert.equal(after.size, 4);
    } finally {
      for (const conn of conns) conn.close();
    }
  });
}

Deno.test('every task worker busy: "No idle task worker is available" is logged, at most once a second; the tasks still run', async () => {
  await using server = await tree({ workerNum: 1, taskWorkerNum: 1 });
  await using conn = await connect(server.port);
  await command(conn, '!task {"op":"sleep","ms":800,"value":1}');
  await server.waitFor((e) => e.event === "taskSleeping", "the task worker to be busy");
  for (let i = 0; i < 5; i++) await command(conn, `!task {"op":"echo","value":${i}}`);
  await server.waitFor(
    () => server.events.filter((e) => e.event === "finish").length === 6,
    "every task to finish",
  );
  const warnings = server.stderr().match(/No idle task worker is available/g) ?? [];
  assert.equal(warnings.length, 1, server.stderr());
});

Deno.test("sendMessage reaches a user process (its id comes after the task workers'), in order, large ones whole", async () => {
  await using server = await tree({ workerNum: 2, taskWorkerNum: 1 }, { userProcess: true });
  await server.waitFor((e) => e.event === "userProcess", "the user process");
  await using conn = await connect(server.port);
  // The user process greets every session once: out of the way first.
  assert.equal(
    await withTimeout(readLine(conn), "the user process's greeting"),
    "hello from a user process",
  );
  const userProcess = 3;
  assert.deepEqual(await command(conn, `!msgs ${userProcess} 50 ${1024 * 1024}`), { sent: 51 });
  await server.waitFor(
    (e) => e.event === "pipeMessage" && e.to === userProcess && e.seq === 50,
    "the last message to the user process",
  );
  const got = server.events.filter((e) => e.event === "pipeMessage" && e.to === userProcess);
  assert.deepEqual(got.map((e) => e.seq), Array.from({ length: 51 }, (_, i) => i));
  assert.equal(got.at(-1)!.size, 1024 * 1024);
});
