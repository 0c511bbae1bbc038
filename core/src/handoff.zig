//! PROCESS mode with several reactor threads: reactor 0 accepts every stream connection and
//! hands them out in turn, as Swoole's main thread does. Connection k of the server goes to
//! reactor k % reactor_num, whose table hands out the ids i with (i - 1) % reactor_num equal
//! to its number: so ids follow the order of accept (1, 2, 3, …), and an id still names the
//! reactor that owns it. A handoff is the receiving reactor's inbox: the acceptor pushes,
//! the owner takes everything at its next turn (it is kicked awake).
const std = @import("std");
const posix = std.posix;

pub const Accepted = struct {
    fd: i32,
    listener: u16,
    address: posix.sockaddr.storage,
};

pub const Handoff = struct {
    mutex: std.Thread.Mutex = .{},
    items: std.ArrayList(Accepted) = .empty,
    /// The owner swaps lists with the acceptor, so neither allocates while the other waits.
    spare: std.ArrayList(Accepted) = .empty,

    /// At most this many connections wait for their reactor; beyond, `push` refuses (the
    /// caller closes the connection): the owner is stuck, and the backlog is better off in
    /// the kernel than here.
    pub const capacity = 16 * 1024;

    /// From the acceptor. False when full or out of memory.
    pub fn push(h: *Handoff, allocator: std.mem.Allocator, item: Accepted) bool {
        h.mutex.lock();
        defer h.mutex.unlock();
        if (h.items.items.len >= capacity) return false;
        h.items.append(allocator, item) catch return false;
        return true;
    }

    /// From the owner: every connection handed over so far, valid until the next `take`.
    pub fn take(h: *Handoff) []const Accepted {
        h.spare.clearRetainingCapacity();
        h.mutex.lock();
        defer h.mutex.unlock();
        std.mem.swap(std.ArrayList(Accepted), &h.items, &h.spare);
        return h.spare.items;
    }

    /// Closes what was never taken.
    pub fn deinit(h: *Handoff, allocator: std.mem.Allocator) void {
        for (h.items.items) |item| posix.close(item.fd);
        h.items.deinit(allocator);
        h.spare.deinit(allocator);
    }
};

test "handoff: connections come out in the order they were pushed, once each" {
    const allocator = std.testing.allocator;
    var h: Handoff = .{};
    defer h.deinit(allocator);
    for (0..3) |i| try std.testing.expect(h.push(allocator, .{ .fd = -1, .listener = @intCast(i), .address = undefined }));
    const first = h.take();
    try std.testing.expectEqual(@as(usize, 3), first.len);
    for (first, 0..) |item, i| try std.testing.expectEqual(@as(u16, @intCast(i)), item.listener);
    try std.testing.expect(h.push(allocator, .{ .fd = -1, .listener = 9, .address = undefined }));
    const second = h.take();
    try std.testing.expectEqual(@as(usize, 1), second.len);
    try std.testing.expectEqual(@as(u16, 9), second[0].listener);
    try std.testing.expectEqual(@as(usize, 0), h.take().len);
}
