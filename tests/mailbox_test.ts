/**
 * Mailboxes over a real region, both ends in this process: messages between two endpoints
 * arrive whole and in order, large ones in chunks; `admit` leaves refused messages (and what
 * follows them) for a successor; a message whose sender died halfway is dropped, and does not
 * count as arriving; the region's worker table and counters by name.
 */
import assert from "node:assert/strict";
import { RecordType } from "../src/_ffi/layout.ts";
import { library, unwrap } from "../src/_ffi/library.ts";
import { Mailbox } from "../src/ipc/mailbox.ts";
import { Region, WorkerStatus } from "../src/ipc/region.ts";

const lib = library();

/** A region of one event worker and one task worker (and the master), and their doorbells. */
function tree(mailSize = 64 * 1024) {
  const region = Region.create({
    workerNum: 1,
    taskWorkerNum: 1,
    userProcessNum: 0,
    reactorNum: 0,
    ringSize: 256 * 1024,
    mailSize,
    maxConnection: 16,
    socketBufferSize: 1 << 20,
  });
  const doorbells = Array.from({ length: region.endpointCount }, () => {
    const fd = new Int32Array(1);
    unwrap(lib.zg_eventfd(fd), "create a doorbell");
    return fd[0];
  });
  const close = () => {
    for (const fd of [...doorbells, region.fd]) lib.zg_close_fd(fd);
  };
  return { region, doorbells, close };
}

interface Got {
  peer: number;
  type: number;
  id: number;
  text: string;
}

function drainAll(mailbox: Mailbox): Got[] {
  const got: Got[] = [];
  mailbox.drain((peer, type, _flags, id, _aux, payload) => {
    got.push({ peer, type, id, text: new TextDecoder().decode(payload) });
  });
  return got;
}

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("mailbox: messages arrive in order, a large one whole; only what was published", () => {
  const { region, doorbells, close } = tree();
  try {
    const worker = new Mailbox(region, 0, doorbells, lib);
    const task = new Mailbox(region, 1, doorbells, lib);
    worker.send(1, RecordType.pipeMessage, 1, 0, text("one"));
    assert.deepEqual(drainAll(task), [], "nothing before it is published");
    // More than one record, and more than the ring: chunks, the rest waiting for room.
    const big = "x".repeat(200 * 1024);
    worker.send(1, RecordType.pipeMessage, 2, 0, text(big));
    worker.send(1, RecordType.pipeMessage, 3, 0, text("three"));
    worker.publish();
    // A ring of 64 KiB holds part of it: drain, let the sender write on, drain again.
    const got: Got[] = [];
    for (let i = 0; i < 10 && got.length < 3; i++) {
      got.push(...drainAll(task));
      worker.flushPending();
      worker.publish();
    }
    assert.deepEqual(got.map((g) => g.id), [1, 2, 3]);
    assert.equal(got[1].text.length, big.length);
    assert.ok(got.every((g) => g.peer === 0 && g.type === RecordType.pipeMessage));
  } finally {
    close();
  }
});

Deno.test("mailbox: a refused message stays, with what follows it, for the next reader of the endpoint", () => {
  const { region, doorbells, close } = tree();
  try {
    const worker = new Mailbox(region, 0, doorbells, lib);
    const first = new Mailbox(region, 1, doorbells, lib);
    let tasks = 0;
    first.admit = (type) => type !== RecordType.task || tasks++ < 2;
    for (let id = 1; id <= 5; id++) worker.send(1, RecordType.task, id, 0, text(`t${id}`));
    worker.publish();
    assert.deepEqual(drainAll(first).map((g) => g.id), [1, 2]);
    assert.equal(first.hasInput(), false, "refused input does not count as input (no spin)");
    // Its successor, on the same rings, takes the rest: none lost, none twice.
    const successor = new Mailbox(region, 1, doorbells, lib);
    assert.deepEqual(drainAll(successor).map((g) => g.id), [3, 4, 5]);
  } finally {
    close();
  }
});

Deno.test("mailbox: pieces of a message whose start is missing are dropped, and a stale start does not count as arriving", () => {
  const { region, doorbells, close } = tree(64 * 1024);
  try {
    const worker = new Mailbox(region, 0, doorbells, lib);
    const task = new Mailbox(region, 1, doorbells, lib);
    // A chunked task whose first chunk arrives; then its sender "dies" (a new sender on the
    // same rings starts a fresh message).
    worker.send(1, RecordType.task, 7, 0, text("y".repeat(100 * 1024)));
    worker.publish();
    drainAll(task);
    assert.equal(task.arriving(RecordType.task), 1, "its first chunks are in");
    const successor = new Mailbox(region, 0, doorbells, lib);
    successor.send(1, RecordType.task, 8, 0, text("fresh"));
    successor.publish();
    // Room for one task arriving at a time (as taskMaxRequest counts them): the dead
    // sender's unfinished one must not take that room.
    task.admit = (type) => type !== RecordType.task || task.arriving(RecordType.task) < 1;
    const got = drainAll(task);
    assert.deepEqual(got.map((g) => g.id), [8], "the unfinished message is dropped");
    assert.equal(task.arriving(RecordType.task), 0);
  } finally {
    close();
  }
});

Deno.test("region: the worker table and each worker's counters, by name, survive a successor", () => {
  const { region, close } = tree();
  try {
    region.setWorker(0, 4242, WorkerStatus.idle);
    assert.equal(region.pid(0), 4242);
    assert.equal(region.status(0), WorkerStatus.idle);
    region.adopt(0);
    region.publish(0, 10, 9, 8, 2, 1);
    assert.deepEqual(
      ((
        { requestCount, responseCount, workerDispatchCount, callbackErrorCount, discardCount },
      ) => ({
        requestCount,
        responseCount,
        workerDispatchCount,
        callbackErrorCount,
        discardCount,
      }))(region.counters(0)),
      {
        requestCount: 10,
        responseCount: 9,
        workerDispatchCount: 8,
        callbackErrorCount: 2,
        discardCount: 1,
      },
    );
    // A successor adds to what its predecessor counted.
    region.adopt(0);
    region.publish(0, 1, 1, 1, 1, 1);
    assert.equal(region.counters(0).requestCount, 11);
    assert.equal(region.counters(0).discardCount, 2);
    // Gone: the master clears the pid; a draining worker is exited with its pid.
    region.setWorker(0, 0, WorkerStatus.exited);
    assert.equal(region.processes()[0].pid, -1);
  } finally {
    close();
  }
});
