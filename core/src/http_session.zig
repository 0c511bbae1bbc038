//! The reactor's side of an HTTP/1.1 connection (framing kind 5): it parses each request as
//! it arrives (http.zig) and hands it to a worker whole, as one message (`abi.HttpRequest`, the
//! header table, the raw head, the decoded body); it answers what needs no worker (a refused
//! request, `100 Continue`), in order after the responses still due, and ends the connection
//! after a request that asked to (`Connection: close`, HTTP/1.0 without keep-alive).
//!
//! Responses are sends; the worker marks the last send of each (`send_flag_response_end`),
//! which is how the reactor knows how many requests are in flight on the connection. While
//! one is, the connection's next requests go to the same worker, so that they are answered in
//! order in every dispatch mode.
const std = @import("std");
const abi = @import("abi.zig");
const http = @import("http.zig");
const http_static = @import("http_static.zig");
const websocket_session = @import("websocket_session.zig");
const session_table = @import("session_table.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const Session = session_table.Session;
const posix = std.posix;
const log = std.log.scoped(.http);

/// A connection's parse state and what it owes, kept in its session.
pub const Conn = struct {
    /// How far the end of the head was looked for.
    scanned: u32 = 0,
    /// The head is whole: its length and what it says of the body.
    head_len: u32 = 0,
    content_length: u64 = 0,
    chunked: bool = false,
    expect_continue: bool = false,
    body: http.Chunked = .{},
    /// Requests handed to a worker and not answered yet, and the lane they went to.
    in_flight: u32 = 0,
    lane: u16 = 0,
    /// A refused request waits for the responses before it (its status), or a 100 Continue.
    refused: u16 = 0,
    continue_due: bool = false,
    /// No more requests: the last one asked to close, or one was refused.
    ended: bool = false,
    /// When the first byte of the request being read came (monotonic ns; 0: none yet), and
    /// when its head was whole (its body's clock).
    started_ns: i64 = 0,
    body_since_ns: i64 = 0,
    /// A part of the response being written went out (its head, a chunk).
    partial: bool = false,
    /// `max_pipelined` requests are in flight, or a static file waits for the responses before
    /// it: the connection is not read until one is answered.
    waiting: bool = false,
    /// A static file waits for the connection's queued output to be written.
    waiting_output: bool = false,

    /// The request being read starts over: its parse state and clocks go, what the
    /// connection owes stays. The next request's clock starts with its first byte (it may be
    /// here already).
    fn restartRequest(c: *Conn) void {
        c.* = .{ .in_flight = c.in_flight, .lane = c.lane, .partial = c.partial, .waiting = c.waiting, .waiting_output = c.waiting_output };
    }
};

const Delivery = @import("read.zig").Delivery;

/// Hands every whole request in the session's input to a worker, in order.
pub fn deliverRequests(r: *Reactor, s: *Session) Delivery {
    const c = &s.http;
    const settings = r.settingsOf(s.listener);
    while (true) {
        // Upgraded (or upgrading): what follows is WebSocket frames.
        if (s.ws.status != .none) return websocket_session.deliverFrames(r, s);
        if (c.ended) {
            // Nothing after a refused request or a `Connection: close` one is read as a request.
            s.in.clearRetainingCapacity();
            s.in_start = 0;
            return .ok;
        }
        const data = s.in.items[s.in_start..];
        if (data.len == 0) break;
        if (c.in_flight >= settings.http.max_pipelined) {
            c.waiting = true;
            break;
        }
        var head: http.Head = undefined;
        var parsed = false;
        if (c.started_ns == 0) c.started_ns = reactor.monoNs();
        if (c.head_len == 0) {
            switch (http.parseHead(data, &c.scanned, settings.http, &head)) {
                .need_more => break,
                .reject => |why| return refuse(r, s, why),
                .done => {
                    parsed = true;
                    c.body_since_ns = reactor.monoNs();
                    c.head_len = head.len;
                    c.content_length = head.content_length;
                    c.chunked = head.chunked();
                    c.expect_continue = head.flags & http.flag_expect_continue != 0;
                },
            }
        }
        // The body: Content-Length bytes, or chunks decoded in place up to the last one.
        const body = s.in.items[s.in_start + c.head_len ..];
        var body_len: usize = 0;
        var consumed: usize = 0;
        if (c.chunked) {
            switch (c.body.decode(body, settings.http.body_bytes)) {
                .need_more => {
                    askToContinue(r, s);
                    break;
                },
                .reject => |why| return refuse(r, s, why),
                .done => {
                    body_len = c.body.out;
                    consumed = c.head_len + c.body.in;
                },
            }
        } else {
            if (body.len < c.content_length) {
                askToContinue(r, s);
                break;
            }
            body_len = @intCast(c.content_length);
            consumed = c.head_len + body_len;
        }
        // Whole: the table again (cheap, and only when the head came in an earlier read).
        if (!parsed) {
            var scanned: u32 = 0;
            if (http.parseHead(data[0..c.head_len], &scanned, settings.http, &head) != .done) unreachable;
        }
        if (head.flags & http.flag_upgrade != 0 and settings.websocket.enabled) {
            switch (websocket_session.upgrade(r, s, &head, data[0..c.head_len], body_len)) {
                .not_websocket, .to_worker => {},
                .refuse => |why| return refuse(r, s, why),
                .closed => return .closed,
                .blocked => return .blocked,
                .wait => {
                    c.waiting = true;
                    c.restartRequest();
                    break;
                },
                .upgraded => {
                    s.in_start += consumed;
                    c.restartRequest();
                    continue;
                },
            }
        }
        // (An upgrade is never a static file.)
        const static_files = if (head.flags & http.flag_websocket == 0) r.static_files else null;
        if (static_files) |cfg| {
            const id = s.id;
            const listener = s.listener;
            switch (http_static.serve(r, s, cfg, &head, data[0..c.head_len])) {
                .pass => {},
                .answered => {
                    r.tally(listener, "http_request_count", 1);
                    // Writing may have closed the session (its slot released): nothing of it
                    // is touched then.
                    if (r.sessions.get(id) == null or (s.state != .open and s.state != .peer_closed)) return .closed;
                    s.in_start += consumed;
                    const keep_alive = head.keepAlive();
                    c.restartRequest();
                    if (!keep_alive) {
                        c.ended = true;
                        r.closeAfterOutput(s, abi.close_flag_server, 0);
                        return .closed;
                    }
                    continue;
                },
                .wait_responses, .wait_output => |w| {
                    // Read again (from the head) once what it waits for is done.
                    if (w == .wait_responses) c.waiting = true else c.waiting_output = true;
                    c.restartRequest();
                    break;
                },
            }
        }
        var buffer: [http.envelope_max]u8 = undefined;
        const prefix = http.envelope(&head, @intCast(body_len), &buffer);
        if (!r.pushMessageParts(s, .{ prefix, data[0 .. c.head_len + body_len] })) return .blocked;
        if (c.in_flight == 0) c.lane = s.frame_lane;
        c.in_flight += 1;
        if (head.flags & http.flag_websocket != 0) websocket_session.handedToWorker(s);
        r.tally(s.listener, "http_request_count", 1);
        s.in_start += consumed;
        s.last_dispatch_time_ns = r.now_ns;
        // (An upgrade's connection is the WebSocket's once answered, whatever it said.)
        const keep_alive = head.keepAlive() or head.flags & http.flag_websocket != 0;
        c.restartRequest();
        if (!keep_alive) c.ended = true;
    }
    return .ok;
}

/// How often the timers are looked at.
pub const check_every_ns: i64 = 250 * std.time.ns_per_ms;

/// The HTTP timers, for every open HTTP session: a head not whole within the header timeout
/// gets 408 (after the responses due) and the connection ends; a kept-alive connection idle
/// (nothing in flight, nothing buffered) for the keep-alive timeout is closed.
pub fn timers(r: *Reactor) void {
    const now = reactor.monoNs();
    r.http_check_ns = now + check_every_ns;
    for (r.sessions.slots) |*s| {
        if (s.state != .open or r.protocolOf(s) != .http) continue;
        // (A WebSocket has timers of its own.)
        if (s.ws.status != .none) {
            websocket_session.timers(r, s);
            continue;
        }
        const c = &s.http;
        if (c.ended) continue;
        const limits = r.settingsOf(s.listener).http;
        const buffered = s.in.items.len > s.in_start;
        if (c.head_len == 0 and buffered and c.started_ns != 0 and limits.header_timeout_ns > 0 and
            now - c.started_ns > limits.header_timeout_ns)
        {
            _ = refuse(r, s, .{ .status = 408, .why = "the head did not come in time" });
            continue;
        }
        // A body that trickles in (slow uploads hold a connection and its buffer).
        if (c.head_len != 0 and limits.min_body_rate > 0 and limits.header_timeout_ns > 0) {
            const elapsed = now - c.body_since_ns;
            const got = s.in.items.len - s.in_start - c.head_len;
            if (elapsed > limits.header_timeout_ns and
                @as(u128, got) * std.time.ns_per_s < @as(u128, limits.min_body_rate) * @as(u128, @intCast(elapsed)))
            {
                _ = refuse(r, s, .{ .status = 408, .why = "the body came too slowly" });
                continue;
            }
        }
        if (c.in_flight == 0 and !buffered and limits.keepalive_ns > 0) {
            const last = @max(s.connect_time_ns, @max(s.last_recv_time_ns, s.last_send_time_ns));
            // (The session times are the wall clock's.)
            if (r.now_ns - last > limits.keepalive_ns) {
                log.debug("session {d}: idle for the keep-alive timeout; closing it", .{s.id});
                r.closeAfterOutput(s, abi.close_flag_server, 0);
            }
        }
    }
}

/// The lane the connection's next request must go to (its requests in flight went there), or
/// null when it may go to any.
pub fn pinnedLane(s: *const Session) ?u16 {
    return if (s.http.in_flight > 0) s.http.lane else null;
}

/// A refused request: the answer goes after the responses still due, then the connection ends.
fn refuse(r: *Reactor, s: *Session, why: http.Reject) Delivery {
    log.info("session {d}: {d} {s}: {s}", .{ s.id, why.status, http.reason(why.status), why.why });
    r.tally(s.listener, "protocol_error_count", 1);
    r.tally(s.listener, "http_request_count", 1);
    s.http.ended = true;
    s.http.refused = why.status;
    s.in.clearRetainingCapacity();
    s.in_start = 0;
    if (s.http.in_flight > 0) return .ok;
    answerRefused(r, s);
    return .closed;
}

fn answerRefused(r: *Reactor, s: *Session) void {
    var buffer: [160]u8 = undefined;
    const status = s.http.refused;
    const text = std.fmt.bufPrint(&buffer, "HTTP/1.1 {d} {s}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", .{ status, http.reason(status) }) catch unreachable;
    answered(r, s, status);
    r.sendTo(s.id, text);
    if (r.sessions.get(s.id) == null or s.state != .open) return;
    r.closeAfterOutput(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.PROTO));
}

/// `Expect: 100-continue` and the body is not all here: the client may send it now (at once,
/// or once the responses before it are written).
fn askToContinue(r: *Reactor, s: *Session) void {
    const c = &s.http;
    if (!c.expect_continue) return;
    c.expect_continue = false;
    if (c.in_flight > 0) {
        c.continue_due = true;
        return;
    }
    answered(r, s, 100);
    r.sendTo(s.id, "HTTP/1.1 100 Continue\r\n\r\n");
}

/// A part of a response went out (the rest follows).
pub fn responseBegun(r: *Reactor, session_id: u32) void {
    const s = r.sessions.get(session_id) orelse return;
    s.http.partial = true;
}

/// PROCESS mode: the worker of lane `lane` died. The requests its connections have in flight
/// there are lost with it (those it had not taken yet would be answered by its successor, out
/// of turn): each such connection gets 503, or the end of a response cut short, and closes.
pub fn workerDied(r: *Reactor, lane: u16) void {
    for (r.sessions.slots) |*s| {
        if (s.state != .open and s.state != .peer_closed) continue;
        if (r.protocolOf(s) != .http) continue;
        const c = &s.http;
        if (c.in_flight == 0 or c.lane != lane) continue;
        log.warn("session {d}: its worker died with {d} request(s) unanswered; {s}", .{ s.id, c.in_flight, if (c.partial) "closing it" else "503, then closing it" });
        if (!c.partial) {
            r.sendTo(s.id, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        if (!c.partial) answered(r, s, 503);
        c.in_flight = 0;
        c.ended = true;
        c.refused = 0;
        if (r.sessions.get(s.id) != null and (s.state == .open or s.state == .peer_closed)) {
            r.closeAfterOutput(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.PIPE));
        }
    }
}

/// A response of status `status` was written (counted by class; 0: a status not known).
pub fn answered(r: *Reactor, s: *const Session, status: u32) void {
    switch (status / 100) {
        1 => r.tally(s.listener, "http_1xx_count", 1),
        2 => r.tally(s.listener, "http_2xx_count", 1),
        3 => r.tally(s.listener, "http_3xx_count", 1),
        4 => r.tally(s.listener, "http_4xx_count", 1),
        5 => r.tally(s.listener, "http_5xx_count", 1),
        else => {},
    }
}

/// The connection's queued output is written (it had `waiting_output`): the static file that
/// waited for it goes now.
pub fn outputWritten(r: *Reactor, s: *Session) void {
    if (s.state != .open) return;
    s.http.waiting_output = false;
    r.markReady(s);
}

/// The worker wrote the last of a response (of status `status`, in the record's aux): what
/// waited for it goes now.
pub fn responseEnded(r: *Reactor, session_id: u32, status: u32) void {
    const s = r.sessions.get(session_id) orelse return;
    const c = &s.http;
    answered(r, s, status);
    c.partial = false;
    if (c.in_flight == 0) return;
    c.in_flight -= 1;
    if (s.ws.status == .handshake and c.in_flight == 0) websocket_session.handshakeAnswered(r, s, status);
    if (c.waiting and s.state == .open) {
        // Room for another request: what is buffered goes, and reading goes on.
        c.waiting = false;
        r.markReady(s);
    }
    if (c.in_flight > 0) return;
    if (c.refused != 0) return answerRefused(r, s);
    if (c.continue_due) {
        c.continue_due = false;
        answered(r, s, 100);
        r.sendTo(s.id, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (c.ended and (s.state == .open or s.state == .peer_closed)) {
        r.closeAfterOutput(s, abi.close_flag_server, 0);
    }
}
