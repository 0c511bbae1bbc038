/**
 * The connection API in one place: sends, closes and lookups of sessions, each routed to the
 * process that owns the session (this one, another BASE worker through the mailbox, or the
 * master's reactor threads in PROCESS mode), and what this side knows of sessions in between
 * (the ones it asked to close, `sendwait`s, the info of the session whose `close` runs).
 * @module
 */

import {
  CloseHow,
  ForwardSend,
  layout,
  RecordType,
  SendFlag,
  SessionState,
} from "./_ffi/layout.ts";
import { decodeClientInfo } from "./client_info.ts";
import { concatBytes } from "./bytes.ts";
import type { ClientInfo } from "./client_info.ts";
import { ErrorCode } from "./errors.ts";
import { parseIp } from "./ip.ts";
import type { Lane } from "./ipc/lane.ts";
import type { ServerContext } from "./context.ts";

const encoder = new TextEncoder();
const empty = new Uint8Array(0);

/** What the connection API reads of the server as it runs. */
export class Sessions {
  #ctx: ServerContext;
  /** Sessions this process asked to close, until their close record comes. */
  readonly closing = new Set<number>();
  /** `sendwait`s waiting for a session's output to be written. */
  #drainWaiters = new Map<number, ((written: boolean) => void)[]>();
  /** During a `close` callback: the info its record carried (the session may be gone). */
  ended: { sessionId: number; buffer: ArrayBuffer } | undefined;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  /** A `drained` record: the `sendwait`s of the session settle. */
  drained(sessionId: number, written: boolean) {
    const waiters = this.#drainWaiters.get(sessionId);
    this.#drainWaiters.delete(sessionId);
    for (const resolve of waiters ?? []) resolve(written);
  }

  /** Asks the session's reactor to close it (`how`: `CloseHow`), from this side's own reasons. */
  requestClose(sessionId: number, how: number) {
    this.closing.add(sessionId);
    const lane = this.laneOf(sessionId);
    lane.push(RecordType.closeRequest, sessionId, how, empty);
    this.#ctx.sentOn(lane);
  }

  /**
   * `Server.send`. `unit` > 0: the bytes are WebSocket frames of `unit` bytes each (the last
   * shorter), cut into ring records only between them; every record but the last says the
   * message goes on (`SendFlag.wsMore`). `head`: bytes that go first (a frame's header, joined
   * to `data` in the ring record itself when both fit one).
   */
  send(
    sessionId: number,
    data: Uint8Array | string,
    flags = 0,
    aux = 0,
    unit = 0,
    head?: Uint8Array,
  ): boolean {
    if (!this.#ctx.live()) {
      this.#ctx.lastError = ErrorCode.serverNotRunning;
      return false;
    }
    let state = this.state(sessionId, this.#unsentOf(sessionId, false));
    // Over the limit by every session's unsent bytes: look again with this session's own.
    if (state & SessionState.overLimit) {
      state = this.state(sessionId, this.#unsentOf(sessionId, true));
    }
    if (state !== SessionState.open && state !== SessionState.peerClosed) {
      if (state & SessionState.overLimit) {
        this.#ctx.lastError = ErrorCode.outputBufferOverflow;
      }
      return false;
    }
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError(`send() takes a Uint8Array or a string, got ${typeof data}`);
    }
    // (An empty send only carries `flags`: the end of an HTTP response whose bytes went.)
    if (bytes.length === 0 && flags === 0 && !head) {
      this.#ctx.lastError = ErrorCode.noPayload;
      return false;
    }
    const forward = this.forwardTo(sessionId);
    if (head && (forward >= 0 || head.length + bytes.length > this.laneOf(sessionId).sendChunk)) {
      return this.send(sessionId, concatBytes([head, bytes]), flags, aux, unit);
    }
    if (forward >= 0) {
      // (Counted as a response by the worker that writes it.)
      const forwardAux = unit | (flags & SendFlag.wsMore ? ForwardSend.wsMore : 0);
      this.#ctx.mailbox!.send(forward, RecordType.forwardSend, sessionId, forwardAux, bytes);
      this.#ctx.mailed();
      return true;
    }
    const lane = this.laneOf(sessionId);
    if (head) {
      lane.push(RecordType.send | (flags << 8), sessionId, aux, bytes, head);
      this.#ctx.counters.response++;
      this.#ctx.sentOn(lane);
      return true;
    }
    const sendChunk = unit > 0 && unit <= lane.sendChunk
      ? lane.sendChunk - lane.sendChunk % unit
      : lane.sendChunk;
    if (bytes.length === 0) lane.push(RecordType.send | (flags << 8), sessionId, aux, bytes);
    for (let offset = 0; offset < bytes.length; offset += sendChunk) {
      const chunk = bytes.length <= sendChunk ? bytes : bytes.subarray(offset, offset + sendChunk);
      // `flags` (`SendFlag`) go with the last record.
      const last = offset + sendChunk >= bytes.length;
      // (Every record of an HTTP response says so, for the core: not only the last.)
      const more = unit > 0
        ? SendFlag.wsMore << 8
        : flags & (SendFlag.responsePart | SendFlag.responseEnd)
        ? SendFlag.responsePart << 8
        : 0;
      lane.push(RecordType.send | (last ? flags << 8 : more), sessionId, last ? aux : 0, chunk);
    }
    this.#ctx.counters.response++;
    this.#ctx.sentOn(lane);
    return true;
  }

  /**
   * The endpoint to forward a send or close to, or -1 when this process writes it itself. A
   * BASE worker owns its sessions only (the owner is `(id - 1) % workerNum`); task workers, user
   * processes and the master own none and forward to that worker, which in PROCESS mode can
   * write to any session.
   */
  forwardTo(sessionId: number): number {
    const role = this.#ctx.role;
    if (role.kind === "single") return -1;
    if (role.kind === "worker" && role.workerType === "event") {
      if (this.#ctx.noReactor) return -1;
      const owner = (sessionId - 1) % this.#ctx.options.workerNum;
      if (owner === role.workerId) return -1;
    }
    return (sessionId - 1) % this.#ctx.options.workerNum;
  }

  /**
   * What this process sent to a session that its reactor has not taken yet (in the outbound
   * ring, or waiting for room in it): with the reactor's queue, it counts against
   * `socketBufferSize`. Not `exact`: the cheap bound, every session's bytes in the ring.
   */
  #unsentOf(sessionId: number, exact: boolean): number {
    if (!Number.isInteger(sessionId) || sessionId <= 0 || this.#ctx.lanes.length === 0) return 0;
    const lane = this.laneOf(sessionId);
    const unsent = lane.unsent;
    if (!unsent) return 0;
    unsent.settle(Atomics.load(lane.u32, lane.outHead));
    const waiting = lane.pending.length > 0 ? lane.pendingBytes.get(sessionId) ?? 0 : 0;
    return Math.min(0xffff_ffff, (exact ? unsent.of(sessionId) : unsent.total) + waiting);
  }

  /** The session's state, with `closing` applied and `lastError` set when not usable. */
  state(sessionId: number, unsent = 0): number {
    if (this.closing.has(sessionId)) {
      this.#ctx.lastError = ErrorCode.sessionClosing;
      return SessionState.closing;
    }
    if (!Number.isInteger(sessionId) || sessionId <= 0 || sessionId > 0xffff_ffff) {
      this.#ctx.lastError = ErrorCode.sessionInvalidId;
      return SessionState.gone;
    }
    const state = this.coreState(sessionId, unsent);
    if (state === SessionState.gone) this.#ctx.lastError = ErrorCode.sessionNotExist;
    else if (state === SessionState.closing) this.#ctx.lastError = ErrorCode.sessionClosing;
    return state;
  }

  /**
   * The session's state in the core's tables (`SessionState`, with `overLimit` when its queued
   * output plus `unsent` bytes not taken yet reach `socketBufferSize`).
   */
  coreState(sessionId: number, unsent = 0): number {
    // In a tree every session is in the region's tables (this worker's own ones too).
    const region = this.#ctx.region;
    return region
      ? this.#ctx.lib.zg_region_session_state(region.pointer, sessionId, unsent)
      : this.#ctx.lib.zg_session_state(this.#ctx.handle, sessionId, unsent);
  }

  /** `Server.close`. */
  close(sessionId: number, reset = false): boolean {
    if (!this.#ctx.live()) return false;
    // After the peer's EOF the server closes the session itself (once `close` has run), so
    // only an open session can be closed here; a closing one (its output still being written)
    // can still be reset, and a second graceful close of it is refused.
    let state = this.state(sessionId) & 0xff;
    // (A session this worker asked to close may be gone from the core meanwhile.)
    if (this.closing.has(sessionId)) state = this.coreState(sessionId) & 0xff;
    if (state === SessionState.gone) {
      this.#ctx.lastError = ErrorCode.sessionNotExist;
      return false;
    }
    const closing = state === SessionState.closing || this.closing.has(sessionId);
    if (closing && !reset) {
      this.#ctx.lastError = ErrorCode.sessionClosed;
      return false;
    }
    if (state !== SessionState.open && !closing) {
      if (state === SessionState.peerClosed) {
        this.#ctx.lastError = ErrorCode.sessionClosedByClient;
      }
      return false;
    }
    const forward = this.forwardTo(sessionId);
    if (forward >= 0) {
      this.#ctx.mailbox!.send(forward, RecordType.forwardClose, sessionId, reset ? 1 : 0, empty);
      this.#ctx.mailed();
      return true;
    }
    this.closing.add(sessionId);
    const lane = this.laneOf(sessionId);
    lane.push(
      RecordType.closeRequest,
      sessionId,
      reset ? CloseHow.reset : CloseHow.graceful,
      new Uint8Array(0),
    );
    this.#ctx.sentOn(lane);
    return true;
  }

  /** `Server.bind`. */
  bind(sessionId: number, uid: number): boolean {
    if (!Number.isInteger(uid) || uid <= 0 || uid > 0xffff_ffff) {
      throw new RangeError(`bind() takes a uid from 1 to 2^32 - 1, got ${uid}`);
    }
    if (!this.#ctx.noReactor || this.#ctx.options.dispatchMode !== 5) {
      this.#ctx.lastError = ErrorCode.serverNotRunning;
      this.#ctx.log.warning("bind() works only in PROCESS mode with dispatchMode 5 (uid)");
      return false;
    }
    if (!Number.isInteger(sessionId) || sessionId <= 0 || sessionId > 0xffff_ffff) {
      this.#ctx.lastError = ErrorCode.sessionInvalidId;
      return false;
    }
    const status = this.#ctx.lib.zg_region_bind(this.#ctx.region!.pointer, sessionId, uid);
    if (status === 0) return true;
    this.#ctx.lastError = status === 8 ? ErrorCode.sessionNotExist : ErrorCode.invalidParams;
    return false;
  }

  /** `Server.sendto`. */
  sendto(address: string, port: number, data: Uint8Array | string, serverSocket = 0): boolean {
    if (!this.#ctx.live() || this.#ctx.lanes.length === 0) {
      this.#ctx.lastError = ErrorCode.serverNotRunning;
      return false;
    }
    const sockType = serverSocket === 0
      ? this.#ctx.options.sockType
      : this.#ctx.ports[serverSocket - 1]?.sockType;
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let payload: Uint8Array;
    if (sockType === "unixDgram") {
      // To a Unix datagram socket's path (the port is not used).
      const path = encoder.encode(address);
      if (path.length === 0 || path.length > 107 || bytes.length > 212_992) {
        this.#ctx.lastError = ErrorCode.invalidParams;
        return false;
      }
      const size = 8 + ((path.length + 7) & ~7);
      payload = new Uint8Array(size + bytes.length);
      payload[0] = 1;
      payload[2] = path.length;
      payload[4] = size;
      payload.set(path, 8);
      payload.set(bytes, size);
    } else {
      const ip = parseIp(address);
      if (
        sockType !== "udp" || !ip || !Number.isInteger(port) || port < 1 || port > 65535 ||
        bytes.length > 65507
      ) {
        this.#ctx.lastError = sockType === "udp"
          ? ErrorCode.invalidParams
          : ErrorCode.serverNotRunning;
        return false;
      }
      payload = new Uint8Array(layout.packetAddressSize + bytes.length);
      payload[0] = ip.length === 4 ? 4 : 6;
      payload[2] = port & 0xff;
      payload[3] = port >> 8;
      payload[4] = layout.packetAddressSize;
      payload.set(ip, 8);
      payload.set(bytes, layout.packetAddressSize);
    }
    const lane = this.#ctx.lanes[0];
    if (payload.length > lane.ringBytes / 2 - layout.recordHeaderSize) {
      // One record must fit half the ring (a smaller `ringSize` than the datagram needs).
      this.#ctx.lastError = ErrorCode.invalidParams;
      return false;
    }
    lane.push(RecordType.sendto, 0, serverSocket, payload);
    this.#ctx.counters.response++;
    this.#ctx.sentOn(lane);
    return true;
  }

  /** `Server.sendwait`. */
  sendwait(sessionId: number, data: Uint8Array | string): Promise<boolean> {
    if (!this.send(sessionId, data)) return Promise.resolve(false);
    if (this.forwardTo(sessionId) >= 0) {
      // Another worker writes it: the data went, but nobody here hears when.
      this.#ctx.log.warning("sendwait on another worker's session resolves once forwarded");
      return Promise.resolve(true);
    }
    return this.whenDrained(sessionId);
  }

  /**
   * Resolves true once everything queued for the session is written to its socket, false when
   * the session ends first (the wait behind `sendwait`, without sending).
   */
  whenDrained(sessionId: number): Promise<boolean> {
    if (!this.#ctx.live() || this.forwardTo(sessionId) >= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiters = this.#drainWaiters.get(sessionId) ?? [];
      waiters.push(resolve);
      this.#drainWaiters.set(sessionId, waiters);
      const lane = this.laneOf(sessionId);
      lane.push(RecordType.drainRequest, sessionId, 0, empty);
      this.#ctx.sentOn(lane);
    });
  }

  /** `Server.sendfile`. */
  sendfile(sessionId: number, path: string, offset = 0, length = 0): boolean {
    if (!this.#ctx.live()) {
      this.#ctx.lastError = ErrorCode.serverNotRunning;
      return false;
    }
    if (
      !Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0
    ) {
      throw new RangeError(
        `sendfile() takes a non-negative offset and length, got ${offset}, ${length}`,
      );
    }
    const state = this.state(sessionId);
    if (state !== SessionState.open && state !== SessionState.peerClosed) return false;
    let absolute: string;
    try {
      absolute = Deno.realPathSync(path);
      if (!Deno.statSync(absolute).isFile) throw new Error("not a file");
    } catch {
      this.#ctx.lastError = ErrorCode.invalidParams;
      this.#ctx.log.warning(`sendfile: no file at ${path}`);
      return false;
    }
    if (this.forwardTo(sessionId) >= 0) {
      this.#ctx.lastError = ErrorCode.invalidParams;
      this.#ctx.log.warning(
        "sendfile acts on this worker's own sessions (or any, in PROCESS mode)",
      );
      return false;
    }
    return this.queueFile(sessionId, absolute, offset, length);
  }

  /**
   * Queues `length` bytes (0: to the end) of the file at `absolute` from `offset` for a session
   * of this worker's, the file resolved already (`sendfile`, an HTTP response's file). False
   * when the session is gone.
   */
  queueFile(sessionId: number, absolute: string, offset: number, length: number): boolean {
    const state = this.state(sessionId);
    if (state !== SessionState.open && state !== SessionState.peerClosed) return false;
    const name = encoder.encode(absolute);
    const payload = new Uint8Array(16 + name.length);
    const view = new DataView(payload.buffer);
    view.setBigUint64(0, BigInt(offset), true);
    view.setBigUint64(8, BigInt(length), true);
    payload.set(name, 16);
    const lane = this.laneOf(sessionId);
    lane.push(RecordType.sendfileRequest, sessionId, 0, payload);
    this.#ctx.counters.response++;
    this.#ctx.sentOn(lane);
    return true;
  }

  /** A session's `WebSocketState` (its status 0: not a WebSocket, or gone). */
  websocketStatus(sessionId: number): number {
    if (!Number.isInteger(sessionId) || sessionId <= 0 || sessionId > 0xffff_ffff) return 0;
    const ctx = this.#ctx;
    if (!ctx.canLookUp()) return 0;
    return ctx.lib.zg_session_websocket(ctx.handle, ctx.region?.pointer ?? null, sessionId);
  }

  /** `Server.pause`, `resume` and `confirm`. */
  setPaused(sessionId: number, paused: boolean): boolean {
    if (!this.#ctx.live() || !this.exists(sessionId)) return false;
    if (this.forwardTo(sessionId) >= 0) {
      this.#ctx.lastError = ErrorCode.invalidParams;
      this.#ctx.log.warning(
        "pause/resume/confirm act on this worker's own sessions (or any, in PROCESS mode)",
      );
      return false;
    }
    const lane = this.laneOf(sessionId);
    lane.push(RecordType.pauseRequest, sessionId, paused ? 1 : 0, empty);
    this.#ctx.sentOn(lane);
    return true;
  }

  /** `Server.protect`. */
  protect(sessionId: number, on = true): boolean {
    if (!this.#ctx.canLookUp() || !Number.isInteger(sessionId) || sessionId <= 0) return false;
    const region = this.#ctx.region;
    const status = this.#ctx.lib.zg_session_protect(
      region ? null : this.#ctx.handle,
      region ? region.pointer : null,
      sessionId,
      on ? 1 : 0,
    );
    if (status !== 0) this.#ctx.lastError = ErrorCode.sessionNotExist;
    return status === 0;
  }

  /** `Server.heartbeat`. */
  heartbeat(ifCloseConnection = true): number[] | false {
    const serverLimit = this.#ctx.options.heartbeatIdleTime ||
      2 * this.#ctx.options.heartbeatCheckInterval;
    const limits = [
      serverLimit,
      ...this.#ctx.ports.map((p) => p.ownHeartbeatIdleTime || serverLimit),
    ];
    if (!limits.some((limit) => limit > 0)) return false;
    const idle: number[] = [];
    const now = Date.now() / 1000;
    for (let start = 0;;) {
      const ids = this.getClientList(start, 100);
      if (ids.length === 0) break;
      for (const id of ids) {
        const buffer = this.infoBuffer(id);
        if (!buffer) continue;
        const view = new DataView(buffer);
        if (view.getUint32(layout.clientInfoProtected, true) !== 0) continue;
        const limit = limits[view.getUint32(layout.clientInfoListener, true)] ?? serverLimit;
        const lastRecv = view.getFloat64(layout.clientInfoConnectTime + 8, true);
        const connected = view.getFloat64(layout.clientInfoConnectTime, true);
        if (limit > 0 && now - Math.max(lastRecv, connected) >= limit) idle.push(id);
      }
      start = ids[ids.length - 1];
    }
    if (ifCloseConnection) { for (const id of idle) this.close(id); }
    return idle;
  }

  /** `Server.exists`. */
  exists(sessionId: number): boolean {
    if (!this.#ctx.canLookUp()) return false;
    return (this.state(sessionId) & 0xff) === SessionState.open;
  }

  /** `Server.getClientInfo`. */
  getClientInfo(sessionId: number): ClientInfo | null {
    if (
      !this.#ctx.canLookUp() || !Number.isInteger(sessionId) || sessionId <= 0 ||
      sessionId > 0xffff_ffff
    ) {
      this.#ctx.lastError = ErrorCode.sessionInvalidId;
      return null;
    }
    const buffer = this.infoBuffer(sessionId);
    if (!buffer) {
      this.#ctx.lastError = ErrorCode.sessionNotExist;
      return null;
    }
    const owner = this.#ctx.options.mode === "process"
      ? undefined
      : (sessionId - 1) % this.#ctx.options.workerNum;
    return decodeClientInfo(buffer, sessionId, owner);
  }

  /** The core's `abi.ClientInfo` of a session, or null when it does not exist. */
  infoBuffer(sessionId: number): ArrayBuffer | null {
    if (this.ended?.sessionId === sessionId) return this.ended.buffer;
    const buffer = new ArrayBuffer(layout.clientInfoSize);
    const bytes = new Uint8Array(buffer);
    const region = this.#ctx.region;
    const status = region
      ? this.#ctx.lib.zg_region_client_info(region.pointer, sessionId, bytes)
      : this.#ctx.lib.zg_client_info(this.#ctx.handle, sessionId, bytes);
    return status === 0 ? buffer : null;
  }

  /** `Server.getClientList`. */
  getClientList(startSessionId = 0, count = 10): number[] {
    if (!Number.isInteger(count) || count < 1 || count > 100) {
      throw new RangeError(`getClientList() takes a count from 1 to 100, got ${count}`);
    }
    if (!Number.isInteger(startSessionId) || startSessionId < 0 || startSessionId > 0xffff_ffff) {
      throw new RangeError(
        `getClientList() takes a start id from 0 to 2^32 - 1, got ${startSessionId}`,
      );
    }
    if (!this.#ctx.canLookUp()) return [];
    const out = new Uint32Array(count);
    const region = this.#ctx.region;
    const n = this.#ctx.lib.zg_client_list(
      region ? null : this.#ctx.handle,
      region ? region.pointer : null,
      startSessionId,
      count,
      out,
    );
    return [...out.subarray(0, n)];
  }

  /** The lane of the reactor that owns a session: reactor `(id - 1) % reactors`. */
  laneOf(sessionId: number): Lane {
    const lanes = this.#ctx.lanes;
    return lanes.length === 1 ? lanes[0] : lanes[(sessionId - 1) % lanes.length];
  }
}
