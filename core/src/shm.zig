//! Shared memory: one `memfd_create` region per channel, mapped MAP_SHARED.
//!
//! A memfd has no name in /dev/shm, so nothing outside the process tree can attach; children
//! inherit the fd and map the same pages. Layout: `abi.ChannelHeader` at offset 0, the inbound
//! ring's data at `abi.data_offset`, the outbound ring's data right after it.
const std = @import("std");
const abi = @import("abi.zig");
const session_table = @import("session_table.zig");
const topic_counts = @import("topic_counts.zig");
const posix = std.posix;
const linux = std.os.linux;
const assert = std.debug.assert;

pub const Channel = struct {
    fd: i32,
    memory: []align(std.heap.page_size_min) u8,
    header: *abi.ChannelHeader,

    pub fn size(ring_bytes: u32) usize {
        return abi.data_offset + 2 * @as(usize, ring_bytes);
    }

    pub fn create(ring_bytes: u32) !Channel {
        if (!std.math.isPowerOfTwo(ring_bytes) or ring_bytes < 64 * 1024) return error.InvalidArgument;
        const fd = try posix.memfd_create("ziggurat-channel", linux.MFD.CLOEXEC);
        errdefer posix.close(fd);
        try posix.ftruncate(fd, size(ring_bytes));
        const memory = try posix.mmap(null, size(ring_bytes), posix.PROT.READ | posix.PROT.WRITE, .{ .TYPE = .SHARED }, fd, 0);
        const header: *abi.ChannelHeader = @ptrCast(memory.ptr);
        // A fresh memfd reads as zeros: every position, flag and counter starts at 0.
        header.magic = abi.channel_magic;
        header.ring_bytes = ring_bytes;
        return .{ .fd = fd, .memory = memory, .header = header };
    }

    /// Releases the shared pages but keeps the address range mapped, as private zero pages.
    /// JavaScript holds ArrayBuffers over this range (the ring views, and `receive` data when
    /// `borrowedViews` is on) that the garbage collector, not this call, decides the end of:
    /// after an munmap, touching one would crash the process; now it reads zeros. What stays
    /// behind is address space, one range per server the process ever started.
    pub fn destroy(ch: *Channel) void {
        _ = posix.mmap(
            ch.memory.ptr,
            ch.memory.len,
            posix.PROT.READ | posix.PROT.WRITE,
            .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true, .NORESERVE = true },
            -1,
            0,
        ) catch {
            posix.munmap(ch.memory);
        };
        posix.close(ch.fd);
        ch.* = undefined;
    }

    pub fn inData(ch: *Channel) []align(abi.record_align) u8 {
        return inDataOf(ch.memory);
    }

    pub fn outData(ch: *Channel) []align(abi.record_align) u8 {
        return outDataOf(ch.memory);
    }

    /// The header of a channel's memory (a channel of its own, or one in a PROCESS region).
    pub fn headerOf(memory: []u8) *abi.ChannelHeader {
        return @ptrCast(@alignCast(memory.ptr));
    }

    pub fn inDataOf(memory: []u8) []align(abi.record_align) u8 {
        const ring_bytes = headerOf(memory).ring_bytes;
        return @alignCast(memory[abi.data_offset..][0..ring_bytes]);
    }

    pub fn outDataOf(memory: []u8) []align(abi.record_align) u8 {
        const ring_bytes = headerOf(memory).ring_bytes;
        return @alignCast(memory[abi.data_offset + ring_bytes ..][0..ring_bytes]);
    }
};

test "shm: a channel maps zeroed control blocks and two disjoint ring areas" {
    var ch = try Channel.create(64 * 1024);
    defer ch.destroy();
    try std.testing.expectEqual(abi.channel_magic, ch.header.magic);
    try std.testing.expectEqual(@as(u32, 0), ch.header.in_ctl.tail);
    const in = ch.inData();
    const out = ch.outData();
    try std.testing.expect(@intFromPtr(in.ptr) + in.len == @intFromPtr(out.ptr));
    try std.testing.expectEqual(@as(usize, 64 * 1024), out.len);
}

/// The tree's shared region (see `abi.RegionHeader`), mapped for the life of the process.
pub const Region = struct {
    pub const Shape = abi.RegionShape;

    const page = std.heap.page_size_min;

    /// The header of a region of this shape, with every offset filled in.
    pub fn plan(manager_pid: i32, shape: Shape) abi.RegionHeader {
        var h: abi.RegionHeader = std.mem.zeroes(abi.RegionHeader);
        h.magic = abi.region_magic;
        h.worker_num = shape.worker_num;
        h.task_worker_num = shape.task_worker_num;
        h.user_process_num = shape.user_process_num;
        h.manager_pid = manager_pid;
        h.start_time = @intCast(std.time.timestamp());
        h.reactor_num = shape.reactor_num;
        h.ring_bytes = shape.ring_bytes;
        h.mail_ring_bytes = shape.mail_ring_bytes;
        h.max_connection = shape.max_connection;
        h.socket_buffer_size = shape.socket_buffer_size;
        const slots_end = abi.region_slots_offset + @as(u64, slotCount(&h)) * @sizeOf(abi.WorkerSlot);
        const stats_end = slots_end + @as(u64, shape.reactor_num) * @sizeOf(abi.Stats);
        h.reactor_stats_offset = slots_end;
        h.channels_offset = std.mem.alignForward(u64, stats_end, page);
        if (shape.reactor_num > 0) h.channel_stride = std.mem.alignForward(u64, Channel.size(shape.ring_bytes), page);
        h.tables_offset = h.channels_offset + h.channel_stride * shape.reactor_num * shape.worker_num;
        h.table_stride = std.mem.alignForward(u64, @as(u64, shape.max_connection) * @sizeOf(session_table.Session), page);
        h.mail_offset = h.tables_offset + h.table_stride * tableCount(&h);
        h.mail_stride = std.mem.alignForward(u64, Channel.size(shape.mail_ring_bytes), page);
        h.topics_offset = h.mail_offset + h.mail_stride * mailPairs(&h);
        h.topic_slots = topic_counts.Counts.slotsFor(shape.max_connection);
        return h;
    }

    /// Worker slots: event workers, then task workers, then user processes.
    pub fn slotCount(h: *const abi.RegionHeader) u32 {
        return h.worker_num + h.task_worker_num + h.user_process_num;
    }

    /// Mailbox endpoints: every slot's process, and the master.
    pub fn endpointCount(h: *const abi.RegionHeader) u32 {
        return slotCount(h) + 1;
    }

    fn mailPairs(h: *const abi.RegionHeader) u64 {
        const e: u64 = endpointCount(h);
        return e * (e - 1) / 2;
    }

    /// Session tables: one per reactor thread (PROCESS) or per event worker (BASE). The table of
    /// session `id` is number `(id - 1) % tableCount`.
    pub fn tableCount(h: *const abi.RegionHeader) u32 {
        return if (h.reactor_num > 0) h.reactor_num else h.worker_num;
    }

    pub fn size(h: *const abi.RegionHeader) usize {
        return @intCast(h.topics_offset + std.mem.alignForward(u64, topic_counts.Counts.bytes(h.topic_slots, tableCount(h)), page));
    }

    /// The publish/subscribe topic counts, a row per session table.
    pub fn topicCounts(memory: []u8) topic_counts.Counts {
        const header = headerOf(memory);
        return topic_counts.Counts.over(memory[header.topics_offset..], header.topic_slots, tableCount(header));
    }

    /// The mailbox channel of endpoints `a` and `b` (either order).
    pub fn mailChannel(memory: []u8, a: u32, b: u32) []align(page) u8 {
        const header = headerOf(memory);
        const lo = @min(a, b);
        const hi = @max(a, b);
        assert(lo != hi and hi < endpointCount(header));
        const index = @as(u64, hi) * (hi - 1) / 2 + lo;
        return @alignCast(memory[header.mail_offset + index * header.mail_stride ..][0..header.mail_stride]);
    }

    /// Creates it (in the manager); returns the fd to pass down and the mapping. Pages are
    /// the kernel's zeros until touched, so the rings and tables of a PROCESS region cost
    /// memory only as they are used.
    pub fn create(manager_pid: i32, shape: Shape) !struct { fd: i32, memory: []align(page) u8 } {
        if (shape.worker_num == 0 or shape.worker_num > 1024) return error.InvalidArgument;
        if (shape.task_worker_num > 1024 or shape.user_process_num > 1024) return error.InvalidArgument;
        if (shape.max_connection == 0 or shape.max_connection > 1 << 20) return error.InvalidArgument;
        if (shape.reactor_num > 256) return error.InvalidArgument;
        // A reactor thread reserves room for a whole read (64 KiB) at a time: half a ring.
        if (shape.reactor_num > 0 and (!std.math.isPowerOfTwo(shape.ring_bytes) or shape.ring_bytes < 256 * 1024)) return error.InvalidArgument;
        if (!std.math.isPowerOfTwo(shape.mail_ring_bytes) or shape.mail_ring_bytes < 64 * 1024) return error.InvalidArgument;
        const header = plan(manager_pid, shape);
        const worker_num = shape.worker_num;
        const len = size(&header);
        const fd = try posix.memfd_create("ziggurat-region", linux.MFD.CLOEXEC);
        errdefer posix.close(fd);
        try posix.ftruncate(fd, len);
        const memory = try posix.mmap(null, len, posix.PROT.READ | posix.PROT.WRITE, .{ .TYPE = .SHARED }, fd, 0);
        @as(*abi.RegionHeader, @ptrCast(memory.ptr)).* = header;
        for (0..shape.reactor_num * worker_num) |i| {
            const ch: *abi.ChannelHeader = @ptrCast(@alignCast(&memory[header.channels_offset + i * header.channel_stride]));
            ch.magic = abi.channel_magic;
            ch.ring_bytes = shape.ring_bytes;
        }
        for (0..tableCount(&header)) |t| @memset(tableSlots(memory, @intCast(t)), .{});
        for (0..mailPairs(&header)) |i| {
            const ch: *abi.ChannelHeader = @ptrCast(@alignCast(&memory[header.mail_offset + i * header.mail_stride]));
            ch.magic = abi.channel_magic;
            ch.ring_bytes = shape.mail_ring_bytes;
        }
        return .{ .fd = fd, .memory = memory };
    }

    /// Maps an inherited region (in a worker), after checking what it holds.
    pub fn map(fd: i32) ![]align(page) u8 {
        // Inherited without close-on-exec; this process's own children must not get it.
        _ = try posix.fcntl(fd, posix.F.SETFD, posix.FD_CLOEXEC);
        const stat = try posix.fstat(fd);
        const len: usize = @intCast(stat.size);
        if (len < abi.region_slots_offset) return error.InvalidArgument;
        const memory = try posix.mmap(null, len, posix.PROT.READ | posix.PROT.WRITE, .{ .TYPE = .SHARED }, fd, 0);
        const header: *const abi.RegionHeader = @ptrCast(memory.ptr);
        const expected = plan(header.manager_pid, .{
            .worker_num = header.worker_num,
            .task_worker_num = header.task_worker_num,
            .user_process_num = header.user_process_num,
            .reactor_num = header.reactor_num,
            .ring_bytes = header.ring_bytes,
            .mail_ring_bytes = header.mail_ring_bytes,
            .max_connection = header.max_connection,
            .socket_buffer_size = header.socket_buffer_size,
        });
        if (header.magic != abi.region_magic or header.worker_num == 0 or size(&expected) != len or
            expected.tables_offset != header.tables_offset or expected.topics_offset != header.topics_offset or
            expected.topic_slots != header.topic_slots)
        {
            posix.munmap(memory);
            return error.InvalidArgument;
        }
        return memory;
    }

    pub fn headerOf(memory: []u8) *abi.RegionHeader {
        return @ptrCast(@alignCast(memory.ptr));
    }

    pub fn slot(memory: []u8, worker_id: u32) ?*abi.WorkerSlot {
        const header = headerOf(memory);
        if (worker_id >= slotCount(header)) return null;
        return @ptrCast(@alignCast(&memory[abi.region_slots_offset + worker_id * @sizeOf(abi.WorkerSlot)]));
    }

    pub fn workerSlots(memory: []u8) []abi.WorkerSlot {
        const header = headerOf(memory);
        const first: [*]abi.WorkerSlot = @ptrCast(@alignCast(&memory[abi.region_slots_offset]));
        return first[0..header.worker_num];
    }

    pub fn reactorStats(memory: []u8, reactor: u32) *abi.Stats {
        const header = headerOf(memory);
        assert(reactor < header.reactor_num);
        return @ptrCast(@alignCast(&memory[header.reactor_stats_offset + reactor * @sizeOf(abi.Stats)]));
    }

    /// The channel between reactor thread `reactor` and worker `worker` (PROCESS).
    pub fn channel(memory: []u8, reactor: u32, worker: u32) []align(page) u8 {
        const header = headerOf(memory);
        assert(reactor < header.reactor_num and worker < header.worker_num);
        const at = header.channels_offset + (@as(u64, reactor) * header.worker_num + worker) * header.channel_stride;
        return @alignCast(memory[at..][0..header.channel_stride]);
    }

    /// The slots of session table `table` (see `tableCount`).
    pub fn tableSlots(memory: []u8, table: u32) []session_table.Session {
        const header = headerOf(memory);
        assert(table < tableCount(header));
        const first: [*]session_table.Session = @ptrCast(@alignCast(&memory[header.tables_offset + table * header.table_stride]));
        return first[0..header.max_connection];
    }
};

test "shm: a region created under one mapping reads the same through a second" {
    const created = try Region.create(1234, testShape(3, 0));
    defer posix.close(created.fd);
    defer posix.munmap(created.memory);
    Region.slot(created.memory, 2).?.pid = 77;
    const again = try Region.map(created.fd);
    defer posix.munmap(again);
    try std.testing.expectEqual(@as(i32, 77), Region.slot(again, 2).?.pid);
    try std.testing.expect(Region.slot(again, 6) == null); // 3 event + 2 task workers + 1 user process
}

test "shm: a PROCESS region gives every (reactor, worker) pair its own channel and every reactor a table" {
    var shape = testShape(3, 2);
    shape.max_connection = 10;
    const created = try Region.create(1, shape);
    defer posix.close(created.fd);
    defer posix.munmap(created.memory);
    const again = try Region.map(created.fd);
    defer posix.munmap(again);
    var seen: usize = 0;
    for (0..2) |r| for (0..3) |w| {
        const ch = Region.channel(again, @intCast(r), @intCast(w));
        const header: *const abi.ChannelHeader = @ptrCast(ch.ptr);
        try std.testing.expectEqual(abi.channel_magic, header.magic);
        try std.testing.expect(@intFromPtr(ch.ptr) >= seen);
        seen = @intFromPtr(ch.ptr) + Channel.size(256 * 1024);
    };
    try std.testing.expect(@intFromPtr(Region.tableSlots(again, 0).ptr) >= seen);
    try std.testing.expectEqual(@as(u32, 0), Region.tableSlots(again, 1)[9].id);
}

fn testShape(workers: u32, reactors: u32) Region.Shape {
    return .{ .worker_num = workers, .task_worker_num = 2, .user_process_num = 1, .reactor_num = reactors, .ring_bytes = 256 * 1024, .mail_ring_bytes = 64 * 1024, .max_connection = 4, .socket_buffer_size = 1 };
}

test "shm: every pair of endpoints has its own mailbox channel, the same in either order" {
    const created = try Region.create(1, testShape(2, 0));
    defer posix.close(created.fd);
    defer posix.munmap(created.memory);
    const header = Region.headerOf(created.memory);
    // 2 event workers, 2 task workers, 1 user process, the master.
    try std.testing.expectEqual(@as(u32, 6), Region.endpointCount(header));
    var seen = std.AutoHashMap(usize, void).init(std.testing.allocator);
    defer seen.deinit();
    for (0..6) |a| for (a + 1..6) |b| {
        const ch = Region.mailChannel(created.memory, @intCast(a), @intCast(b));
        try std.testing.expectEqual(@intFromPtr(ch.ptr), @intFromPtr(Region.mailChannel(created.memory, @intCast(b), @intCast(a)).ptr));
        try std.testing.expectEqual(abi.channel_magic, Channel.headerOf(ch).magic);
        try std.testing.expect(!seen.contains(@intFromPtr(ch.ptr)));
        try seen.put(@intFromPtr(ch.ptr), {});
        try std.testing.expect(@intFromPtr(ch.ptr) + ch.len <= @intFromPtr(created.memory.ptr) + created.memory.len);
    };
    try std.testing.expectEqual(@as(usize, 15), seen.count());
    try std.testing.expect(Region.slot(created.memory, 4) != null);
    try std.testing.expect(Region.slot(created.memory, 5) == null);
}
