//! Accepting connections: reactor 0 hands them out in PROCESS mode with several reactor
//! threads (handoff.zig); accept pauses when out of fds; a new session is set up and announced.
const std = @import("std");
const ring = @import("ring.zig");
const reactor = @import("reactor.zig");
const handoff_mod = @import("handoff.zig");
const proxy_session = @import("proxy_session.zig");
const Reactor = reactor.Reactor;
const Listener = reactor.Listener;
const Accepted = handoff_mod.Accepted;
const Handoff = handoff_mod.Handoff;
const linux = std.os.linux;
const posix = std.posix;
const c = std.c;
const log = std.log.scoped(.reactor);
const accepts_per_turn = reactor.accepts_per_turn;
const accept_pause_ms = reactor.accept_pause_ms;
const tag_session = reactor.tag_session;
const session_events = reactor.session_events;
const kick = reactor.kick;
const remoteAddress = reactor.remoteAddress;
const monoNs = reactor.monoNs;
const setIntOption = reactor.setIntOption;

pub fn acceptPending(r: *Reactor) void {
    for (r.listeners[0..r.listener_count], 0..) |*l, index| {
        if (!l.pending or l.fd < 0) continue;
        if (l.datagram) {
            r.readPackets(l, @intCast(index));
            continue;
        }
        var accepted: u32 = 0;
        while (accepted < accepts_per_turn) : (accepted += 1) {
            var address: posix.sockaddr.storage = undefined;
            var address_len: posix.socklen_t = @sizeOf(posix.sockaddr.storage);
            const fd = c.accept4(l.fd, @ptrCast(&address), &address_len, linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC);
            if (fd < 0) {
                switch (posix.errno(fd)) {
                    .AGAIN => l.pending = false,
                    .INTR, .CONNABORTED => continue,
                    // Out of fds or memory: leave connections in the backlog and stop
                    // accepting for a while rather than spin on the error (Swoole pauses
                    // accept for a second too).
                    .MFILE, .NFILE, .NOBUFS, .NOMEM => |e| r.pauseAccept(e),
                    else => |e| log.err("accept failed: {s}", .{@tagName(e)}),
                }
                return;
            }
            if (r.peers.len > 1) {
                const to = r.peers[r.accepted % r.peers.len];
                r.accepted +%= 1;
                if (to != r) {
                    r.handOver(to, .{ .fd = fd, .listener = @intCast(index), .address = address });
                    continue;
                }
            }
            r.addSession(fd, @intCast(index), l.*, @ptrCast(&address));
        }
    }
}

/// Reactor 0 (`r`, on its thread): a connection for reactor thread `to` (handoff.zig).
/// The counters are the acceptor's to write.
pub fn handOver(r: *Reactor, to: *Reactor, item: Accepted) void {
    if (!to.handoff.push(to.allocator, item)) {
        log.warn("connection refused: reactor thread {d} has {d} connections waiting for it", .{ to.config.reactor_id, Handoff.capacity });
        r.tally(item.listener, "refused_count", 1);
        posix.close(item.fd);
        return;
    }
    kick(to.kick_fd);
}

/// The connections reactor 0 handed to this thread, in the order it accepted them; once
/// shutting down, they are closed unserved (as the kernel's backlog is).
pub fn takeHandedOver(r: *Reactor) void {
    if (r.peers.len < 2) return;
    for (r.handoff.take()) |item| {
        if (r.phase != .running) {
            posix.close(item.fd);
            continue;
        }
        r.addSession(item.fd, item.listener, r.listeners[item.listener], @ptrCast(&item.address));
    }
}

pub fn pauseAccept(r: *Reactor, e: posix.E) void {
    const now = monoNs();
    r.accept_pauses += 1;
    // Closing sessions end pauses early, so pauses can come in quick succession: log at
    // most one line a second, with how many pauses it stands for.
    if (now - r.accept_pause_logged_ns >= std.time.ns_per_s) {
        log.warn("accept paused for {d} ms: {s} ({d} sessions open, {d} pauses since the last report)", .{ accept_pause_ms, @tagName(e), r.sessions.count, r.accept_pauses });
        r.accept_pause_logged_ns = now;
        r.accept_pauses = 0;
    }
    for (r.listeners[0..r.listener_count]) |*l| l.pending = false;
    r.accept_resume_ns = now + accept_pause_ms * std.time.ns_per_ms;
}

/// Ends an accept pause whose time has come; returns the milliseconds left otherwise
/// (-1 when accept is not paused).
pub fn acceptPauseLeftMs(r: *Reactor) i32 {
    if (r.accept_resume_ns == 0) return -1;
    const now = monoNs();
    if (now >= r.accept_resume_ns) {
        r.resumeAccept();
        return -1;
    }
    return @intCast(@divFloor(r.accept_resume_ns - now, std.time.ns_per_ms) + 1);
}

pub fn resumeAccept(r: *Reactor) void {
    r.accept_resume_ns = 0;
    for (r.listeners[0..r.listener_count]) |*l| l.pending = l.fd >= 0;
}

pub fn addSession(r: *Reactor, fd: i32, listener_index: u16, l: Listener, address: *const posix.sockaddr) void {
    // PROCESS mode: max_connection counts every reactor thread's sessions; take a place
    // first, so that two threads cannot both take the last one.
    const over_total = if (r.attach) |a|
        @atomicRmw(u32, a.connection_total, .Add, 1, .monotonic) >= r.config.max_connection
    else
        false;
    const s = (if (over_total) null else r.sessions.reserve()) orelse {
        if (r.attach) |a| _ = @atomicRmw(u32, a.connection_total, .Sub, 1, .monotonic);
        r.tally(listener_index, "refused_count", 1);
        log.warn("connection refused: max_connection ({d}) sessions are open", .{r.config.max_connection});
        posix.close(fd);
        return;
    };
    // Before anything can fail: a successor of this worker starts its ids after this one.
    @atomicStore(u64, &r.stats().session_round, s.id, .monotonic);
    s.fd = fd;
    s.listener = listener_index;
    s.server_fd = l.fd;
    s.server_port = l.port;
    s.remote = remoteAddress(address);
    s.connect_time_ns = r.now_ns;
    s.home_lane = r.homeLane(s);
    const settings = r.settingsOf(listener_index);
    s.paused = settings.delay_receive;
    // A PROXY protocol port: announced once its header gives the client's address, and out of
    // the session lists until then.
    if (settings.proxy_protocol) proxy_session.begin(r, s);
    // Every field is in place: other processes may look it up from now on.
    r.sessions.open(s);
    if (l.tcp_nodelay) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.NODELAY, 1);
    const sc = &settings.socket;
    if (sc.keepalive != 0) {
        setIntOption(fd, linux.SOL.SOCKET, linux.SO.KEEPALIVE, 1);
        if (sc.keep_idle > 0) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.KEEPIDLE, @intCast(sc.keep_idle));
        if (sc.keep_interval > 0) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.KEEPINTVL, @intCast(sc.keep_interval));
        if (sc.keep_count > 0) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.KEEPCNT, @intCast(sc.keep_count));
    }
    if (sc.user_timeout_ms > 0) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.USER_TIMEOUT, @intCast(sc.user_timeout_ms));
    if (sc.recv_buffer > 0) setIntOption(fd, linux.SOL.SOCKET, linux.SO.RCVBUF, @intCast(sc.recv_buffer));
    if (sc.send_buffer > 0) setIntOption(fd, linux.SOL.SOCKET, linux.SO.SNDBUF, @intCast(sc.send_buffer));
    if (sc.notsent_lowat > 0) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.NOTSENT_LOWAT, @intCast(sc.notsent_lowat));
    var event: linux.epoll_event = .{ .events = session_events, .data = .{ .u64 = tag_session | s.id } };
    posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_ADD, fd, &event) catch |err| {
        log.err("session {d}: epoll_ctl failed: {s}", .{ s.id, @errorName(err) });
        posix.close(fd);
        proxy_session.closed(r, s);
        r.sessions.release(r.allocator, s);
        if (r.attach) |a| _ = @atomicRmw(u32, a.connection_total, .Sub, 1, .monotonic);
        return;
    };
    r.tally(listener_index, "accept_count", 1);
    r.tally(listener_index, "connection_num", 1);
    if (r.deliver_session_events and !s.proxy_pending) {
        // Nothing of the session is read before its connect record is in the ring.
        s.connect_pending = !r.pushOrQueue(.connect, 0, s.home_lane, s.id, listener_index);
    }
    // Data may have arrived with the connection.
    r.markReady(s);
}
