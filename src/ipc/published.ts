/**
 * A one-worker server's counters for other processes: its JavaScript writes them into its
 * channel's `abi.Published` once per batch (as a tree's worker does into its region slot), and
 * `ziggurat stats` reads them there, with the reactor's, from a copy of the channel's header.
 * @module
 */

import { layout, published, statsFields } from "../_ffi/layout.ts";
import { Counters, singleStats } from "../stats.ts";
import type { ServerStats } from "../stats.ts";

/** Writes `counters` into the `abi.Published` viewed by `view` (f64s). */
export function publishOwn(view: Float64Array, counters: Counters) {
  view[published.requestCount / 8] = counters.request;
  view[published.responseCount / 8] = counters.response;
  view[published.dispatchCount / 8] = counters.dispatch;
  view[published.callbackErrorCount / 8] = counters.callbackErrors;
  view[published.discardCount / 8] = counters.discards;
  for (let c = 1; c <= 5; c++) view[published.http / 8 + c - 1] = counters.http[c];
}

/** The view of `abi.Published` in a channel's memory. */
export function publishedView(memory: ArrayBufferLike, offset = 0): Float64Array {
  return new Float64Array(memory, offset + layout.channelPublished, 11);
}

/**
 * The `stats()` of a one-worker server from a copy of its channel's header (`header`, at least
 * `layout.channelHeaderSize` bytes), and whether it was handling a batch. `minFd` and `maxFd`
 * are not published: they read 0.
 */
export function statsOfHeader(header: Uint8Array): { stats: ServerStats; busy: boolean } {
  const bytes = header.slice(0, layout.channelHeaderSize);
  const view = publishedView(bytes.buffer);
  const own = new Counters();
  own.request = view[published.requestCount / 8];
  own.response = view[published.responseCount / 8];
  own.dispatch = view[published.dispatchCount / 8];
  own.callbackErrors = view[published.callbackErrorCount / 8];
  own.discards = view[published.discardCount / 8];
  for (let c = 1; c <= 5; c++) own.http[c] = view[published.http / 8 + c - 1];
  const busy = view[published.busy / 8] === 1;
  const native = new BigUint64Array(bytes.buffer, layout.channelStats, statsFields.length);
  return { stats: singleStats(native, own, busy, 1, new Int32Array(2)), busy };
}
