/**
 * The tree's region between two real processes: one creates it, the other maps it by its pid
 * (as a worker maps the fd it inherited, and the CLI maps a running server's); each sees what
 * the other wrote — the worker table, the counters a worker publishes and the master sums, a
 * task worker's tasks in hand, task ids, and a mail from a worker to the master.
 */
import assert from "node:assert/strict";
import { library } from "../src/_ffi/library.ts";
import { decode } from "../src/ipc/codec.ts";
import { Mailbox } from "../src/ipc/mailbox.ts";
import { Region, WorkerStatus } from "../src/ipc/region.ts";

const lib = library();

Deno.test("region: another process maps it by pid and each sees what the other wrote", async () => {
  const region = Region.create({
    workerNum: 1,
    taskWorkerNum: 1,
    userProcessNum: 0,
    reactorNum: 0,
    ringSize: 256 * 1024,
    mailSize: 64 * 1024,
    maxConnection: 16,
    socketBufferSize: 1 << 20,
  });
  const doorbells = Array.from({ length: region.endpointCount }, () => -1);
  try {
    region.setWorker(1, 4242, WorkerStatus.idle);
    const peer = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./fixtures/region_peer.ts", import.meta.url).pathname,
        String(Deno.pid),
      ],
      stdout: "piped",
      stderr: "inherit",
    });
    const { code, stdout } = await peer.output();
    const report = JSON.parse(new TextDecoder().decode(stdout));
    assert.equal(code, 0, JSON.stringify(report));
    assert.deepEqual(report.seen, {
      workerNum: 1,
      taskWorkerNum: 1,
      endpointCount: 3,
      slot1: { pid: 4242, status: WorkerStatus.idle },
    }, "the peer reads the header and the worker table the owner wrote");
    // What the peer wrote, read here.
    assert.ok(region.pid(0) > 0 && region.pid(0) !== Deno.pid, "worker 0's pid is the peer's");
    assert.equal(region.status(0), WorkerStatus.busy);
    const counters = region.counters(0);
    assert.equal(counters.requestCount, 7);
    assert.equal(counters.responseCount, 5);
    assert.equal(counters.workerDispatchCount, 9);
    assert.equal(counters.callbackErrorCount, 1);
    assert.equal(region.treeStats().requestCount, 7, "the master's sum has them");
    assert.deepEqual(region.takeRunning(1), [{ src: 0, taskId: 42 }], "a task in hand");
    assert.deepEqual(region.takeRunning(1), [], "taken once");
    assert.deepEqual(report.taskIds, [1, 2]);
    assert.equal(region.nextTaskId(0), 3, "task ids go on from where the peer left them");
    // The peer's mail, drained by the master's end.
    const master = new Mailbox(region, region.endpointCount - 1, doorbells, lib);
    const mail: unknown[] = [];
    master.drain((peer, _type, _flags, _id, _aux, payload) => {
      mail.push({ peer, message: decode(payload) });
    });
    assert.deepEqual(mail, [{ peer: 0, message: { from: region.pid(0) } }]);
  } finally {
    lib.zg_close_fd(region.fd);
  }
});
