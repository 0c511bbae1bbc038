//! The shutdown phases: the listeners close and reading stops (draining), queued output is
//! written (up to max_wait_time), every session closes, and `stopped` ends each lane.
const std = @import("std");
const abi = @import("abi.zig");
const reactor = @import("reactor.zig");
const websocket_session = @import("websocket_session.zig");
const carry = @import("carry.zig");
const Reactor = reactor.Reactor;
const posix = std.posix;
const assert = std.debug.assert;
const log = std.log.scoped(.reactor);
const monoNs = reactor.monoNs;

/// The drain begins: the listeners close (no new sessions), reading stops, and the workers
/// have `max_wait_time` to answer the `shutdown` record.
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

/// Whether every live session's queued output is written (or `max_wait_time` ran out).
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
    // A BASE worker leaving while the tree runs: its WebSockets go on in its successor.
    carry.carryOut(r);
    for (r.sessions.slots) |*s| {
        if (s.state == .closing) {
            r.closeSession(s, s.close_flags, @intCast(s.close_errno), false);
        } else if (s.isLive()) {
            websocket_session.goingAway(r, s);
            if (!s.isLive()) continue;
            r.closeSession(s, abi.close_flag_server, 0, false);
        }
    }
    r.phase = .closing;
    r.phase_deadline_ns = monoNs() + @as(i64, r.config.max_wait_time_ms) * std.time.ns_per_ms;
}

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
