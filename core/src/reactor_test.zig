//! The reactor's tests that need a tree of its own: a PROCESS-mode reactor over a region, not
//! started, driven turn by turn.
const std = @import("std");
const abi = @import("abi.zig");
const shm = @import("shm.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const linux = std.os.linux;
const posix = std.posix;
const c = std.c;
const monoNs = reactor.monoNs;
const Phase = reactor.Phase;

const testing = std.testing;

/// A PROCESS-mode reactor (not started) with `workers` lanes over a region of its own.
const TestTree = struct {
    r: *Reactor,
    memory: []align(std.heap.page_size_min) u8,
    fd: i32,
    wakes: []i32,
    channels: [][]u8,

    fn init(workers: u32, max_connection: u32) !TestTree {
        const created = try shm.Region.create(1, .{ .worker_num = workers, .task_worker_num = 0, .user_process_num = 0, .reactor_num = 1, .ring_bytes = 256 * 1024, .mail_ring_bytes = 64 * 1024, .max_connection = max_connection, .socket_buffer_size = 1 << 20 });
        const wakes = try testing.allocator.alloc(i32, workers);
        for (wakes) |*w| w.* = try posix.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK);
        const channels = try testing.allocator.alloc([]u8, workers);
        for (channels, 0..) |*ch, w| ch.* = shm.Region.channel(created.memory, 0, @intCast(w));
        for (shm.Region.workerSlots(created.memory)) |*slot| {
            slot.status = 2; // idle, running
            slot.pid = 1; // (0 would mean gone)
        }
        const header = shm.Region.headerOf(created.memory);
        const config: abi.ServerConfig = .{ .max_connection = max_connection, .socket_buffer_size = 1 << 20, .ring_bytes = 256 * 1024, .max_wait_time_ms = 200, .reactor_id = 0, .log_level = 3, .session_stride = 1, .dispatch = 2 };
        const r = try Reactor.initAttached(testing.allocator, config, .{
            .channels = channels,
            .doorbells = wakes,
            .slots = shm.Region.tableSlots(created.memory, 0),
            .stats = shm.Region.reactorStats(created.memory, 0),
            .workers = shm.Region.workerSlots(created.memory),
            .connection_total = &header.connection_total,
            .reactor_num = 1,
            .topic_counts = shm.Region.topicCounts(created.memory),
        });
        return .{ .r = r, .memory = created.memory, .fd = created.fd, .wakes = wakes, .channels = channels };
    }

    fn deinit(t: *TestTree) void {
        t.r.deinit();
        for (t.wakes) |w| posix.close(w);
        testing.allocator.free(t.wakes);
        testing.allocator.free(t.channels);
        posix.munmap(t.memory);
        posix.close(t.fd);
    }

    fn fill(t: *TestTree, lane: usize) void {
        while (t.r.lanes[lane].inbound.push(.receive, 0, 0, 1, 0, "")) {}
    }
};

test "reactor: a record queued for one full lane does not keep epoll from sleeping" {
    var t = try TestTree.init(2, 8);
    defer t.deinit();
    t.fill(0);
    try testing.expect(!t.r.pushOrQueue(.connect, 0, 0, 1, 0));
    try testing.expect(t.r.lanes[0].waiting_for_room);
    try testing.expect(!t.r.lanes[1].waiting_for_room);
    // Nothing can move until worker 0 frees room and kicks.
    try testing.expect(!t.r.hasWork());
    try testing.expectEqual(@as(i32, -1), t.r.sleepMs(-1));
}

test "reactor: closing waits in epoll, not in a loop, for a lane that is full" {
    var t = try TestTree.init(2, 8);
    defer t.deinit();
    t.fill(0);
    t.r.phase = .closing;
    t.r.phase_deadline_ns = monoNs() + std.time.ns_per_s;
    t.r.sendStopped();
    try testing.expect(t.r.lanes[1].stopped_sent);
    try testing.expect(!t.r.lanes[0].stopped_sent);
    try testing.expectEqual(Phase.closing, t.r.phase);
    try testing.expect(!t.r.hasWork());
}

test "reactor: a session closed before its connect was delivered leaves nothing queued" {
    var t = try TestTree.init(1, 1);
    defer t.deinit();
    t.fill(0);
    for (0..5) |_| {
        var fds: [2]i32 = undefined;
        try testing.expectEqual(@as(c_int, 0), c.socketpair(linux.AF.UNIX, linux.SOCK.STREAM, 0, &fds));
        var address: posix.sockaddr.in = .{ .port = 0, .addr = 0 };
        t.r.addSession(fds[0], 0, .{ .fd = -1, .port = 1, .tcp_nodelay = false }, @ptrCast(&address));
        const id = t.r.sessions.round;
        try testing.expectEqual(@as(usize, 1), t.r.pending.items.len);
        try testing.expect(t.r.sessions.get(id).?.connect_pending);
        // Another worker closes it before its own worker heard of it.
        t.r.closeRequested(id, 0);
        try testing.expectEqual(@as(usize, 0), t.r.pending.items.len);
        posix.close(fds[1]);
    }
}

test "reactor: a datagram's sender as a packet record carries it, Unix paths included" {
    var from: posix.sockaddr.storage = undefined;
    // An unnamed Unix sender: recvfrom leaves the address alone and says length 0.
    from.family = posix.AF.UNIX;
    var a = Reactor.packetAddress(&from, 0);
    try testing.expectEqual(@as(u16, 1), a.family);
    try testing.expectEqual(@as(u16, 0), a.port);
    // A path, NUL-terminated within the length the kernel gave.
    const un: *linux.sockaddr.un = @ptrCast(@alignCast(&from));
    @memcpy(un.path[0..7], "/tmp/x\x00");
    a = Reactor.packetAddress(&from, @sizeOf(posix.sa_family_t) + 7);
    try testing.expectEqual(@as(u16, 6), a.port);
    try testing.expectEqual(abi.PacketAddress.unixSize(6), a.size);
    // An abstract name: a leading NUL, and every byte of the length counts.
    @memcpy(un.path[0..4], "\x00abc");
    a = Reactor.packetAddress(&from, @sizeOf(posix.sa_family_t) + 4);
    try testing.expectEqual(@as(u16, 4), a.port);
    // IPv4.
    const in: *posix.sockaddr.in = @ptrCast(@alignCast(&from));
    in.* = .{ .port = std.mem.nativeToBig(u16, 9501), .addr = std.mem.nativeToBig(u32, 0x7f000001) };
    a = Reactor.packetAddress(&from, @sizeOf(posix.sockaddr.in));
    try testing.expectEqual(@as(u16, 4), a.family);
    try testing.expectEqual(@as(u16, 9501), a.port);
    try testing.expectEqualSlices(u8, &.{ 127, 0, 0, 1 }, a.addr[0..4]);
}

test "reactor: max_queued_bytes holds a session at the limit, lets it go once handled, and starts over when a worker exits" {
    var t = try TestTree.init(1, 8);
    defer t.deinit();
    var config = std.mem.zeroes(abi.FramingConfig);
    config.max_queued_bytes = 100;
    try t.r.setFraming(config);
    // A port's settings leave the server's limit alone.
    t.r.listeners[0] = .{ .fd = -1, .port = 0, .tcp_nodelay = false };
    t.r.listener_count = 1;
    try t.r.setPortFraming(0, std.mem.zeroes(abi.FramingConfig));
    try testing.expectEqual(@as(u32, 100), t.r.max_queued);

    const s = t.r.sessions.reserve().?;
    t.r.sessions.open(s);
    defer t.r.sessions.release(testing.allocator, s);
    try testing.expect(!t.r.countQueued(s, 60));
    try testing.expect(t.r.countQueued(s, 60));
    try testing.expect(s.queue_held);
    try testing.expectEqual(@as(usize, 1), t.r.held.items.len);
    // Held again while held: listed once.
    try testing.expect(t.r.countQueued(s, 10));
    try testing.expectEqual(@as(usize, 1), t.r.held.items.len);

    // The worker handled 30 of 130: still at the limit.
    _ = @atomicRmw(i64, &s.recv_queued, .Sub, 30, .monotonic);
    t.r.held_check_ns = 0;
    t.r.releaseHeld();
    try testing.expect(s.queue_held);
    try testing.expect(t.r.held_backoff_ms > 1);
    // …and 60 more: below it, read again.
    _ = @atomicRmw(i64, &s.recv_queued, .Sub, 60, .monotonic);
    t.r.held_check_ns = 0;
    t.r.releaseHeld();
    try testing.expect(!s.queue_held);
    try testing.expect(s.on_ready_list);
    try testing.expectEqual(@as(usize, 0), t.r.held.items.len);

    // Held again, then the worker dies with the bytes in hand: the count starts over.
    try testing.expect(t.r.countQueued(s, 200));
    t.r.workerExited(0);
    t.r.closeOrphans();
    try testing.expectEqual(@as(i64, 0), @atomicLoad(i64, &s.recv_queued, .monotonic));
    t.r.releaseHeld();
    try testing.expect(!s.queue_held);
}
