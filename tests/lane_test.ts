/**
 * The rings as TypeScript sees them, in plain memory with no core behind them: a `Lane` writes
 * records into its outbound ring and reads its inbound one exactly as the layout says, waits
 * for room in order, and wakes the other side only when it parked; `Unsent` counts what is in
 * the ring per session.
 */
import assert from "node:assert/strict";
import { layout, RecordType } from "../src/_ffi/layout.ts";
import { Lane, letGoOfHeld, publishTails } from "../src/ipc/lane.ts";
import { Unsent } from "../src/ipc/unsent.ts";

const ringBytes = 4096;

/** One channel (header, then the inbound and outbound data areas) in an ArrayBuffer. */
function channel(): { memory: ArrayBuffer; kicks: { count: number }; lane: Lane } {
  const memory = new ArrayBuffer(layout.dataOffset + 2 * ringBytes);
  new Uint32Array(memory)[layout.channelRingBytes / 4] = ringBytes;
  const kicks = { count: 0 };
  const lane = new Lane(memory, 0, () => kicks.count++);
  return { memory, kicks, lane };
}

const word = (ctl: number, field: number) => (ctl + field) / 4;

/** The records the reactor would read from the outbound ring, up to its published tail. */
function consumeOutbound(
  memory: ArrayBuffer,
): { type: number; sessionId: number; bytes: number[] }[] {
  const u32 = new Uint32Array(memory);
  const u8 = new Uint8Array(memory);
  const tail = u32[word(layout.channelOutCtl, layout.ringTail)];
  let head = u32[word(layout.channelOutCtl, layout.ringHead)];
  const base = layout.dataOffset + ringBytes;
  const out = [];
  while (head !== tail) {
    const at = base + (head & (ringBytes - 1));
    const len = u32[at / 4];
    const type = u8[at + layout.recordType];
    if (type !== RecordType.pad) {
      out.push({
        type,
        sessionId: u32[at / 4 + 2],
        bytes: [...u8.subarray(at + layout.recordHeaderSize, at + layout.recordHeaderSize + len)],
      });
    }
    head = (head + ((layout.recordHeaderSize + len + 15) & ~15)) >>> 0;
  }
  u32[word(layout.channelOutCtl, layout.ringHead)] = head;
  return out;
}

/** Writes one record into the inbound ring as the reactor would, and publishes it. */
function produceInbound(memory: ArrayBuffer, type: number, sessionId: number, payload: number[]) {
  const u32 = new Uint32Array(memory);
  const u8 = new Uint8Array(memory);
  const tail = u32[word(layout.channelInCtl, layout.ringTail)];
  const at = layout.dataOffset + (tail & (ringBytes - 1));
  u32[at / 4] = payload.length;
  u8[at + layout.recordType] = type;
  u32[at / 4 + 2] = sessionId;
  u8.set(payload, at + layout.recordHeaderSize);
  u32[word(layout.channelInCtl, layout.ringTail)] =
    (tail + ((layout.recordHeaderSize + payload.length + 15) & ~15)) >>> 0;
}

Deno.test("lane: sends go into the outbound ring in order and show once published", () => {
  const { memory, lane } = channel();
  lane.push(RecordType.send, 7, 0, new Uint8Array([1, 2, 3]));
  lane.push(RecordType.send, 8, 0, new Uint8Array([4]));
  assert.deepEqual(consumeOutbound(memory), [], "nothing before publishing");
  lane.publishOut();
  assert.deepEqual(consumeOutbound(memory), [
    { type: RecordType.send, sessionId: 7, bytes: [1, 2, 3] },
    { type: RecordType.send, sessionId: 8, bytes: [4] },
  ]);
});

Deno.test("lane: the reactor is kicked only when it parked, once per parking", () => {
  const { memory, kicks, lane } = channel();
  const u32 = new Uint32Array(memory);
  lane.push(RecordType.send, 1, 0, new Uint8Array([1]));
  lane.publishOut();
  assert.equal(kicks.count, 0, "not parked: no kick");
  u32[word(layout.channelOutCtl, layout.ringConsumerParked)] = 1;
  lane.push(RecordType.send, 1, 0, new Uint8Array([2]));
  lane.publishOut();
  assert.equal(kicks.count, 1);
  assert.equal(u32[word(layout.channelOutCtl, layout.ringConsumerParked)], 0, "the flag is taken");
  lane.push(RecordType.send, 1, 0, new Uint8Array([3]));
  lane.publishOut();
  assert.equal(kicks.count, 1, "one kick per parking");
});

Deno.test("lane: with the ring full, sends wait in order, counted per session, and go out as room frees", () => {
  const { memory, lane } = channel();
  const big = new Uint8Array(1000).fill(9);
  for (let i = 0; i < 8; i++) lane.push(RecordType.send, 1 + (i % 2), 0, big);
  assert.ok(lane.pending.length > 0, "the ring took what fits");
  assert.ok((lane.pendingBytes.get(1) ?? 0) > 0 && (lane.pendingBytes.get(2) ?? 0) > 0);
  assert.equal(publishTails([lane]), false, "sends still wait for room");
  const first = consumeOutbound(memory);
  lane.flushPending();
  const rest = consumeOutbound(memory);
  assert.equal(first.length + rest.length, 8, "every send, once");
  assert.deepEqual([...first, ...rest].map((r) => r.sessionId), [1, 2, 1, 2, 1, 2, 1, 2]);
  assert.equal(lane.pending.length, 0);
  assert.equal(lane.pendingBytes.size, 0, "nothing counted once all went out");
  assert.equal(publishTails([lane]), true);
});

Deno.test("lane: inbound records are read from the published tail and let go of by head", () => {
  const { memory, lane } = channel();
  const u32 = new Uint32Array(memory);
  assert.equal(lane.hasInput(), false);
  produceInbound(memory, RecordType.receive, 5, [104, 105]);
  assert.equal(lane.hasInput(), true);
  const at = lane.inBase + (lane.readPos & lane.mask);
  assert.equal(lane.u8[at + layout.recordType], RecordType.receive);
  assert.equal(lane.u32[(at >>> 2) + 2], 5);
  const end = (lane.readPos + ((layout.recordHeaderSize + 2 + 15) & ~15)) >>> 0;
  // PROCESS mode: taken (claim), then let go of (head) once its sends are out.
  lane.take(end);
  assert.equal(u32[word(layout.channelInCtl, layout.ringConsumerClaim)], end);
  lane.readPos = end;
  assert.equal(lane.holding(), true);
  assert.equal(letGoOfHeld([lane]), true);
  assert.equal(u32[word(layout.channelInCtl, layout.ringHead)], end);
  assert.equal(lane.hasInput(), false);
});

Deno.test("lane: a successor starts after the record its predecessor had in hand", () => {
  const { memory } = channel();
  produceInbound(memory, RecordType.receive, 1, [1]);
  produceInbound(memory, RecordType.receive, 2, [2]);
  const u32 = new Uint32Array(memory);
  // The predecessor took the first record (claim past it) and died before letting go of it.
  u32[word(layout.channelInCtl, layout.ringConsumerClaim)] = 32;
  const successor = new Lane(memory, 0, () => {});
  assert.equal(successor.readPos, 32, "the record in the dead worker's hands is not read again");
  assert.equal(u32[word(layout.channelInCtl, layout.ringHead)], 32);
});

Deno.test("unsent: bytes per session count until the consumer's head passes their record", () => {
  const unsent = new Unsent();
  unsent.add(32, 1, 100);
  unsent.add(64, 2, 50);
  unsent.add(96, 1, 10);
  assert.equal(unsent.total, 160);
  assert.equal(unsent.of(1), 110);
  assert.equal(unsent.of(2), 50);
  unsent.settle(64);
  assert.equal(unsent.total, 10);
  assert.equal(unsent.of(1), 10);
  assert.equal(unsent.of(2), 0);
  // Positions wrap at 2^32.
  const wrap = new Unsent();
  wrap.add(0xffff_fff0, 3, 5);
  wrap.add(0x10, 3, 7);
  wrap.settle(0);
  assert.equal(wrap.of(3), 7, "the record before the wrap is taken, the one after is not");
  // Growing past the first arrays keeps the order.
  const many = new Unsent();
  for (let i = 1; i <= 1000; i++) many.add(i * 16, i % 3, 1);
  many.settle(500 * 16);
  assert.equal(many.total, 500);
  assert.equal(many.of(0) + many.of(1) + many.of(2), 500);
});
