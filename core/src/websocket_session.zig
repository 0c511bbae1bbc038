//! The reactor's side of a WebSocket connection (an HTTP socket with `open_websocket_protocol`):
//! the upgrade request checked and, unless the worker's `handshake` callback answers it,
//! answered here (101 with Sec-WebSocket-Accept); then frames read, unmasked and reassembled in
//! the session's input buffer, text checked as UTF-8, pings answered, a Close echoed, and each
//! whole message handed to a worker as one record (`Message` below, then the payload).
//!
//! In the input buffer a message being reassembled keeps its first fragment's payload where
//! it came; each later fragment's payload is moved up to follow it, and control frames in
//! between are answered and skipped. Nothing is copied out of the buffer but to the ring.
const std = @import("std");
const abi = @import("abi.zig");
const http = @import("http.zig");
const websocket = @import("websocket.zig");
const session_table = @import("session_table.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const Session = session_table.Session;
const Delivery = @import("read.zig").Delivery;
const pubsub = @import("pubsub.zig");
const Opcode = websocket.Opcode;
const posix = std.posix;
const log = std.log.scoped(.websocket);

/// Swoole's `websocket_status` of a connection (`getClientInfo`).
pub const Status = enum(u8) {
    /// Plain HTTP (no upgrade).
    none = 0,
    /// The upgrade request is in a worker's `handshake` callback.
    handshake = 2,
    active = 3,
    /// A Close was sent or received: nothing more is read.
    closing = 4,
};

/// What the listener's `open_websocket_*` options say (abi.FramingConfig.websocket bits).
pub const Settings = struct {
    enabled: bool = false,
    /// The worker's `handshake` callback answers upgrades (otherwise the reactor does).
    handshake_in_worker: bool = false,
    /// Pings, pongs, closes go to the worker as messages too (Swoole's
    /// `open_websocket_ping_frame`, `…_pong_frame`, `…_close_frame`); a ping the worker sees
    /// is answered by the worker.
    deliver_ping: bool = false,
    deliver_pong: bool = false,
    deliver_close: bool = false,
    /// `close_on_backpressure_limit`: a connection whose output would pass
    /// `socket_buffer_size` is closed (reset) rather than miss a published message.
    close_on_backpressure: bool = false,
    /// `websocket_compression`: permessage-deflate when the client offers it.
    compression: bool = false,
    /// `websocket_max_message_size`: a message longer than this closes with 1009.
    max_message: u64 = 2 * 1024 * 1024,
    /// `websocket_ping_interval`: a ping to a connection that sent nothing this long (0: off).
    ping_ns: i64 = 0,
    /// `websocket_idle_timeout`: a connection that sent nothing this long is closed (0: off).
    idle_ns: i64 = 0,

    pub const bit_enabled: u32 = 1;
    pub const bit_handshake: u32 = 2;
    pub const bit_ping: u32 = 4;
    pub const bit_pong: u32 = 8;
    pub const bit_close: u32 = 16;
    pub const bit_close_on_backpressure: u32 = 32;
    pub const bit_compression: u32 = 64;

    pub fn parse(bits: u32, max_message: u32, ping_ms: u32, idle_ms: u32) Settings {
        return .{
            .ping_ns = @as(i64, ping_ms) * std.time.ns_per_ms,
            .idle_ns = @as(i64, idle_ms) * std.time.ns_per_ms,
            .enabled = bits & bit_enabled != 0,
            .handshake_in_worker = bits & bit_handshake != 0,
            .deliver_ping = bits & bit_ping != 0,
            .deliver_pong = bits & bit_pong != 0,
            .deliver_close = bits & bit_close != 0,
            .close_on_backpressure = bits & bit_close_on_backpressure != 0,
            .compression = bits & bit_compression != 0,
            .max_message = if (max_message == 0) 2 * 1024 * 1024 else max_message,
        };
    }
};

/// What a worker gets before a message's payload (its first word 0, which no HTTP request's
/// envelope has: that is how the worker tells them apart).
pub const Message = extern struct {
    zero: u32 = 0,
    opcode: u8,
    /// 1: the message is whole (always, today).
    fin: u8 = 1,
    /// `compressed`: the payload is permessage-deflate data, for the worker to inflate.
    reserved: u16 = 0,

    pub const compressed: u16 = 1;
};

/// A connection's WebSocket state, kept in its session.
pub const Conn = struct {
    status: Status = .none,
    /// The message being reassembled: its opcode (0: none), where its payload starts and how
    /// long it is so far (from `in_start`), and whether it is whole and waits for ring room.
    msg_opcode: u4 = 0,
    complete: bool = false,
    msg_off: u32 = 0,
    msg_len: u64 = 0,
    /// Where the frames not read yet start (from `in_start`).
    raw: u64 = 0,
    /// The message being reassembled came compressed (RSV1 on its first frame).
    msg_compressed: bool = false,
    /// permessage-deflate was negotiated for the connection (read from other threads).
    deflate: bool = false,
    /// When the reactor last pinged it (wall clock, as the session's times), 0: never.
    pinged_ns: i64 = 0,
    /// A worker's message to it is unfinished (`send_flag_ws_more`): its lane + 1, else 0.
    /// Published frames wait in `held` meanwhile (pubsub.zig), written once it is finished.
    out_open_lane: u16 = 0,
    held: std.ArrayList(u8) = .empty,
    /// The last timers' pass that found it not read on purpose (paused, held), 0: none.
    unread_ns: i64 = 0,
    /// Its own idle timeout (`setTimers`), in place of the listener's; pinged after half.
    own_timers: bool = false,
    own_idle_ns: i64 = 0,

    fn resetMessage(w: *Conn) void {
        w.msg_opcode = 0;
        w.complete = false;
        w.msg_off = 0;
        w.msg_len = 0;
        w.raw = 0;
        w.msg_compressed = false;
    }

    pub fn statusNow(w: *const Conn) u8 {
        return @intFromEnum(@atomicLoad(Status, &w.status, .monotonic));
    }
};

fn setStatus(s: *Session, status: Status) void {
    @atomicStore(Status, &s.ws.status, status, .monotonic);
}

/// What became of an upgrade request.
pub const Upgrade = union(enum) {
    /// Not an upgrade to WebSocket: an HTTP request as any other.
    not_websocket,
    /// Responses are still due before it: it is read again once they are written.
    wait,
    /// A bad upgrade: the caller refuses it with this.
    refuse: http.Reject,
    /// 426 was written: the connection ends.
    closed,
    /// The ring is full: nothing of it happened.
    blocked,
    /// The worker's `handshake` callback gets it (the caller hands it over, marked so).
    to_worker,
    /// Answered with 101 here, and the worker told (its `open` callback).
    upgraded,
};

fn headerValue(head: *const http.Head, raw: []const u8, name: []const u8) ?[]const u8 {
    for (head.headers[0..head.header_count]) |h| {
        if (std.ascii.eqlIgnoreCase(raw[h.name_off..][0..h.name_len], name)) return raw[h.value_off..][0..h.value_len];
    }
    return null;
}

/// The Sec-WebSocket-Extensions answer to a permessage-deflate offer (websocket.offersDeflate).
pub const deflate_answer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// An HTTP request that says `Connection: upgrade`, on a WebSocket listener: checked
/// (RFC 6455 4.2.1), then answered here or handed to the worker's handshake.
pub fn upgrade(r: *Reactor, s: *Session, head: *http.Head, raw: []const u8, body_len: usize) Upgrade {
    const settings = r.settingsOf(s.listener).websocket;
    const to = headerValue(head, raw, "upgrade") orelse return .not_websocket;
    if (!websocket.listHas(to, "websocket")) return .not_websocket;
    if (s.http.in_flight > 0) return .wait;
    const method = raw[head.start..][0..head.method_len];
    if (!std.mem.eql(u8, method, "GET")) return .{ .refuse = .{ .status = 400, .why = "a WebSocket upgrade that is not a GET" } };
    if (head.minor != 1) return .{ .refuse = .{ .status = 400, .why = "a WebSocket upgrade on HTTP/1.0" } };
    if (body_len != 0) return .{ .refuse = .{ .status = 400, .why = "a WebSocket upgrade with a body" } };
    const version = headerValue(head, raw, "sec-websocket-version") orelse "";
    if (!std.mem.eql(u8, std.mem.trim(u8, version, " \t"), "13")) {
        log.info("session {d}: 426: a WebSocket upgrade of version \"{s}\", not 13", .{ s.id, version[0..@min(version.len, 16)] });
        r.tally(s.listener, "protocol_error_count", 1);
        r.tally(s.listener, "http_request_count", 1);
        r.httpAnswered(s, 426);
        s.http.ended = true;
        const id = s.id;
        r.sendTo(id, "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        if (r.sessions.get(id) != null and (s.state == .open or s.state == .peer_closed)) {
            r.closeAfterOutput(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.PROTO));
        }
        return .closed;
    }
    const key = std.mem.trim(u8, headerValue(head, raw, "sec-websocket-key") orelse "", " \t");
    if (!websocket.validKey(key)) return .{ .refuse = .{ .status = 400, .why = "a WebSocket upgrade without a valid Sec-WebSocket-Key" } };
    const deflate = settings.compression and websocket.offersDeflate(headerValue(head, raw, "sec-websocket-extensions") orelse "");
    if (deflate) head.flags |= http.flag_websocket_deflate;
    if (settings.handshake_in_worker) {
        // (The worker's answer says whether it takes the offer: `deflateAccepted`.)
        // (Its status changes once it is in the ring: `handedToWorker`.)
        head.flags |= http.flag_websocket;
        return .to_worker;
    }
    // The worker hears of it first (its `open` gets the request), so that nothing the ring
    // refuses leaves a client upgraded and the worker unaware.
    head.flags |= http.flag_websocket | http.flag_websocket_open;
    var buffer: [http.envelope_max]u8 = undefined;
    const prefix = http.envelope(head, 0, &buffer);
    if (!r.pushMessageParts(s, .{ prefix, raw })) return .blocked;
    var accept: [28]u8 = undefined;
    var answer: [256]u8 = undefined;
    const extension = if (deflate) "Sec-WebSocket-Extensions: " ++ deflate_answer ++ "\r\n" else "";
    const text = std.fmt.bufPrint(&answer, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {s}\r\n{s}\r\n", .{ websocket.acceptValue(key, &accept), extension }) catch unreachable;
    r.tally(s.listener, "http_request_count", 1);
    r.httpAnswered(s, 101);
    @atomicStore(bool, &s.ws.deflate, deflate, .monotonic);
    setStatus(s, .active);
    const id = s.id;
    r.sendTo(id, text);
    // (Writing may have closed the session: its slot released.)
    if (r.sessions.get(id) == null or (s.state != .open and s.state != .peer_closed)) return .closed;
    return .upgraded;
}

/// The upgrade went to the worker's `handshake` callback: nothing more is read until it answers.
pub fn handedToWorker(s: *Session) void {
    setStatus(s, .handshake);
}

/// The worker's handshake answered (status `status`): 101 makes the connection a WebSocket,
/// anything else ends it once written.
pub fn handshakeAnswered(r: *Reactor, s: *Session, status: u32) void {
    if (s.state != .open and s.state != .peer_closed) return;
    if (status == 101) {
        setStatus(s, .active);
        s.http.waiting = false;
        if (s.state == .open) r.markReady(s);
        // Frames pushed while the handshake was in a worker's hands go after the 101.
        if (s.ws.held.items.len > 0) {
            var held = s.ws.held;
            s.ws.held = .empty;
            defer held.deinit(r.allocator);
            r.sendTo(s.id, held.items);
        }
        return;
    }
    setStatus(s, .none);
    s.http.ended = true;
    if (s.ws.held.items.len > 0) r.count("send_dropped_count", 1);
    s.ws.held.clearAndFree(r.allocator);
}

/// A send record from `lane` for WebSocket session `id`: held while its handshake is in a
/// worker's hands (`heldForHandshake`), else written; then, unless it is a control frame, what
/// it does to a message under way (pubsub.messageProgress).
pub fn sendRecord(r: *Reactor, id: u32, lane: u16, flags: u8, payload: []const u8) void {
    if (heldForHandshake(r, r.sessions.get(id).?, flags, payload)) return;
    r.sendTo(id, payload);
    if (flags & abi.send_flag_ws_control == 0) pubsub.messageProgress(r, id, lane, flags & abi.send_flag_ws_more != 0);
}

/// A send record while the handshake is in a worker's hands: one that is not part of the
/// handshake's answer (`send_flag_response_*`) is a push from elsewhere, held until the 101
/// goes out (within `socket_buffer_size`; beyond, dropped). True when held.
fn heldForHandshake(r: *Reactor, s: *Session, flags: u8, payload: []const u8) bool {
    if (s.ws.status != .handshake) return false;
    if (flags & (abi.send_flag_response_end | abi.send_flag_response_part) != 0) return false;
    if (s.ws.held.items.len + payload.len > r.config.socket_buffer_size) {
        r.count("send_dropped_count", 1);
        return true;
    }
    s.ws.held.appendSlice(r.allocator, payload) catch r.count("send_dropped_count", 1);
    return true;
}

/// Hands every whole message in the session's input to a worker, answering control frames.
pub fn deliverFrames(r: *Reactor, s: *Session) Delivery {
    const w = &s.ws;
    switch (w.status) {
        .none => unreachable,
        .handshake => {
            // Not read further until the worker answers (the input stays bounded).
            s.http.waiting = true;
            return .ok;
        },
        .closing => {
            s.in_start = s.in.items.len;
            return .ok;
        },
        .active => {},
    }
    const settings = r.settingsOf(s.listener).websocket;
    while (true) {
        const base = s.in_start;
        if (w.complete) {
            if (!deliver(r, s, w.msg_opcode, w.msg_compressed, s.in.items[base + w.msg_off ..][0..@intCast(w.msg_len)])) return .blocked;
            s.in_start += @intCast(w.raw);
            w.resetMessage();
            continue;
        }
        const data = s.in.items[base + @as(usize, @intCast(w.raw)) ..];
        if (data.len == 0) break;
        const h = switch (websocket.parseHeader(data, w.deflate and w.msg_opcode == 0)) {
            .need_more => break,
            .fail => |f| return protocolFail(r, s, f),
            .frame => |frame| frame,
        };
        const frame_len = h.len + h.payload_len;
        if (h.isControl()) {
            if (data.len < frame_len) break;
            // (Copied before unmasking: a control frame the ring refuses is read again.)
            var payload: [websocket.control_max]u8 = undefined;
            const n: usize = @intCast(h.payload_len);
            @memcpy(payload[0..n], data[h.len..][0..n]);
            websocket.unmask(payload[0..n], h.mask, 0);
            switch (control(r, s, settings, h.opcode, payload[0..n])) {
                .blocked => return .blocked,
                .closed => return .closed,
                .ok => {},
            }
            if (w.msg_opcode == 0) s.in_start += @intCast(frame_len) else w.raw += frame_len;
            if (overGap(w, settings)) return protocolFail(r, s, gap_fail);
            continue;
        }
        if (h.opcode == Opcode.continuation and w.msg_opcode == 0) {
            return protocolFail(r, s, .{ .code = websocket.CloseCode.protocol_error, .why = "a continuation frame with no message begun" });
        }
        if (h.opcode != Opcode.continuation and w.msg_opcode != 0) {
            return protocolFail(r, s, .{ .code = websocket.CloseCode.protocol_error, .why = "a new message before the last one ended" });
        }
        if (w.msg_len + h.payload_len > settings.max_message) {
            return protocolFail(r, s, .{ .code = websocket.CloseCode.too_big, .why = "a message over websocketMaxMessageSize" });
        }
        if (data.len < frame_len) break;
        const n: usize = @intCast(h.payload_len);
        const payload = data[h.len..][0..n];
        websocket.unmask(payload, h.mask, 0);
        if (w.msg_opcode == 0) {
            w.msg_opcode = h.opcode;
            w.msg_compressed = h.rsv1;
            w.msg_off = @intCast(w.raw + h.len);
            w.msg_len = n;
        } else {
            const to = base + w.msg_off + @as(usize, @intCast(w.msg_len));
            std.mem.copyForwards(u8, s.in.items[to..][0..n], payload);
            w.msg_len += n;
        }
        w.raw += frame_len;
        if (overGap(w, settings)) return protocolFail(r, s, gap_fail);
        if (!h.fin) continue;
        // (A compressed text is checked by the worker, once inflated.)
        if (w.msg_opcode == Opcode.text and !w.msg_compressed and !std.unicode.utf8ValidateSlice(s.in.items[base + w.msg_off ..][0..@intCast(w.msg_len)])) {
            return protocolFail(r, s, .{ .code = websocket.CloseCode.invalid_data, .why = "a text message that is not UTF-8" });
        }
        w.complete = true;
    }
    return .ok;
}

/// The bytes of a message being reassembled that are not its payload (fragment headers,
/// control frames between them) stay in the buffer until it is whole: bounded like the payload.
fn overGap(w: *const Conn, settings: Settings) bool {
    return w.msg_opcode != 0 and w.raw - w.msg_off - w.msg_len > settings.max_message;
}

const gap_fail: websocket.Fail = .{ .code = websocket.CloseCode.too_big, .why = "more fragment and control frame bytes in a message than websocketMaxMessageSize" };

fn deliver(r: *Reactor, s: *Session, opcode: u4, compressed: bool, payload: []const u8) bool {
    const prefix: Message = .{ .opcode = opcode, .reserved = if (compressed) Message.compressed else 0 };
    if (!r.pushMessageParts(s, .{ std.mem.asBytes(&prefix), payload })) return false;
    s.last_dispatch_time_ns = r.now_ns;
    return true;
}

fn control(r: *Reactor, s: *Session, settings: Settings, opcode: u4, payload: []const u8) Delivery {
    switch (opcode) {
        Opcode.ping => {
            if (settings.deliver_ping) return if (deliver(r, s, opcode, false, payload)) .ok else .blocked;
            // A peer that pings and does not read gets no more pongs once its output is full
            // (RFC 6455 5.5.3 lets an endpoint answer only the latest of several pings).
            if (@atomicLoad(u64, &s.out_queued, .monotonic) >= r.config.socket_buffer_size) {
                r.count("send_dropped_count", 1);
                return .ok;
            }
            var frame: [2 + websocket.control_max]u8 = undefined;
            var head: [10]u8 = undefined;
            const h = websocket.frameHeader(true, Opcode.pong, payload.len, &head);
            @memcpy(frame[0..2], h);
            @memcpy(frame[2..][0..payload.len], payload);
            const id = s.id;
            r.sendTo(id, frame[0 .. 2 + payload.len]);
            if (r.sessions.get(id) == null or s.state != .open) return .closed;
            return .ok;
        },
        Opcode.pong => {
            if (settings.deliver_pong) return if (deliver(r, s, opcode, false, payload)) .ok else .blocked;
            return .ok;
        },
        Opcode.close => {
            if (websocket.checkClose(payload)) |f| return protocolFail(r, s, f);
            if (settings.deliver_close and !deliver(r, s, opcode, false, payload)) return .blocked;
            // The Close is echoed with its code, then the connection ends.
            var frame: [2 + websocket.control_max]u8 = undefined;
            const echo = if (payload.len >= 2)
                websocket.closeFrame(std.mem.readInt(u16, payload[0..2], .big), "", &frame)
            else
                &[_]u8{ 0x88, 0 };
            const id = s.id;
            setStatus(s, .closing);
            r.sendTo(id, echo);
            if (r.sessions.get(id) != null and (s.state == .open or s.state == .peer_closed)) r.closeAfterOutput(s, 0, 0);
            return .closed;
        },
        else => unreachable,
    }
}

/// The ping and idle timers of an open WebSocket (from the HTTP timers' pass): a ping once it
/// has been quiet for `ping_ns` (and again each `ping_ns` it stays quiet), a Close (1001) once
/// it has sent nothing for `idle_ns`. Any frame from the peer, a pong too, counts.
pub fn timers(r: *Reactor, s: *Session) void {
    if (s.ws.status != .active) return;
    var settings = r.settingsOf(s.listener).websocket;
    if (s.ws.own_timers) {
        settings.idle_ns = s.ws.own_idle_ns;
        settings.ping_ns = @divFloor(s.ws.own_idle_ns, 2);
    }
    if (settings.ping_ns == 0 and settings.idle_ns == 0) return;
    // (The session times are the wall clock's.)
    // Not read on purpose (paused, held for its queue): what it sent waits unread, so its
    // silence is not the peer's; the timers start again when it is read again.
    if (s.paused or s.queue_held) {
        s.ws.unread_ns = r.now_ns;
        return;
    }
    const heard = @max(@max(s.connect_time_ns, s.last_recv_time_ns), s.ws.unread_ns);
    if (settings.idle_ns > 0 and r.now_ns - heard > settings.idle_ns) {
        log.info("session {d}: nothing from the peer in {d} ms; closing with 1001", .{ s.id, @divFloor(settings.idle_ns, std.time.ns_per_ms) });
        r.tally(s.listener, "heartbeat_close_count", 1);
        closeWith(r, s, 1001, "idle", abi.close_flag_server, @intFromEnum(posix.E.TIMEDOUT));
        return;
    }
    if (settings.ping_ns > 0 and r.now_ns - @max(heard, s.ws.pinged_ns) >= settings.ping_ns) {
        s.ws.pinged_ns = r.now_ns;
        r.sendTo(s.id, &.{ 0x89, 0x00 });
    }
}

/// A `websocket_deflate` record: the worker's 101 for session `id` (queued after this) takes
/// the client's permessage-deflate offer.
pub fn deflateAccepted(r: *Reactor, id: u32) void {
    const s = r.sessions.get(id) orelse return;
    if (s.ws.status != .handshake) return;
    @atomicStore(bool, &s.ws.deflate, true, .monotonic);
}

/// A `websocket_fail` record: the worker refused a message of session `id` (`code`, `why`).
pub fn workerRefused(r: *Reactor, id: u32, code: u32, why: []const u8) void {
    const s = r.sessions.get(id) orelse return;
    if (s.ws.status != .active or (s.state != .open and s.state != .peer_closed)) return;
    log.info("session {d}: closing with {d}: {s}", .{ id, code, why[0..@min(why.len, websocket.control_max - 2)] });
    r.tally(s.listener, "protocol_error_count", 1);
    closeWith(r, s, @intCast(code & 0xffff), why[0..@min(why.len, websocket.control_max - 2)], abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.PROTO));
}

/// A `websocket_timers` record: session `id` gets an idle timeout of its own (`ms`, 0: none).
pub fn setTimers(r: *Reactor, id: u32, ms: u32) void {
    const s = r.sessions.get(id) orelse return;
    if (s.ws.status == .none) return;
    s.ws.own_timers = true;
    s.ws.own_idle_ns = @as(i64, ms) * std.time.ns_per_ms;
}

/// Shutdown: an open WebSocket whose output has room hears why it ends (1001), best effort (the
/// connection is closed right after).
pub fn goingAway(r: *Reactor, s: *Session) void {
    if (s.ws.status != .active or s.hasOutput()) return;
    var frame: [2 + websocket.control_max]u8 = undefined;
    setStatus(s, .closing);
    _ = r.writeSome(s, websocket.closeFrame(1001, "server going away", &frame));
}

/// A frame the protocol forbids: a Close with the reason, then the connection ends.
fn protocolFail(r: *Reactor, s: *Session, f: websocket.Fail) Delivery {
    log.info("session {d}: closing with {d}: {s}", .{ s.id, f.code, f.why });
    r.tally(s.listener, "protocol_error_count", 1);
    closeWith(r, s, f.code, f.why, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.PROTO));
    return .closed;
}

/// A Close with `code` and `why`, then the connection ends once it is written (the close
/// record gets `flags` and `errno`).
pub fn closeWith(r: *Reactor, s: *Session, code: u16, why: []const u8, flags: u8, errno: u32) void {
    var frame: [2 + websocket.control_max]u8 = undefined;
    const id = s.id;
    setStatus(s, .closing);
    r.sendTo(id, websocket.closeFrame(code, why, &frame));
    if (r.sessions.get(id) != null and (s.state == .open or s.state == .peer_closed)) {
        r.closeAfterOutput(s, flags, errno);
    }
}
