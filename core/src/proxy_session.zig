//! A session on a port with `open_proxy_protocol`: its first bytes must be a PROXY protocol header
//! (proxy_protocol.zig). Until the header is whole the worker has not heard of the session: its
//! connect record waits, so the worker's first sight of it (`connect`, `getClientInfo`, the
//! logs) carries the client's address the header gives. The header is peeked at and only its
//! own bytes are taken from the socket, so what follows it is read as on any other port (framed,
//! HTTP or a stream). No valid header, one cut short by the peer's close, or none within
//! `header_timeout_ns` closes the session, counted as a protocol error (an HTTP port answers 400
//! first); no record of it ever reaches a worker.
const std = @import("std");
const abi = @import("abi.zig");
const proxy_protocol = @import("proxy_protocol.zig");
const session_table = @import("session_table.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const Session = session_table.Session;
const ReadOutcome = @import("read.zig").ReadOutcome;
const linux = std.os.linux;
const posix = std.posix;
const log = std.log.scoped(.reactor);

/// A header must be whole this long after the connection was accepted.
pub const header_timeout_ns: i64 = 10 * std.time.ns_per_s;
/// How often sessions waiting for their header are looked at.
const check_every_ns: i64 = std.time.ns_per_s;

/// A reactor's part (`Reactor.proxy`).
pub const State = struct {
    /// Sessions waiting for their header.
    pending: u32 = 0,
    /// When they are next looked at for the timeout (0: none waits).
    check_ns: i64 = 0,
    /// Refusals are logged at most once a second: when the last line went, and how many
    /// refusals it did not tell of since.
    logged_ns: i64 = std.math.minInt(i64) / 2,
    unlogged: u32 = 0,
};

/// A new session on a port with the PROXY protocol: nothing of it is read but its header.
pub fn begin(r: *Reactor, s: *Session) void {
    const now = reactor.monoNs();
    @atomicStore(bool, &s.proxy_pending, true, .release);
    s.proxy_deadline_ns = now + header_timeout_ns;
    r.proxy.pending += 1;
    if (r.proxy.check_ns == 0) r.proxy.check_ns = now + check_every_ns;
}

/// The session is no longer waiting (its header came, or it closed).
fn end(r: *Reactor, s: *Session) void {
    @atomicStore(bool, &s.proxy_pending, false, .release);
    r.proxy.pending -= 1;
    if (r.proxy.pending == 0) r.proxy.check_ns = 0;
}

/// Closing a session that waits for its header (closing.zig): no worker heard of it.
pub fn closed(r: *Reactor, s: *Session) void {
    if (s.proxy_pending) end(r, s);
}

/// Reads the header of a session waiting for one: `.done` to wait for more bytes (or when the
/// session closed), `.blocked` when its connect record waits for ring room; otherwise the header
/// is taken, the session announced, and the bytes after it read at once.
pub fn readHeader(r: *Reactor, s: *Session) ReadOutcome {
    var buffer: [proxy_protocol.max_v2]u8 = undefined;
    const rc = reactor.rawResult(linux.recvfrom(s.fd, &buffer, buffer.len, linux.MSG.PEEK, null, null));
    if (rc == 0) {
        // Closed before a byte (a balancer's plain TCP check does this): nothing to count.
        r.closeSession(s, 0, 0, false);
        return .done;
    }
    if (rc < 0) {
        switch (reactor.rawErrno(rc)) {
            .AGAIN, .INTR => return .done,
            else => |e| {
                r.closeSession(s, abi.close_flag_error, @intFromEnum(e), true);
                return .done;
            },
        }
    }
    const seen = buffer[0..@intCast(rc)];
    switch (proxy_protocol.parse(seen)) {
        .need_more => {
            if (!s.peer_hup) return .done;
            refuse(r, s, "the connection closed before its PROXY header ended");
            return .done;
        },
        .invalid => |why| {
            refuse(r, s, why);
            return .done;
        },
        .header => |h| {
            // Take the header's bytes, and no more, off the socket.
            const taken = reactor.rawResult(linux.read(s.fd, &buffer, h.len));
            if (taken != @as(isize, @intCast(h.len))) {
                r.closeSession(s, abi.close_flag_error, @intFromEnum(posix.E.IO), true);
                return .done;
            }
            s.recv_bytes += h.len;
            r.tally(s.listener, "total_recv_bytes", h.len);
            if (h.source) |source| {
                s.remote = switch (source.family) {
                    4 => .{ .in = .{ .sa = .{ .port = std.mem.nativeToBig(u16, source.port), .addr = std.mem.bytesToValue(u32, source.addr[0..4]) } } },
                    else => std.net.Address.initIp6(source.addr, source.port, 0, 0),
                };
                if (r.dispatch_mode == .ip_hash) s.home_lane = r.homeLane(s);
            }
            end(r, s);
            if (r.deliver_session_events) {
                s.connect_pending = !r.pushOrQueue(.connect, 0, s.home_lane, s.id, s.listener);
                if (s.connect_pending) return .blocked;
            }
            return if (s.paused) .done else r.readSession(s);
        },
    }
}

/// No valid header: counted and logged; an HTTP port answers 400, then the session closes.
fn refuse(r: *Reactor, s: *Session, why: []const u8) void {
    const now = reactor.monoNs();
    if (now - r.proxy.logged_ns >= std.time.ns_per_s) {
        log.warn("session {d}: {s} (from {f}); closing it ({d} more refused since the last report)", .{ s.id, why, s.remote, r.proxy.unlogged });
        r.proxy.logged_ns = now;
        r.proxy.unlogged = 0;
    } else {
        r.proxy.unlogged += 1;
    }
    r.tally(s.listener, "protocol_error_count", 1);
    const flags = abi.close_flag_error | abi.close_flag_server;
    const errno = @intFromEnum(posix.E.PROTO);
    if (r.protocolOf(s) == .http) {
        r.sendTo(s.id, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        if (r.sessions.get(s.id) == null or s.state != .open) return;
        return r.closeAfterOutput(s, flags, errno);
    }
    r.closeSession(s, flags, errno, true);
}

/// Closes the sessions whose header did not come within `header_timeout_ns`.
pub fn timers(r: *Reactor) void {
    const now = reactor.monoNs();
    r.proxy.check_ns = now + check_every_ns;
    for (r.sessions.slots) |*s| {
        if (s.state != .open or !s.proxy_pending or now < s.proxy_deadline_ns) continue;
        refuse(r, s, "no PROXY header within 10 s");
    }
}
