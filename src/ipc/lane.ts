/**
 * A lane: this worker's side of one channel to a reactor — the inbound ring it drains and the
 * outbound ring it writes (see `abi.ChannelHeader`). BASE mode has one lane, to the worker's
 * own reactor; a PROCESS-mode worker has one per reactor thread of the master.
 * @module
 */

import { layout, RecordType } from "../_ffi/layout.ts";
import type { Unsent } from "./unsent.ts";
import { concatBytes } from "../bytes.ts";

/** A send waiting for room in the outbound ring; kept in order. */
export interface Pending {
  type: number;
  sessionId: number;
  aux: number;
  bytes: Uint8Array;
}

/** Largest payload of one send record (less on small rings: a record must fit in half the
 * ring); bigger sends are split and arrive in order. */
const sendChunkMax = 256 * 1024;

export class Lane {
  readonly u8: Uint8Array;
  readonly u32: Uint32Array;
  readonly i16: Int16Array;
  readonly ringBytes: number;
  readonly mask: number;
  readonly sendChunk: number;
  /** Byte offsets of the two data areas in `u8`. */
  readonly inBase: number;
  readonly outBase: number;
  // Word indexes of the ring control fields.
  readonly inTail: number;
  readonly inHead: number;
  readonly inParked: number;
  readonly inProducerWaiting: number;
  readonly inClaim: number;
  readonly outTail: number;
  readonly outHead: number;
  readonly outParked: number;
  readonly outProducerWaiting: number;
  /** Wakes the reactor (it sleeps, or waits for room in the inbound ring). */
  readonly kick: () => void;

  /** Our positions: the next inbound byte to read, the next outbound byte to write. */
  readPos: number;
  writePos: number;
  outHeadSeen: number;
  pending: Pending[] = [];
  /** Bytes per session in `pending`: counted against `socketBufferSize` too. */
  pendingBytes = new Map<number, number>();
  /** A lane to a reactor: the sends in the outbound ring it has not taken yet. */
  unsent: Unsent | undefined;
  /**
   * Publish/subscribe: counts a subscription (`on`) or its end as its record goes into the
   * ring (not before: one still waiting here when this process dies was never counted); true
   * when counted (the record's aux says so to the reactor). Set by src/websocket/pubsub.ts.
   */
  countTopic: ((sessionId: number, topic: Uint8Array, on: boolean) => boolean) | undefined;
  /** The reactor sent `shutdown` / `stopped` on this lane. */
  shutdownSeen = false;
  stopped = false;
  /** The outbound position last published, and whether the reactor was told of it. */
  #published = 0;
  #unwoken = false;
  /** The inbound position last let go of (the ring's head). */
  #released = 0;

  /**
   * The channel at byte `offset` of `memory`. `reversed`: this side drains the channel's
   * outbound ring and writes its inbound one (the higher endpoint of a mailbox).
   */
  constructor(memory: ArrayBuffer, offset: number, kick: () => void, reversed = false) {
    this.u8 = new Uint8Array(memory);
    this.u32 = new Uint32Array(memory);
    this.i16 = new Int16Array(memory);
    this.kick = kick;
    this.ringBytes = this.u32[(offset + layout.channelRingBytes) / 4];
    this.mask = this.ringBytes - 1;
    this.sendChunk = Math.min(sendChunkMax, this.ringBytes / 2 - layout.recordHeaderSize);
    const first = offset + layout.dataOffset;
    const second = offset + layout.dataOffset + this.ringBytes;
    this.inBase = reversed ? second : first;
    this.outBase = reversed ? first : second;
    const inCtl = reversed ? layout.channelOutCtl : layout.channelInCtl;
    const outCtl = reversed ? layout.channelInCtl : layout.channelOutCtl;
    const word = (ctl: number, field: number) => (offset + ctl + field) / 4;
    this.inTail = word(inCtl, layout.ringTail);
    this.inHead = word(inCtl, layout.ringHead);
    this.inParked = word(inCtl, layout.ringConsumerParked);
    this.inProducerWaiting = word(inCtl, layout.ringProducerWaiting);
    this.inClaim = word(inCtl, layout.ringConsumerClaim);
    this.outTail = word(outCtl, layout.ringTail);
    this.outHead = word(outCtl, layout.ringHead);
    this.outParked = word(outCtl, layout.ringConsumerParked);
    this.outProducerWaiting = word(outCtl, layout.ringProducerWaiting);
    // A worker that replaces a dead one (PROCESS mode) starts after the record its
    // predecessor had in its hands: the master let go of it already and closes its session
    // (zg_reactor_threads_worker_exited); it is not delivered twice.
    const head = Atomics.load(this.u32, this.inHead);
    const claim = Atomics.load(this.u32, this.inClaim);
    const claimed = (claim - head) >>> 0;
    this.readPos = claimed <= this.ringBytes ? claim : head;
    if (this.readPos !== head) Atomics.store(this.u32, this.inHead, this.readPos);
    Atomics.store(this.u32, this.inClaim, this.readPos);
    this.#released = this.readPos;
    this.writePos = Atomics.load(this.u32, this.outTail);
    this.#published = this.writePos;
    this.outHeadSeen = Atomics.load(this.u32, this.outHead);
    // The producer may be waiting for room its predecessor's records held.
    this.kickIfSet(this.inProducerWaiting);
  }

  /** The byte offset of the inbound record at ring position `pos` (a record never wraps). */
  inAt(pos: number): number {
    return this.inBase + (pos & this.mask);
  }

  /** The inbound ring's write position (the producer's) now. */
  written(): number {
    return Atomics.load(this.u32, this.inTail);
  }

  /** Whether this side has read the inbound ring up to `position` (one `written()` gave). */
  readPast(position: number): boolean {
    return ((this.readPos - position) | 0) >= 0;
  }

  /**
   * Queues a record, in order behind any that wait for room. `head`: bytes that go before
   * `bytes` in the same record (a frame header, with no copy of the payload to join them).
   */
  push(type: number, sessionId: number, aux: number, bytes: Uint8Array, head?: Uint8Array) {
    if (this.pending.length > 0 || !this.write(type, sessionId, aux, bytes, head)) {
      if (head) bytes = concatBytes([head, bytes]);
      else bytes = bytes.slice();
      this.pending.push({ type, sessionId, aux, bytes });
      this.pendingBytes.set(sessionId, (this.pendingBytes.get(sessionId) ?? 0) + bytes.length);
      // Whenever this runs (a timer, an async callback while parked), the consumer must wake
      // us once it frees room: ask first, then look again.
      Atomics.store(this.u32, this.outProducerWaiting, 1);
      this.flushPending();
    }
  }

  /** Writes one record (`head`, then `bytes`); false when the ring has no room for it. */
  write(
    type: number,
    sessionId: number,
    aux: number,
    bytes: Uint8Array,
    head?: Uint8Array,
  ): boolean {
    const headLength = head ? head.length : 0;
    const length = headLength + bytes.length;
    const need = recordSize(length);
    const capacity = this.ringBytes;
    let pos = this.writePos;
    let index = pos & this.mask;
    const toEnd = capacity - index;
    const wanted = toEnd >= need ? need : toEnd + need;
    if (capacity - ((pos - this.outHeadSeen) >>> 0) < wanted) {
      this.outHeadSeen = Atomics.load(this.u32, this.outHead);
      if (capacity - ((pos - this.outHeadSeen) >>> 0) < wanted) return false;
    }
    if (toEnd < need) {
      this.#header(this.outBase + index, toEnd - layout.recordHeaderSize, RecordType.pad, 0, 0);
      pos = (pos + toEnd) >>> 0;
      index = 0;
    }
    const at = this.outBase + index;
    const kind = type & 0xff;
    if ((kind === RecordType.subscribe || kind === RecordType.unsubscribe) && this.countTopic) {
      aux = this.countTopic(sessionId, bytes, kind === RecordType.subscribe) ? 1 : 0;
    }
    this.#header(at, length, type, sessionId, aux);
    if (head) this.u8.set(head, at + layout.recordHeaderSize);
    if (bytes.length > 0) this.u8.set(bytes, at + layout.recordHeaderSize + headLength);
    this.writePos = (pos + need) >>> 0;
    if ((type & 0xff) === RecordType.send) this.unsent?.add(this.writePos, sessionId, length);
    return true;
  }

  #header(at: number, len: number, type: number, sessionId: number, aux: number) {
    const word = at >>> 2;
    const u32 = this.u32;
    u32[word] = len;
    u32[word + 1] = type; // flags (bits 8-15) ride along in `type`; reactor id 0
    u32[word + 2] = sessionId;
    u32[word + 3] = aux;
  }

  /**
   * Publishes written records without waking the reactor. PROCESS mode does so after every
   * record it handles: a successor (if this worker dies) writes from the published position,
   * so what is published is never written over, and what a handled record sent is published.
   */
  publishTail() {
    if (this.writePos === this.#published) return;
    this.#published = this.writePos;
    this.#unwoken = true;
    Atomics.store(this.u32, this.outTail, this.writePos);
  }

  /** Publishes written records; kicks the reactor if it sleeps. */
  publishOut() {
    this.publishTail();
    if (!this.#unwoken) return;
    this.#unwoken = false;
    this.kickIfSet(this.outParked);
  }

  /**
   * The inbound record that ends at `pos` is in this process's hands (PROCESS-mode lanes and
   * mailboxes). Until it is let go of (`finish`, `release`), a successor of this process (if
   * it dies now) starts after it: a record is handled at most once.
   */
  take(pos: number) {
    Atomics.store(this.u32, this.inClaim, pos);
  }

  /** PROCESS mode: everything up to `pos` is handled and its sends published (no wake-up). */
  finish(pos: number) {
    this.#released = pos;
    Atomics.store(this.u32, this.inHead, pos);
  }

  /** Publishes how far the inbound ring was read; wakes the reactor if it waits for room. */
  release(pos: number) {
    this.readPos = pos;
    this.#released = pos;
    Atomics.store(this.u32, this.inHead, pos);
    this.kickIfSet(this.inProducerWaiting);
  }

  /** Whether a record read is not let go of yet (its sends wait for room). */
  holding(): boolean {
    return this.#released !== this.readPos;
  }

  /**
   * Clears a flag the reactor set (it sleeps, or waits for room) and wakes it; the compare-
   * exchange makes one waker per flag, as `takeFlag` does on the Zig side.
   */
  kickIfSet(word: number) {
    const u32 = this.u32;
    if (Atomics.load(u32, word) === 1 && Atomics.compareExchange(u32, word, 1, 0) === 1) {
      this.kick();
    }
  }

  /** Writes what waited for room, in order, as far as room goes; then publishes. */
  flushPending() {
    const pending = this.pending;
    if (pending.length === 0) return;
    let i = 0;
    while (i < pending.length) {
      const p = pending[i];
      if (!this.write(p.type, p.sessionId, p.aux, p.bytes)) break;
      const left = this.pendingBytes.get(p.sessionId)! - p.bytes.length;
      if (left === 0) this.pendingBytes.delete(p.sessionId);
      else this.pendingBytes.set(p.sessionId, left);
      i++;
    }
    pending.splice(0, i);
    this.publishOut();
  }

  /** Whether records were published that we have not read. */
  hasInput(): boolean {
    return Atomics.load(this.u32, this.inTail) !== this.readPos;
  }

  /** Whether something we wrote waits for the reactor: queued here, or not yet consumed. */
  hasOutput(): boolean {
    return this.pending.length > 0 || this.writePos !== Atomics.load(this.u32, this.outHead);
  }
}

// PROCESS mode: a worker may die at any instant, and its successor picks up its lanes. So each
// record is taken (`Lane.take`), handled, what it sent is published, and only then is it let go
// of (`Lane.finish`); while sends wait for room in a ring, no record is taken, and the one whose
// sends wait stays in hand until they are in the ring.

/**
 * Publishes what was written to every lane (no wake-up: `publishOut` does that once per batch).
 * True when no send waits for room, i.e. everything sent so far is in the rings.
 */
/** The ring position after a record at `pos` with a payload of `len` bytes (16-byte aligned). */
export function recordEnd(pos: number, len: number): number {
  return (pos + recordSize(len)) >>> 0;
}

/** The room a record with a payload of `len` bytes takes in a ring. */
function recordSize(len: number): number {
  return (layout.recordHeaderSize + len + 15) & ~15;
}

export function publishTails(lanes: Lane[]): boolean {
  let whole = true;
  for (let l = 0; l < lanes.length; l++) {
    const lane = lanes[l];
    lane.publishTail();
    if (lane.pending.length > 0) whole = false;
  }
  return whole;
}

/**
 * Lets go of the records kept in hand because their sends waited for room, once none waits.
 * True when records may be taken again.
 */
export function letGoOfHeld(lanes: Lane[]): boolean {
  let held = false;
  for (let l = 0; l < lanes.length; l++) {
    if (lanes[l].pending.length > 0) return false;
    held ||= lanes[l].holding();
  }
  if (!held) return true;
  publishTails(lanes);
  for (const lane of lanes) if (lane.holding()) lane.release(lane.readPos);
  return true;
}
