//! Reading sessions: straight into a lane's inbound ring, or through the framing of the
//! session's port into whole messages; EOF and read errors.
const std = @import("std");
const abi = @import("abi.zig");
const ring = @import("ring.zig");
const framing = @import("framing.zig");
const proxy_session = @import("proxy_session.zig");
const session_table = @import("session_table.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const Lane = reactor.Lane;
const Session = session_table.Session;
const linux = std.os.linux;
const posix = std.posix;
const assert = std.debug.assert;
const log = std.log.scoped(.reactor);
const read_chunk = reactor.read_chunk;
const reads_per_turn = reactor.reads_per_turn;
/// An empty input buffer up to this big goes back to be the reactor's spare.
const spare_max_bytes = 2 * read_chunk;
const rawResult = reactor.rawResult;
const rawErrno = reactor.rawErrno;

pub const ReadOutcome = enum {
    /// Read to EAGAIN, EOF or an error: off the ready list.
    done,
    /// The turn's budget ran out: read on next turn.
    more,
    /// Its worker's ring has no room: read on once the worker frees some.
    blocked,
};

pub const Delivery = enum { ok, blocked, closed };

pub fn markReady(r: *Reactor, s: *Session) void {
    r.ready_blocked = false;
    if (s.on_ready_list) return;
    s.on_ready_list = true;
    r.ready.appendAssumeCapacity(@intCast(r.sessions.slotIndex(s.id)));
}

/// The ready list holds slot indexes, each at most once (`on_ready_list` belongs to the
/// slot): a session that closed while listed leaves its slot's entry to whichever session
/// takes the slot next, so the list never outgrows `max_connection`.
pub fn readReady(r: *Reactor) void {
    assert(r.ready_next.items.len == 0);
    var blocked = true;
    var index: usize = 0;
    while (index < r.ready.items.len) : (index += 1) {
        const slot = r.ready.items[index];
        const s = &r.sessions.slots[slot];
        assert(s.on_ready_list);
        if (s.state != .open) {
            // Closed, closing or past EOF since it was listed: nothing more to read.
            s.on_ready_list = false;
            blocked = false;
            continue;
        }
        if ((s.paused and !s.proxy_pending) or s.queue_held) {
            // Not read until resumed or let go (which lists it again). (A PROXY header is read
            // anyway: the worker that would resume it hears of it only after.)
            s.on_ready_list = false;
            continue;
        }
        const outcome: ReadOutcome = if (s.connect_pending)
            .blocked
        else if (s.proxy_pending)
            proxy_session.readHeader(r, s)
        else
            r.readSession(s);
        switch (outcome) {
            .done => {
                s.on_ready_list = false;
                blocked = false;
            },
            .more => {
                r.ready_next.appendAssumeCapacity(slot);
                blocked = false;
            },
            .blocked => r.ready_next.appendAssumeCapacity(slot),
        }
    }
    r.ready.clearRetainingCapacity();
    std.mem.swap(std.ArrayList(u32), &r.ready, &r.ready_next);
    r.ready_blocked = blocked and r.ready.items.len > 0;
}

/// Reads until EAGAIN, EOF, an error, the turn's budget, or a full ring.
pub fn readSession(r: *Reactor, s: *Session) ReadOutcome {
    assert(s.state == .open);
    switch (r.protocolOf(s)) {
        .none, .worker => {},
        else => return r.readFramed(s),
    }
    var reads: u32 = 0;
    while (reads < reads_per_turn) : (reads += 1) {
        const lane = r.receiveLane(s) orelse return .blocked;
        const room = lane.inbound.reserve(read_chunk) orelse {
            // Room appeared meanwhile: retry. Otherwise round-robin and idle dispatch try
            // another worker (`receiveLane` skips the waiting ones); the sticky modes wait.
            if (!r.noRoom(lane, read_chunk)) continue;
            switch (r.dispatch_mode) {
                .round_robin, .idle_worker => if (r.lanes.len > 1 and r.protocolOf(s) != .worker) continue,
                else => {},
            }
            return .blocked;
        };
        // Raw syscalls on the per-message path: libc's wrappers add cancellation-point
        // bookkeeping that showed in profiles (about 1% of the server's CPU).
        const rc = rawResult(linux.read(s.fd, room.ptr, room.len));
        if (rc > 0) {
            const n: u32 = @intCast(rc);
            lane.inbound.commit(.receive, 0, r.reactorId(), s.id, s.listener, n);
            r.dispatched(lane);
            s.recv_bytes += n;
            s.last_recv_time_ns = r.now_ns;
            s.last_dispatch_time_ns = r.now_ns;
            r.tally(s.listener, "total_recv_bytes", n);
            r.tally(s.listener, "dispatch_count", 1);
            if (r.max_queued > 0 and r.countQueued(s, n)) return .done;
            if (n < room.len and !s.peer_hup) return .done;
            continue;
        }
        // (Nothing came: an idle session does not keep the spare buffer.)
        if (s.in.items.len == 0) giveBack(r, s);
        if (r.readFailed(s, rc)) |outcome| return outcome;
    }
    return .more;
}

/// What a read that returned no bytes means: EOF (the peer closed; what a framed session
/// buffered of an unfinished message goes with it, as in Swoole) or an error ends the
/// reading; EINTR (null) means read again.
pub fn readFailed(r: *Reactor, s: *Session, rc: isize) ?ReadOutcome {
    if (rc == 0) {
        r.peerClosed(s);
        return .done;
    }
    switch (rawErrno(rc)) {
        .AGAIN => return .done,
        .INTR => return null,
        else => |e| {
            r.closeSession(s, abi.close_flag_error, @intFromEnum(e), true);
            return .done;
        },
    }
}

/// Framed protocols: reads into the session's input buffer and delivers each whole message
/// as it completes (messages already buffered go first, so a full ring holds them, not
/// the socket's data).
pub fn readFramed(r: *Reactor, s: *Session) ReadOutcome {
    var reads: u32 = 0;
    while (true) {
        switch (r.deliverMessages(s)) {
            .blocked => return .blocked,
            .closed => return .done,
            .ok => {},
        }
        if (s.queue_held) return .done;
        // HTTP: as many requests in a worker's hands as allowed, or a static file waiting for
        // the output before it: read on once one is answered, or the output written.
        if (s.http.waiting or s.http.waiting_output) return .done;
        if (reads == reads_per_turn) return .more;
        reads += 1;
        // A session with nothing buffered reads into the reactor's spare buffer (given back in
        // `compact` once it is empty again): no allocation per read.
        if (s.in.capacity == 0) std.mem.swap(std.ArrayList(u8), &s.in, &r.spare_in);
        s.in.ensureUnusedCapacity(r.allocator, read_chunk) catch {
            log.err("session {d}: out of memory for its input; closing it", .{s.id});
            r.closeSession(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.NOMEM), true);
            return .done;
        };
        const room = s.in.unusedCapacitySlice();
        const rc = rawResult(linux.read(s.fd, room.ptr, room.len));
        if (rc > 0) {
            const n: usize = @intCast(rc);
            s.in.items.len += n;
            s.recv_bytes += n;
            s.last_recv_time_ns = r.now_ns;
            r.tally(s.listener, "total_recv_bytes", n);
            if (n < room.len and !s.peer_hup) {
                return switch (r.deliverMessages(s)) {
                    .blocked => .blocked,
                    .closed, .ok => .done,
                };
            }
            continue;
        }
        // (Nothing came: an idle session does not keep the spare buffer.)
        if (s.in.items.len == 0) giveBack(r, s);
        if (r.readFailed(s, rc)) |outcome| return outcome;
    }
}

/// Hands every whole message in the session's input buffer to its worker.
pub fn deliverMessages(r: *Reactor, s: *Session) Delivery {
    if (r.protocolOf(s) == .http) return compact(r, s, r.deliverRequests(s));
    while (true) {
        const data = s.in.items[s.in_start..];
        const outcome = framing.next(r.protocolOf(s), data, r.maxLengthOf(s));
        switch (outcome) {
            .need_more => break,
            .message => |n| {
                if (!r.pushMessage(s, data[0..n])) return .blocked;
                s.in_start += n;
                s.last_dispatch_time_ns = r.now_ns;
            },
            .too_long, .negative_length => {
                const why = if (outcome == .too_long) "longer than package_max_length" else "with a negative length";
                log.warn("session {d}: a message {s} ({d} bytes max); closing the session", .{ s.id, why, r.maxLengthOf(s) });
                r.tally(s.listener, "protocol_error_count", 1);
                r.closeAfterOutput(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.PROTO));
                return .closed;
            },
        }
    }
    return compact(r, s, .ok);
}

/// Keeps the partial message at the front of the input buffer; an empty one goes back to be
/// the reactor's spare (when it has none, and it is not big), or is let go of.
fn compact(r: *Reactor, s: *Session, delivery: Delivery) Delivery {
    if (delivery != .ok) return delivery;
    const left = s.in.items.len - s.in_start;
    if (s.in_start > 0) {
        std.mem.copyForwards(u8, s.in.items[0..left], s.in.items[s.in_start..]);
        s.in.shrinkRetainingCapacity(left);
        s.in_start = 0;
    }
    if (left == 0) giveBack(r, s);
    return .ok;
}

/// An empty input buffer goes back to be the reactor's spare (when it has none, and it is not
/// big), or is let go of: every read makes room for `read_chunk` anyway, so an idle session
/// keeps no buffer.
fn giveBack(r: *Reactor, s: *Session) void {
    if (s.in.capacity == 0) return;
    if (r.spare_in.capacity == 0 and s.in.capacity <= spare_max_bytes) {
        s.in.clearRetainingCapacity();
        std.mem.swap(std.ArrayList(u8), &s.in, &r.spare_in);
    } else {
        s.in.clearAndFree(r.allocator);
    }
}

/// Pushes one message into a worker's ring: one record, or pieces of half a ring with
/// `receive_flag_more` on all but the last (all to the same worker). False when the ring is
/// full; the pieces sent so far are remembered and it goes on from there.
pub fn pushMessage(r: *Reactor, s: *Session, message: []const u8) bool {
    return pushMessageParts(r, s, .{ "", message });
}

/// The same for a message in two parts (a prefix the reactor made, then the bytes read).
/// `s.frame_lane` is the lane it went to.
pub fn pushMessageParts(r: *Reactor, s: *Session, parts: [2][]const u8) bool {
    const total = parts[0].len + parts[1].len;
    while (true) {
        const lane: *Lane = if (s.frame_sent > 0) &r.lanes[s.frame_lane] else r.receiveLane(s) orelse return false;
        const piece = @min(total - s.frame_sent, lane.inbound.maxPayload());
        const room = lane.inbound.reserve(@intCast(piece)) orelse {
            if (r.noRoom(lane, @intCast(piece))) return false;
            continue;
        };
        // The piece, from where the message stands, across the two parts.
        var at = s.frame_sent;
        var filled: usize = 0;
        for (parts) |part| {
            if (at >= part.len) {
                at -= part.len;
                continue;
            }
            const n = @min(part.len - at, piece - filled);
            @memcpy(room[filled..][0..n], part[at..][0..n]);
            filled += n;
            at = 0;
            if (filled == piece) break;
        }
        const more = s.frame_sent + piece < total;
        const flags = (if (more) abi.receive_flag_more else 0) | (if (s.frame_sent > 0) abi.receive_flag_continued else 0);
        lane.inbound.commit(.receive, flags, r.reactorId(), s.id, s.listener, @intCast(piece));
        r.dispatched(lane);
        r.tally(s.listener, "dispatch_count", 1);
        if (r.max_queued > 0) _ = r.countQueued(s, @intCast(piece));
        if (s.frame_sent == 0) s.frame_lane = @intCast(lane - r.lanes.ptr);
        if (!more) {
            s.frame_sent = 0;
            return true;
        }
        s.frame_sent += piece;
    }
}

/// EOF from the peer: tell the worker, keep the socket for the output it still queues.
/// Where workers get no close records (dispatch modes 1, 3, 5), close it here once the
/// queued output is written.
pub fn peerClosed(r: *Reactor, s: *Session) void {
    @atomicStore(session_table.State, &s.state, .peer_closed, .release);
    s.close_notified = true;
    if (!r.deliver_session_events) return r.closeRequested(s.id, 0);
    r.pushClose(s, abi.close_flag_peer_eof, 0);
}
