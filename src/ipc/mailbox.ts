/**
 * Mailboxes: how the processes of a tree talk to each other (tasks and their results, pipe
 * messages, sends forwarded to the worker that owns a session). Every pair of endpoints shares
 * one channel in the region (two SPSC rings, see `Region.mailChannelOffset`); each endpoint has
 * an eventfd doorbell that its peers ring when they publish to it while it is parked. Messages
 * larger than one record travel in chunks and arrive whole, in order per pair.
 * @module
 */

import { layout, MailFlag, RecordType } from "../_ffi/layout.ts";
import type { Library } from "../_ffi/library.ts";
import { concatBytes } from "../bytes.ts";
import { Lane, recordEnd } from "./lane.ts";
import type { Region } from "./region.ts";

/** Receives one whole message; `payload` is valid only during the call. */
export type MailHandler = (
  peer: number,
  type: number,
  flags: number,
  id: number,
  aux: number,
  payload: Uint8Array,
) => void;

export class Mailbox {
  /** This process's endpoint number. */
  readonly self: number;
  /** By peer endpoint; undefined for `self`. */
  readonly lanes: (Lane | undefined)[];
  /** Chunks of a message still arriving, by peer. */
  #partial: Uint8Array[][] = [];
  /** The record type of each peer's message still arriving. */
  #partialType: number[] = [];
  /** By peer: where `admit` last refused a message (-1: nowhere). */
  #refusedAt: number[] = [];

  /**
   * Consulted at the start of each message (its first chunk, or a whole one): false leaves it,
   * and whatever follows it from that peer, in the ring, for this endpoint's successor.
   */
  admit: ((type: number) => boolean) | undefined;

  #region: Region;

  constructor(region: Region, self: number, doorbells: number[], lib: Library) {
    this.self = self;
    this.#region = region;
    if (doorbells.length !== region.endpointCount) {
      throw new Error(
        `expected ${region.endpointCount} doorbell fds from the manager, got ${doorbells.length}`,
      );
    }
    this.lanes = doorbells.map((fd, peer) =>
      peer === self ? undefined : new Lane(
        region.memory,
        region.mailChannelOffset(self, peer),
        () => lib.zg_fd_kick(fd),
        self > peer,
      )
    );
    this.#partial = doorbells.map(() => []);
    this.#partialType = doorbells.map(() => 0);
    this.#refusedAt = doorbells.map(() => -1);
  }

  /** Queues a message for `peer` (chunked when large); `publish` makes it visible. */
  send(peer: number, type: number, id: number, aux: number, payload: Uint8Array, flags = 0) {
    const lane = this.lanes[peer];
    if (!lane) throw new RangeError(`no mailbox to endpoint ${peer}`);
    this.#region.countMail();
    const chunk = lane.sendChunk;
    if (payload.length <= chunk) {
      lane.push(type | (flags << 8), id, aux, payload);
      return;
    }
    // first (with more), more …, last: a receiver that starts or ends mid-message (a sender
    // killed halfway, a receiver replaced halfway) can tell, and drops the pieces.
    for (let at = 0; at < payload.length; at += chunk) {
      const edge = at === 0
        ? MailFlag.first | MailFlag.more
        : at + chunk < payload.length
        ? MailFlag.more
        : MailFlag.last;
      lane.push(type | ((flags | edge) << 8), id, aux, payload.subarray(at, at + chunk));
    }
  }

  publish() {
    for (const lane of this.lanes) lane?.publishOut();
  }

  flushPending() {
    for (const lane of this.lanes) lane?.flushPending();
  }

  /** Delivers every whole message published so far; returns how many records it read. */
  drain(handler: MailHandler): number {
    let handled = 0;
    const lanes = this.lanes;
    for (let peer = 0; peer < lanes.length; peer++) {
      const lane = lanes[peer];
      if (!lane) continue;
      const u32 = lane.u32;
      const tail = Atomics.load(u32, lane.inTail);
      let pos = lane.readPos;
      if (pos === tail) continue;
      try {
        while (pos !== tail) {
          const at = lane.inAt(pos);
          const word = at >>> 2;
          const len = u32[word];
          const type = lane.u8[at + layout.recordType];
          const flags = lane.u8[at + layout.recordFlags];
          if (this.admit && type !== RecordType.pad && startsMessage(flags)) {
            // A message from this peer left unfinished (its sender died halfway) is not
            // arriving any more: `admit` must not count it.
            if (this.#partial[peer].length > 0) this.#dropPartial(peer);
            if (!this.admit(type)) {
              this.#refusedAt[peer] = pos;
              break;
            }
          }
          pos = recordEnd(pos, len);
          // A successor of this process (if it dies now) starts after this record: one in
          // hand is lost with a dying process, none is handled twice.
          lane.take(pos);
          if (type === RecordType.pad) continue;
          handled++;
          const start = at + layout.recordHeaderSize;
          const view = lane.u8.subarray(start, start + len);
          const payload = this.#assemble(peer, type, flags, view);
          if (payload === undefined) continue;
          const plain = flags & ~(MailFlag.more | MailFlag.first | MailFlag.last);
          handler(peer, type, plain, u32[word + 2], u32[word + 3], payload);
        }
      } finally {
        lane.release(pos);
      }
    }
    return handled;
  }

  /**
   * Puts chunked messages back together: the whole payload once complete, else undefined.
   * Pieces without their first chunk, and a message left unfinished, are dropped.
   */
  #assemble(peer: number, type: number, flags: number, view: Uint8Array): Uint8Array | undefined {
    const partial = this.#partial[peer];
    if (flags & MailFlag.first) {
      if (partial.length > 0) this.#dropPartial(peer);
      this.#partial[peer] = [view.slice()];
      this.#partialType[peer] = type;
      return undefined;
    }
    if (flags & (MailFlag.more | MailFlag.last)) {
      if (partial.length === 0) return undefined; // its start was lost with another process
      partial.push(flags & MailFlag.last ? view : view.slice());
      if (flags & MailFlag.more) return undefined;
      this.#partial[peer] = [];
      return concatBytes(partial);
    }
    if (partial.length > 0) this.#dropPartial(peer);
    return view;
  }

  /** A message left unfinished (its sender died halfway): its pieces go. */
  #dropPartial(peer: number) {
    this.#partial[peer] = [];
  }

  /** How many messages of `type` are partly here (their first chunk, not yet their last). */
  arriving(type: number): number {
    let n = 0;
    for (let peer = 0; peer < this.lanes.length; peer++) {
      if (this.#partial[peer].length > 0 && this.#partialType[peer] === type) n++;
    }
    return n;
  }

  /** Whether a peer published a message this endpoint has not read or refused. */
  hasInput(): boolean {
    return this.lanes.some((lane, peer) =>
      lane !== undefined && lane.hasInput() && lane.readPos !== this.#refusedAt[peer]
    );
  }

  /**
   * Before sleeping: ask every peer to ring on new mail, and to ring when it frees room for
   * what waits here. False (nothing announced) when there is mail already or pending output
   * moved.
   */
  prepareParking(): boolean {
    let ready = false;
    for (const lane of this.lanes) {
      if (!lane) continue;
      Atomics.store(lane.u32, lane.inParked, 1);
      if (lane.pending.length > 0) {
        Atomics.store(lane.u32, lane.outProducerWaiting, 1);
        const before = lane.pending.length;
        lane.flushPending();
        if (lane.pending.length < before) ready = true;
      }
    }
    if (this.hasInput()) ready = true;
    if (ready) this.unpark();
    return !ready;
  }

  unpark() {
    for (const lane of this.lanes) {
      if (!lane) continue;
      Atomics.store(lane.u32, lane.inParked, 0);
    }
  }
}

/** A message's first chunk, or a whole message. */
function startsMessage(flags: number): boolean {
  return (flags & MailFlag.first) !== 0 || (flags & (MailFlag.more | MailFlag.last)) === 0;
}
