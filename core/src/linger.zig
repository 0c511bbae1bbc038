//! Lingering closes. A socket closed while the peer's bytes wait unread in it makes the kernel
//! answer with RST, and a peer that gets RST may lose the replies it had not read yet. So a
//! graceful close of a session whose peer has not finished sending is a half close: FIN after
//! the queued output (`shutdown(SHUT_WR)`), then what the peer still sends is read and
//! dropped until its own FIN, an error, or `linger_ms`, and only then is the socket closed.
//! The session itself is gone at the half close (its slot, its counters, its `close` event);
//! only the fd lingers, at most `capacity` of them (beyond that a socket is closed at once).
const std = @import("std");
const linux = std.os.linux;
const posix = std.posix;
const c = std.c;
const assert = std.debug.assert;

/// How long a half-closed socket waits for the peer's FIN.
pub const linger_ms = 2000;

const Entry = struct { fd: i32, deadline_ns: i64 };

pub const Lingering = struct {
    entries: std.ArrayList(Entry) = .empty,
    /// When the earliest lingering socket's time is up (monotonic ns); 0 when none lingers.
    next_ns: i64 = 0,

    /// Reserves room for `capacity` sockets (allocated once, at start).
    pub fn init(l: *Lingering, allocator: std.mem.Allocator, capacity: usize) !void {
        l.entries = try std.ArrayList(Entry).initCapacity(allocator, capacity);
    }

    /// Closes every lingering socket and frees the list.
    pub fn deinit(l: *Lingering, allocator: std.mem.Allocator) void {
        for (l.entries.items) |e| posix.close(e.fd);
        l.entries.deinit(allocator);
    }

    pub fn isEmpty(l: *const Lingering) bool {
        return l.entries.items.len == 0;
    }

    /// Half-closes `fd` (which epoll already watches; `event` replaces its registration) and
    /// keeps it until the peer's FIN; closes it at once when the peer has nothing more to send
    /// or there is no room.
    pub fn add(l: *Lingering, epoll_fd: i32, fd: i32, event: *linux.epoll_event, now_ns: i64) void {
        if (l.entries.items.len == l.entries.capacity) return posix.close(fd);
        _ = c.shutdown(fd, linux.SHUT.WR);
        if (drain(fd) != .open) return posix.close(fd);
        if (c.epoll_ctl(epoll_fd, linux.EPOLL.CTL_MOD, fd, event) != 0) return posix.close(fd);
        const deadline_ns = now_ns + linger_ms * std.time.ns_per_ms;
        l.entries.appendAssumeCapacity(.{ .fd = fd, .deadline_ns = deadline_ns });
        // Every deadline is later than those before it: the earliest stays the earliest.
        if (l.next_ns == 0) l.next_ns = deadline_ns;
    }

    /// The peer of lingering `fd` sent something: read and drop it; close at its end.
    /// (Only an fd of the list is read: never a socket that took a closed one's number.)
    pub fn onReadable(l: *Lingering, fd: i32) void {
        for (l.entries.items, 0..) |e, i| {
            if (e.fd != fd) continue;
            if (drain(fd) == .open) return;
            _ = l.entries.swapRemove(i);
            return posix.close(fd);
        }
    }

    /// Closes the sockets whose time is up, if any is (`next_ns` passed).
    pub fn sweep(l: *Lingering, now_ns: i64) void {
        if (l.next_ns == 0 or now_ns < l.next_ns) return;
        var earliest: i64 = 0;
        var i: usize = 0;
        while (i < l.entries.items.len) {
            const e = l.entries.items[i];
            if (now_ns >= e.deadline_ns) {
                posix.close(e.fd);
                _ = l.entries.swapRemove(i);
                continue;
            }
            earliest = if (earliest == 0) e.deadline_ns else @min(earliest, e.deadline_ns);
            i += 1;
        }
        l.next_ns = earliest;
    }
};

const Drained = enum { open, ended };

/// Reads and drops what is there; `ended` at EOF or an error. Bounded per call, so one peer
/// that keeps sending cannot hold the reactor.
fn drain(fd: i32) Drained {
    var buffer: [16 * 1024]u8 = undefined;
    var reads: u32 = 0;
    while (reads < 16) : (reads += 1) {
        const rc = c.read(fd, &buffer, buffer.len);
        if (rc > 0) continue;
        if (rc == 0) return .ended;
        return switch (posix.errno(rc)) {
            .AGAIN => .open,
            .INTR => continue,
            else => .ended,
        };
    }
    return .open;
}

/// A connected pair of stream sockets (non-blocking): [ours, the peer's].
fn socketPair() ![2]i32 {
    var fds: [2]i32 = undefined;
    if (c.socketpair(linux.AF.UNIX, linux.SOCK.STREAM | linux.SOCK.NONBLOCK, 0, &fds) != 0) return error.Unexpected;
    return fds;
}

test "linger: a half-closed socket reads the peer's last bytes, then closes at its FIN" {
    const fds = try socketPair();
    defer posix.close(fds[1]);
    const epoll_fd = try posix.epoll_create1(linux.EPOLL.CLOEXEC);
    defer posix.close(epoll_fd);
    var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = 7 } };
    try posix.epoll_ctl(epoll_fd, linux.EPOLL.CTL_ADD, fds[0], &event);
    var l: Lingering = .{};
    try l.init(std.testing.allocator, 2);
    defer l.deinit(std.testing.allocator);
    _ = c.write(fds[1], "unread", 6);
    l.add(epoll_fd, fds[0], &event, 0);
    try std.testing.expect(!l.isEmpty());
    // The peer sees our FIN...
    var buffer: [8]u8 = undefined;
    try std.testing.expectEqual(@as(isize, 0), c.read(fds[1], &buffer, buffer.len));
    // ...sends more, which is dropped, then its own FIN: the socket closes.
    _ = c.write(fds[1], "more", 4);
    l.onReadable(fds[0]);
    try std.testing.expect(!l.isEmpty());
    _ = c.shutdown(fds[1], linux.SHUT.WR);
    l.onReadable(fds[0]);
    try std.testing.expect(l.isEmpty());
}

test "linger: the deadline closes a socket whose peer never ends; no room closes at once" {
    const fds = try socketPair();
    defer posix.close(fds[1]);
    const more = try socketPair();
    defer posix.close(more[1]);
    const epoll_fd = try posix.epoll_create1(linux.EPOLL.CLOEXEC);
    defer posix.close(epoll_fd);
    var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = 7 } };
    try posix.epoll_ctl(epoll_fd, linux.EPOLL.CTL_ADD, fds[0], &event);
    var l: Lingering = .{};
    try l.init(std.testing.allocator, 1);
    defer l.deinit(std.testing.allocator);
    l.add(epoll_fd, fds[0], &event, 0);
    // Full: the next one is closed at once (its peer reads EOF).
    l.add(epoll_fd, more[0], &event, 0);
    var buffer: [8]u8 = undefined;
    try std.testing.expectEqual(@as(isize, 0), c.read(more[1], &buffer, buffer.len));
    l.sweep(1);
    try std.testing.expectEqual(@as(i64, linger_ms * std.time.ns_per_ms), l.next_ns);
    l.sweep(linger_ms * std.time.ns_per_ms);
    try std.testing.expectEqual(@as(i64, 0), l.next_ns);
    try std.testing.expect(l.isEmpty());
}
