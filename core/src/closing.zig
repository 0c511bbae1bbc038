//! Closing a session: gracefully after its queued output (then FIN and a linger), or at once
//! with a reset; a worker's close request.
const std = @import("std");
const abi = @import("abi.zig");
const session_table = @import("session_table.zig");
const reactor = @import("reactor.zig");
const pubsub = @import("pubsub.zig");
const proxy_session = @import("proxy_session.zig");
const Reactor = reactor.Reactor;
const Session = session_table.Session;
const linux = std.os.linux;
const posix = std.posix;
const c = std.c;
const assert = std.debug.assert;
const Linger = reactor.Linger;
const tag_linger = reactor.tag_linger;
const monoNs = reactor.monoNs;

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
    // Its subscriptions go before the worker hears of the close (counts agree with it).
    pubsub.sessionEnded(r, s.id);
    if (s.proxy_pending) {
        // Its PROXY header never came: no worker heard of it.
        proxy_session.closed(r, s);
    } else if (s.connect_pending) {
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
