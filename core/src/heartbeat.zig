//! The heartbeat: every interval, sessions that received nothing for the idle time (a port's
//! own, where it has one) and are not protected close; a graceful close whose peer takes none of
//! its output is reset.
const std = @import("std");
const abi = @import("abi.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const posix = std.posix;
const log = std.log.scoped(.reactor);
const monoNs = reactor.monoNs;

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
