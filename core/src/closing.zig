//! Closing sessions (graceful after the queued output, or reset), the heartbeat, and the
//! shutdown phases; sessions of a worker that died (PROCESS mode).
const std = @import("std");
const abi = @import("abi.zig");
const ring = @import("ring.zig");
const framing = @import("framing.zig");
const session_table = @import("session_table.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const Session = session_table.Session;
const linux = std.os.linux;
const posix = std.posix;
const c = std.c;
const assert = std.debug.assert;
const log = std.log.scoped(.reactor);
const orphans = @import("orphans.zig");
const Linger = reactor.Linger;
const tag_linger = reactor.tag_linger;
const kick = reactor.kick;
const monoNs = reactor.monoNs;

/// `stopped` goes last to every lane, after its close records; without room, the worker's
/// kick brings us back here (or, for a worker that is gone, max_wait_time runs out).
pub fn sendStopped(r: *Reactor) void {
    var done = true;
    for (r.lanes, 0..) |*lane, i| {
        if (lane.stopped_sent) continue;
        if (!r.lanePending(@intCast(i)) and lane.inbound.push(.stopped, 0, r.reactorId(), 0, 0, "")) {
            // (Also for a worker that is gone: one spawned just before the shutdown may not
            // have attached yet, and reads `shutdown` and `stopped` when it does. Without
            // room, it waits for that successor to make some, up to max_wait_time.)
            lane.stopped_sent = true;
        } else {
            _ = r.noRoom(lane, 0);
            done = false;
        }
    }
    if (!done and r.gaveUpWaiting()) {
        log.warn("shutdown: a worker took no records within max_wait_time; stopping without it", .{});
        done = true;
    }
    if (done) r.phase = .stopped;
}

/// PROCESS mode: a worker may be dead (its successor not yet spawned), so shutdown waits
/// for workers no longer than max_wait_time. A BASE worker is this very process: it always
/// answers.
pub fn gaveUpWaiting(r: *const Reactor) bool {
    return r.attach != null and monoNs() >= r.phase_deadline_ns;
}

/// PROCESS mode, from the master's JS thread once worker `lane` is gone and before its
/// successor is spawned (so nobody else consumes its inbound ring): the record it had in
/// hand is let go of and its session noted for this reactor's thread to close
/// (orphans.zig).
pub fn workerExited(r: *Reactor, lane_index: u16) void {
    const lane = &r.lanes[lane_index];
    lane.orphans.takeOver(&lane.inbound);
    @atomicStore(u32, &lane.worker_exited, 1, .release);
    kick(r.kick_fd);
}

/// Sessions past the peer's EOF wait for their worker's answer to the close before the
/// socket closes. A worker that died may have taken the close record with it: close those
/// sessions here rather than hold them (and a `max_connection` place) forever.
///
/// With `max_queued_bytes`, the dead worker's unhandled bytes will never be subtracted: every
/// session's count starts again from 0 (in the round-robin modes any worker may hold some of
/// any session's bytes), so none stays held for good. The successor's subtractions for what
/// is left in the ring take counts below 0 for a while, which only lets those sessions read
/// a little more.
///
/// The sessions of the records the dead worker had in hand (see `workerExited`) close
/// gracefully: what it sent before is written first (its last sends are consumed here
/// first), then FIN, and the close event goes where close events go.
pub fn closeOrphans(r: *Reactor) void {
    for (r.lanes, 0..) |*lane, i| {
        if (@atomicLoad(u32, &lane.worker_exited, .acquire) == 0) continue;
        @atomicStore(u32, &lane.worker_exited, 0, .release);
        r.consumeOutbound();
        var ids: [4]u32 = undefined;
        for (lane.orphans.take(&ids)) |id| {
            const s = r.sessions.get(id) orelse continue;
            if (s.state != .open) continue;
            log.warn("session {d}: worker {d} died while handling it; closing it", .{ id, i });
            r.closeRequested(id, 0);
        }
        for (r.sessions.slots) |*s| {
            if (s.state == .peer_closed and s.close_notified and r.closeLane(s) == i) {
                r.closeSession(s, abi.close_flag_server, 0, false);
            }
            if (r.max_queued > 0 and s.state != .free) @atomicStore(i64, &s.recv_queued, 0, .monotonic);
        }
        if (r.held.items.len > 0) r.held_check_ns = 0;
    }
}

/// PROCESS mode: the lane's worker is not running (not started yet, or gone: the master
/// clears the pid of a worker that exited; one that drains is exited with its pid).
pub fn workerGone(r: *const Reactor, lane: u16) bool {
    const a = r.attach orelse return false;
    const status = @atomicLoad(u32, &a.workers[lane].status, .monotonic);
    return status == 0 or @atomicLoad(i32, &a.workers[lane].pid, .monotonic) == 0;
}

/// Before start: the heartbeat (0 interval: off).
pub fn setHeartbeat(r: *Reactor, interval_ms: u32, idle_ms: u32) !void {
    if (r.started) return error.BadState;
    r.heartbeat_interval_ns = @as(i64, interval_ms) * std.time.ns_per_ms;
    r.heartbeat_idle_ns = @as(i64, if (idle_ms == 0) 2 * interval_ms else idle_ms) * std.time.ns_per_ms;
    r.heartbeat_next_ns = monoNs() + r.heartbeat_interval_ns;
}

/// Closes the sessions idle for the heartbeat's idle time, unless protected.
pub fn heartbeat(r: *Reactor) void {
    if (r.heartbeat_interval_ns == 0 or r.phase != .running) return;
    const now = monoNs();
    if (now < r.heartbeat_next_ns) return;
    r.heartbeat_next_ns = now + r.heartbeat_interval_ns;
    for (r.sessions.slots) |*s| {
        const port_idle = r.settingsOf(s.listener).heartbeat_idle_ns;
        const idle_ns = if (port_idle > 0) port_idle else r.heartbeat_idle_ns;
        switch (s.state) {
            .open => {
                if (@atomicLoad(u8, &s.protected, .acquire) != 0) continue;
                const last = @max(s.last_recv_time_ns, s.connect_time_ns);
                if (r.now_ns - last < idle_ns) continue;
                log.info("session {d}: nothing received for {d} ms; closed by the heartbeat", .{ s.id, @divFloor(r.now_ns - last, std.time.ns_per_ms) });
                r.tally(s.listener, "heartbeat_close_count", 1);
                r.closeAfterOutput(s, abi.close_flag_server, @intFromEnum(posix.E.TIMEDOUT));
            },
            // A graceful close whose peer takes none of its output: nothing else would end
            // it, so the heartbeat resets it once its output made no progress for as long.
            .closing => {
                const last = @max(s.last_send_time_ns, s.connect_time_ns);
                if (r.now_ns - last < idle_ns) continue;
                log.info("session {d}: closing, and none of its output was taken for {d} ms; reset by the heartbeat", .{ s.id, @divFloor(r.now_ns - last, std.time.ns_per_ms) });
                // (Counted once: the heartbeat may have started this close itself.)
                if (s.close_errno != @intFromEnum(posix.E.TIMEDOUT)) r.tally(s.listener, "heartbeat_close_count", 1);
                r.closeSession(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.TIMEDOUT), true);
            },
            .free, .peer_closed => {},
        }
    }
}

/// A worker's `close`: `how` is 0 (after the queued output), 1 (reset) or 2 (a protocol
/// error the worker found: counted, and reset like the core's own framing errors).
/// A reset also ends a session that is closing already (its output is dropped); a graceful
/// close of one is nothing more.
pub fn closeRequested(r: *Reactor, session_id: u32, how: u32) void {
    const s = r.sessions.get(session_id) orelse return;
    switch (how) {
        0 => if (s.state != .closing) r.closeAfterOutput(s, abi.close_flag_server, 0),
        1 => r.closeSession(s, abi.close_flag_server, 0, true),
        else => if (s.state != .closing) {
            r.tally(s.listener, "protocol_error_count", 1);
            r.closeAfterOutput(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.PROTO));
        },
    }
}

/// Ends a session after its queued output (then FIN, lingering: see closeSession): at
/// once when nothing is queued, otherwise it is `closing` until the output is written (or
/// makes no progress for a heartbeat idle time, or a reset ends it).
pub fn closeAfterOutput(r: *Reactor, s: *Session, flags: u8, errno: u32) void {
    assert(s.state == .open or s.state == .peer_closed);
    if (!s.hasOutput()) return r.closeSession(s, flags, errno, false);
    s.close_flags = flags;
    s.close_errno = @intCast(errno);
    @atomicStore(session_table.State, &s.state, .closing, .release);
}

/// Closes the socket, frees the slot and (unless it was told already) tells the worker.
/// `abort` resets the connection (RST) and drops queued output.
pub fn closeSession(r: *Reactor, s: *Session, flags: u8, errno: u32, abort: bool) void {
    if (abort) {
        const linger = Linger{ .onoff = 1, .linger = 0 };
        _ = c.setsockopt(s.fd, linux.SOL.SOCKET, linux.SO.LINGER, @ptrCast(&linger), @sizeOf(Linger));
        r.tally(s.listener, "abort_count", 1);
    }
    if (!abort and r.phase == .running and s.state != .peer_closed and !s.peer_hup) {
        // The peer may still be sending: half close, and read it out (linger.zig).
        var event: linux.epoll_event = .{ .events = linux.EPOLL.IN | linux.EPOLL.RDHUP, .data = .{ .u64 = tag_linger | @as(u32, @intCast(s.fd)) } };
        r.lingering.add(r.epoll_fd, s.fd, &event, monoNs());
    } else {
        posix.close(s.fd);
    }
    r.tally(s.listener, "close_count", 1);
    r.untally(s.listener, "connection_num", 1);
    if (r.attach) |a| _ = @atomicRmw(u32, a.connection_total, .Sub, 1, .monotonic);
    const queued = @atomicLoad(u64, &s.out_queued, .monotonic);
    if (queued > 0) r.uncount("send_queued_bytes", queued);
    if (s.connect_pending) {
        // The worker never heard of it: take back its connect record, send no close.
        r.dropPending(s.id);
    } else if (!s.close_notified and r.deliver_session_events) {
        r.pushClose(s, flags, errno);
    }
    if (s.drain_waiters != 0) r.answerDrain(s, false);
    s.close_errno = @intCast(errno);
    r.sessions.release(r.allocator, s);
    // A freed fd ends an accept pause early: the next accept can succeed.
    if (r.accept_resume_ns != 0) r.resumeAccept();
}

pub fn beginShutdown(r: *Reactor) void {
    assert(r.phase == .running);
    for (r.listeners[0..r.listener_count]) |*l| {
        posix.close(l.fd);
        l.fd = -1;
    }
    for (r.ready.items) |slot| r.sessions.slots[slot].on_ready_list = false;
    r.ready.clearRetainingCapacity();
    r.phase = .draining;
    r.phase_deadline_ns = monoNs() + @as(i64, r.config.max_wait_time_ms) * std.time.ns_per_ms;
}

pub fn flushDone(r: *Reactor) bool {
    if (monoNs() >= r.phase_deadline_ns) {
        log.warn("shutdown: output still queued after max_wait_time; closing anyway", .{});
        return true;
    }
    for (r.sessions.slots) |*s| {
        if (s.isLive() and s.hasOutput()) return false;
    }
    return true;
}

/// Closes every session; their close records go out (waiting for room if need be) before
/// `stopped`.
pub fn closeAll(r: *Reactor) void {
    for (r.sessions.slots) |*s| {
        if (s.state == .closing) {
            r.closeSession(s, s.close_flags, @intCast(s.close_errno), false);
        } else if (s.isLive()) {
            r.closeSession(s, abi.close_flag_server, 0, false);
        }
    }
    r.phase = .closing;
    r.phase_deadline_ns = monoNs() + @as(i64, r.config.max_wait_time_ms) * std.time.ns_per_ms;
}
