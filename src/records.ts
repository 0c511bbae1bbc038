/**
 * Records to callbacks: the one path from a reactor's record (a receive, a connect, a close, a
 * datagram, a drained output, a watermark) to the user's callback, with what it takes on the
 * way: messages larger than one record put back together, `packageLengthFunc` framing, copies
 * of payloads that outlive the batch, `discardTimeoutRequest`, `maxQueuedBytes` accounting.
 * @module
 */

import { CloseFlag, CloseHow, layout, RecordType, SessionState } from "./_ffi/layout.ts";
import type { ServerContext } from "./context.ts";
import { decodeClientInfo } from "./client_info.ts";
import { errnoName } from "./errors.ts";
import type { PacketInfo, ServerEvents } from "./events.ts";
import { LengthFramer } from "./framer.ts";
import { ipv6 } from "./ip.ts";
import type { Lane } from "./ipc/lane.ts";
import { formatAddress } from "./options.ts";
import type { ResolvedOptions } from "./options.ts";
import { lostStart, MessagePieces } from "./pieces.ts";
import { httpListeners } from "./port.ts";
import type { Port } from "./port.ts";
import type { Sessions } from "./sessions.ts";

const decoder = new TextDecoder();

/** What the record path uses of the server it belongs to. */
export class Records {
  #ctx: ServerContext;
  #sessions: Sessions;
  /** PROCESS mode with `maxQueuedBytes`: the region whose session slots count queued input. */
  #queueRegion: Deno.PointerValue = null;
  /** `discardTimeoutRequest` applies: PROCESS mode, dispatch mode 1 or 3 (see `attach`). */
  #discardClosed = false;
  /** With ports: the port of each session, from its connect. */
  #sessionPort = new Map<number, Port>();
  /** Which listeners speak HTTP (their messages are requests), by index. */
  #httpListeners: boolean[] | undefined;
  /** Messages larger than one record, put back together. */
  #pieces = new MessagePieces();
  /** When the framers next forget the sessions that ended without a close record. */
  #framerSweepAt = 0;
  /** Sessions found gone at the last sweep, and the rings' write positions then. */
  #sweepSuspects: { ids: number[]; marks: number[] } | undefined;
  /** Per listener: the `packageLengthFunc` framer, or null; made at the first message. */
  #framers: (LengthFramer | null)[] | undefined;

  constructor(ctx: ServerContext, sessions: Sessions) {
    this.#ctx = ctx;
    this.#sessions = sessions;
  }

  /**
   * A PROCESS-mode worker (no reactor of its own): `queueRegion` counts queued input (with
   * `maxQueuedBytes`), and `discardTimeoutRequest` applies in dispatch modes 1 and 3.
   */
  attach(queueRegion: Deno.PointerValue) {
    const o = this.#ctx.options;
    this.#queueRegion = queueRegion;
    this.#discardClosed = o.discardTimeoutRequest &&
      (o.dispatchMode === 1 || o.dispatchMode === 3);
  }

  /** `discardTimeoutRequest`: a closed session's data is dropped, counted, logged. */
  #discard(sessionId: number, bytes: number) {
    this.#ctx.counters.discards++;
    if (this.#queueRegion) this.#handled(sessionId, bytes);
    // (Modes 1 and 3 deliver no close: what was kept of the session goes now.)
    this.#pieces.forget(sessionId);
    for (const framer of this.#framers ?? []) framer?.forget(sessionId);
    this.#ctx.callbacks.repeats.report(
      "dropped data of a session that had closed (discardTimeoutRequest)",
      sessionId,
      () =>
        this.#ctx.log.warning(
          `session ${sessionId}: dropped ${bytes} bytes that arrived before it closed (discardTimeoutRequest)`,
        ),
      "warning",
    );
  }

  /**
   * PROCESS mode: pieces of a message whose start was in a worker that died (this one replaced
   * it). The message is lost with that worker; its session closes (gracefully) rather than see
   * the rest as a message of its own.
   */
  #lostMessage(sessionId: number) {
    this.#ctx.log.warning(
      `session ${sessionId}: a message's start was lost with the worker before this one; closing it`,
    );
    this.#sessions.laneOf(sessionId).push(
      RecordType.closeRequest,
      sessionId,
      0,
      new Uint8Array(0),
    );
  }

  /**
   * One record from a reactor to its callback: any but `shutdown` and `stopped`, which are the
   * event loop's own.
   */
  dispatch(lane: Lane, type: number, at: number, len: number, sessionId: number, aux: number) {
    const reactorId = lane.i16[(at + layout.recordReactorId) >>> 1];
    this.#ctx.counters.dispatch++;
    switch (type) {
      case RecordType.receive: {
        const listener = aux;
        if (this.#discardClosed && this.#sessions.coreState(sessionId) === SessionState.gone) {
          this.#discard(sessionId, len);
          return;
        }
        const start = at + layout.recordHeaderSize;
        let data: Uint8Array;
        const flags = lane.u8[at + layout.recordFlags];
        if (flags !== 0) {
          // A message larger than one record: its pieces are put back together.
          const whole = this.#pieces.add(sessionId, flags, lane.u8.subarray(start, start + len));
          if (whole === lostStart) this.#lostMessage(sessionId);
          if (whole === undefined || whole === lostStart) {
            if (this.#queueRegion) this.#handled(sessionId, len);
            return;
          }
          data = whole;
        } else {
          const framer = (this.#framers ??= this.#makeFramers())[listener];
          if (framer) {
            this.#frameByHook(
              framer,
              sessionId,
              reactorId,
              listener,
              lane.u8.subarray(start, start + len),
            );
            if (this.#queueRegion) this.#handled(sessionId, len);
            return;
          }
          const view = lane.u8.subarray(start, start + len);
          // (An HTTP listener's layer copies what it keeps of a WebSocket message itself.)
          const borrows = this.#ctx.options.borrowedViews ||
            (this.#httpListeners ??= httpListeners(this.#ctx.options, this.#ctx.ports))[listener] &&
              this.#ctx.http!.copiesOwn(view);
          data = borrows ? view : this.#copy(lane.u8, start, len);
        }
        this.#receive(sessionId, reactorId, listener, data, len);
        return;
      }
      case RecordType.connect: {
        const listener = aux;
        const port = listener > 0 ? this.#ctx.ports[listener - 1] : undefined;
        if (port) this.#sessionPort.set(sessionId, port);
        if (this.#ctx.log.debugging) this.#logConnect(sessionId, listener);
        const connect = (port?.callbacks.connect as ServerEvents["connect"] | undefined) ??
          this.#ctx.callbacks.events.connect;
        this.#ctx.callbacks.call(
          "connect",
          sessionId,
          () => connect?.(this.#ctx.server, sessionId, reactorId),
        );
        return;
      }
      case RecordType.close: {
        const flags = lane.u8[at + layout.recordFlags];
        if (flags & CloseFlag.error) {
          const errno = aux;
          // A peer that reset or went away is the network's weather: debug, not info.
          const peerGone = errno === 104 || errno === 32;
          const line = `session ${sessionId} closed: ${errnoName(errno)}`;
          if (peerGone) this.#ctx.log.debug(line);
          else this.#ctx.log.info(line);
        }
        let port = this.#sessionPort.get(sessionId);
        if (port) {
          this.#sessionPort.delete(sessionId);
        } else if (len === layout.clientInfoSize) {
          // (A session this worker saw no connect of: a WebSocket its predecessor handed over.)
          const listener =
            lane.u32[(at + layout.recordHeaderSize + layout.clientInfoListener) >>> 2];
          port = listener > 0 ? this.#ctx.ports[listener - 1] : undefined;
        }
        const close = (port?.callbacks.close as ServerEvents["close"] | undefined) ??
          this.#ctx.callbacks.events.close;
        // The record carries the session's info as it ended: `getClientInfo` answers from it
        // inside the callback, though the core may have freed the slot already.
        if (len === layout.clientInfoSize) {
          const start = at + layout.recordHeaderSize;
          this.#sessions.ended = {
            sessionId,
            buffer: lane.u8.slice(start, start + len).buffer,
          };
          if (this.#ctx.log.debugging) {
            this.#logClose(sessionId, this.#sessions.ended.buffer, flags, reactorId);
          }
        }
        this.#ctx.callbacks.call(
          "close",
          sessionId,
          () => close?.(this.#ctx.server, sessionId, reactorId),
        );
        this.#sessions.ended = undefined;
        this.#sessions.closing.delete(sessionId);
        this.#ctx.http?.closed(sessionId);
        this.#pieces.forget(sessionId);
        if (this.#framers) { for (const framer of this.#framers) framer?.forget(sessionId); }
        // After EOF the reactor keeps the socket until we answer, so sends made before this
        // point (and in the close callback) are still written.
        if (flags & CloseFlag.peerEof) {
          this.#sessions.laneOf(sessionId).push(
            RecordType.closeRequest,
            sessionId,
            0,
            new Uint8Array(0),
          );
        }
        return;
      }
      case RecordType.packet: {
        const listener = aux;
        const start = at + layout.recordHeaderSize;
        const family = lane.u8[start] | (lane.u8[start + 1] << 8);
        let port = lane.u8[start + 2] | (lane.u8[start + 3] << 8);
        const size = lane.u8[start + 4] | (lane.u8[start + 5] << 8);
        let address: string;
        if (family === 1) {
          // A Unix socket's peer: its path (empty when it has none), and no port.
          address = decoder.decode(lane.u8.subarray(start + 8, start + 8 + port));
          port = 0;
        } else {
          const addr = lane.u8.subarray(start + 8, start + 24);
          address = family === 6 ? ipv6(addr) : Array.from(addr.subarray(0, 4)).join(".");
        }
        const data = lane.u8.slice(start + size, start + len);
        this.#ctx.counters.request++;
        const info: PacketInfo = {
          address,
          port,
          serverSocket: listener,
          serverPort: this.#ctx.server.port,
          dispatchTime: Date.now() / 1000,
        };
        const packet =
          (listener > 0
            ? this.#ctx.ports[listener - 1]?.callbacks.packet as ServerEvents["packet"] | undefined
            : undefined) ?? this.#ctx.callbacks.events.packet;
        info.serverPort = listener > 0
          ? this.#ctx.ports[listener - 1]?.port ?? this.#ctx.server.port
          : this.#ctx.server.port;
        this.#ctx.callbacks.call("packet", -1, () => packet?.(this.#ctx.server, data, info));
        return;
      }
      case RecordType.drained: {
        const written = aux === 1;
        this.#sessions.drained(sessionId, written);
        return;
      }
      case RecordType.bufferFull:
        this.#ctx.callbacks.call(
          "bufferFull",
          sessionId,
          () => this.#ctx.callbacks.events.bufferFull?.(this.#ctx.server, sessionId),
        );
        return;
      case RecordType.bufferEmpty:
        this.#ctx.callbacks.call(
          "bufferEmpty",
          sessionId,
          () => this.#ctx.callbacks.events.bufferEmpty?.(this.#ctx.server, sessionId),
        );
        return;
      default:
        throw new Error(`unexpected record type ${type} from the reactor`);
    }
  }

  /** Calls the `receive` callback (the port's own, or the server's) with a message. */
  #receive(
    sessionId: number,
    reactorId: number,
    listener: number,
    data: Uint8Array,
    queued = 0,
  ) {
    this.#ctx.counters.request++;
    if ((this.#httpListeners ??= httpListeners(this.#ctx.options, this.#ctx.ports))[listener]) {
      this.#ctx.http!.request(sessionId, data, listener);
      // (`maxQueuedBytes`: a request is in the worker's hands once it is dispatched.)
      if (this.#queueRegion && queued > 0) this.#handled(sessionId, queued);
      return;
    }
    const receive =
      (listener > 0
        ? this.#ctx.ports[listener - 1]?.callbacks.receive as ServerEvents["receive"] | undefined
        : undefined) ?? this.#ctx.callbacks.events.receive!;
    let result: unknown;
    try {
      result = receive(this.#ctx.server, sessionId, reactorId, data);
      if (result instanceof Promise) {
        result = this.#ctx.callbacks.settle(
          result,
          (e) => this.#ctx.callbacks.failed("receive", sessionId, e),
        );
      }
    } catch (error) {
      this.#ctx.callbacks.failed("receive", sessionId, error);
    }
    // `maxQueuedBytes`: the reactor hears that the record's bytes are handled once the
    // callback returns, or for an async one, once its promise settles.
    if (this.#queueRegion && queued > 0) {
      if (result instanceof Promise) result.finally(() => this.#handled(sessionId, queued));
      else this.#handled(sessionId, queued);
    }
  }

  /** `maxQueuedBytes`: tells the reactor that `bytes` of the session's input are handled. */
  #handled(sessionId: number, bytes: number) {
    this.#ctx.lib.zg_region_handled(this.#queueRegion!, sessionId, bytes);
  }

  /** The listeners whose messages `packageLengthFunc` finds (the port's own, or the server's). */
  #makeFramers(): (LengthFramer | null)[] {
    const framer = (o: ResolvedOptions) =>
      o.packageLengthFunc ? new LengthFramer(o.packageLengthFunc, o.packageMaxLength) : null;
    return [
      framer(this.#ctx.options),
      ...this.#ctx.ports.map((p) => {
        const own = p.optionsOver(this.#ctx.options);
        return own ? framer(own) : framer(this.#ctx.options);
      }),
    ];
  }

  /**
   * In the dispatch modes without close records (1, 3 and 5 in PROCESS mode), nothing tells a
   * framer that a session with an unfinished message ended. Once a second, while a framer
   * holds some: the sessions found gone last time are forgotten (with their `closing`
   * marks) if every record that was in the rings then has been read since; those gone now are
   * noted, with the rings' write positions. (A session's records all go into the rings before
   * its slot is freed, and ids never come back, so none of its bytes can follow.)
   */
  #sweepFramers() {
    this.#framerSweepAt = performance.now() + 1000;
    const suspects = this.#sweepSuspects;
    if (suspects && this.#ctx.lanes.every((lane, i) => lane.readPast(suspects.marks[i]))) {
      for (const id of suspects.ids) {
        for (const framer of this.#framers ?? []) framer?.forget(id);
        this.#sessions.closing.delete(id);
      }
      this.#sweepSuspects = undefined;
    }
    if (this.#sweepSuspects) return;
    const gone = (id: number) => (this.#sessions.coreState(id) & 0xff) === SessionState.gone;
    const ids = new Set<number>();
    for (const framer of this.#framers ?? []) {
      for (const id of framer?.sessions() ?? []) if (gone(id)) ids.add(id);
    }
    for (const id of this.#sessions.closing) if (gone(id)) ids.add(id);
    if (ids.size > 0) {
      this.#sweepSuspects = { ids: [...ids], marks: this.#ctx.lanes.map((l) => l.written()) };
    }
  }

  /**
   * A session's bytes on a `packageLengthFunc` listener: each whole message goes to `receive`;
   * a malformed or oversize one closes the session (the reactor counts it).
   */
  #frameByHook(
    framer: LengthFramer,
    sessionId: number,
    reactorId: number,
    listener: number,
    bytes: Uint8Array,
  ) {
    if (this.#sessions.closing.has(sessionId)) return; // (closed for a bad message; the rest is moot)
    if (
      (framer.held > 0 || this.#sessions.closing.size > 0) &&
      performance.now() >= this.#framerSweepAt
    ) this.#sweepFramers();
    const borrowed = this.#ctx.options.borrowedViews;
    const why = framer.feed(sessionId, bytes, (message) => {
      this.#receive(sessionId, reactorId, listener, borrowed ? message : message.slice());
    });
    if (why === undefined) return;
    this.#ctx.log.warning(`session ${sessionId}: ${why}; closing the session`);
    this.#sessions.requestClose(sessionId, CloseHow.protocolError);
  }

  /** `logLevel: "debug"`: who connected, where. */
  #logConnect(sessionId: number, listener: number) {
    const info = this.#sessions.getClientInfo(sessionId);
    const from = !info
      ? "(gone already)"
      : info.socketType === "unix"
      ? "a Unix socket"
      : formatAddress(info.remoteIp, info.remotePort);
    const on = listener > 0 ? `port ${this.#ctx.ports[listener - 1]?.port}` : "the server's port";
    this.#ctx.log.debug(`session ${sessionId}: connected from ${from} on ${on}`);
  }

  /** `logLevel: "debug"`: how a session ended, after how long, having moved how much. */
  #logClose(sessionId: number, buffer: ArrayBuffer, flags: number, reactorId: number) {
    const info = decodeClientInfo(buffer, sessionId, undefined);
    const how = flags & CloseFlag.error
      ? errnoName(info.closeErrno)
      : reactorId < 0
      ? "by the server"
      : "by the peer";
    const seconds = info.connectTime > 0 ? (Date.now() / 1000 - info.connectTime).toFixed(3) : "?";
    this.#ctx.log.debug(
      `session ${sessionId}: closed ${how} after ${seconds} s; read ${info.totalRecvBytes} bytes, wrote ${info.totalSendBytes}`,
    );
  }

  /** A copy of ring bytes that outlives the batch (src/arena.ts). */
  #copy(u8: Uint8Array, start: number, len: number): Uint8Array {
    return this.#ctx.arena.copy(u8.subarray(start, start + len));
  }
}
