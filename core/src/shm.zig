//! Shared memory: one `memfd_create` region per channel, mapped MAP_SHARED.
//!
//! A memfd has no name in /dev/shm, so nothing outside the process tree can attach; children
//! inherit the fd and map the same pages. Layout: `abi.ChannelHeader` at offset 0, the inbound
//! ring's data at `abi.data_offset`, the outbound ring's data right after it.
const std = @import("std");
const abi = @import("abi.zig");
const session_table = @import("session_table.zig");
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
    /// What the region holds besides the worker table.
    pub const Shape = struct {
        /// PROCESS mode: the master's reactor threads (each with a channel per worker and a
        /// session table); 0 for BASE mode, where each worker's reactor has a table here.
        reactor_num: u32 = 0,
        /// Bytes in each ring's data area (PROCESS).
        ring_bytes: u32 = 0,
        /// Slots of each session table.
        max_connection: u32,
        socket_buffer_size: u32,
    };

    const page = std.heap.page_size_min;

    /// The header of a region for `worker_num` workers, with every offset filled in.
    pub fn plan(worker_num: u32, manager_pid: i32, shape: Shape) abi.RegionHeader {
        var h: abi.RegionHeader = std.mem.zeroes(abi.RegionHeader);
        h.magic = abi.region_magic;
        h.worker_num = worker_num;
        h.manager_pid = manager_pid;
        h.start_time = @intCast(std.time.timestamp());
        h.reactor_num = shape.reactor_num;
        h.ring_bytes = shape.ring_bytes;
        h.max_connection = shape.max_connection;
        h.socket_buffer_size = shape.socket_buffer_size;
        const slots_end = abi.region_slots_offset + @as(u64, worker_num) * @sizeOf(abi.WorkerSlot);
        const stats_end = slots_end + @as(u64, shape.reactor_num) * @sizeOf(abi.Stats);
        h.reactor_stats_offset = slots_end;
        h.channels_offset = std.mem.alignForward(u64, stats_end, page);
        if (shape.reactor_num > 0) h.channel_stride = std.mem.alignForward(u64, Channel.size(shape.ring_bytes), page);
        h.tables_offset = h.channels_offset + h.channel_stride * shape.reactor_num * worker_num;
        h.table_stride = std.mem.alignForward(u64, @as(u64, shape.max_connection) * @sizeOf(session_table.Session), page);
        return h;
    }

    /// Session tables: one per reactor thread (PROCESS) or per worker (BASE). The table of
    /// session `id` is number `(id - 1) % tableCount`.
    pub fn tableCount(h: *const abi.RegionHeader) u32 {
        return if (h.reactor_num > 0) h.reactor_num else h.worker_num;
    }

    pub fn size(h: *const abi.RegionHeader) usize {
        return @intCast(h.tables_offset + h.table_stride * tableCount(h));
    }

    /// Creates it (in the manager); returns the fd to pass down and the mapping. Pages are
    /// the kernel's zeros until touched, so the rings and tables of a PROCESS region cost
    /// memory only as they are used.
    pub fn create(worker_num: u32, manager_pid: i32, shape: Shape) !struct { fd: i32, memory: []align(page) u8 } {
        if (worker_num == 0 or worker_num > 1024) return error.InvalidArgument;
        if (shape.max_connection == 0 or shape.max_connection > 1 << 20) return error.InvalidArgument;
        if (shape.reactor_num > 256) return error.InvalidArgument;
        if (shape.reactor_num > 0 and (!std.math.isPowerOfTwo(shape.ring_bytes) or shape.ring_bytes < 64 * 1024)) return error.InvalidArgument;
        const header = plan(worker_num, manager_pid, shape);
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
        const expected = plan(header.worker_num, header.manager_pid, .{
            .reactor_num = header.reactor_num,
            .ring_bytes = header.ring_bytes,
            .max_connection = header.max_connection,
            .socket_buffer_size = header.socket_buffer_size,
        });
        if (header.magic != abi.region_magic or header.worker_num == 0 or size(&expected) != len or
            expected.tables_offset != header.tables_offset)
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
        if (worker_id >= header.worker_num) return null;
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
    const created = try Region.create(3, 1234, .{ .max_connection = 4, .socket_buffer_size = 1 });
    defer posix.close(created.fd);
    defer posix.munmap(created.memory);
    Region.slot(created.memory, 2).?.pid = 77;
    const again = try Region.map(created.fd);
    defer posix.munmap(again);
    try std.testing.expectEqual(@as(i32, 77), Region.slot(again, 2).?.pid);
    try std.testing.expect(Region.slot(again, 3) == null);
}

test "shm: a PROCESS region gives every (reactor, worker) pair its own channel and every reactor a table" {
    const created = try Region.create(3, 1, .{ .reactor_num = 2, .ring_bytes = 64 * 1024, .max_connection = 10, .socket_buffer_size = 1 });
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
        seen = @intFromPtr(ch.ptr) + Channel.size(64 * 1024);
    };
    try std.testing.expect(@intFromPtr(Region.tableSlots(again, 0).ptr) >= seen);
    try std.testing.expectEqual(@as(u32, 0), Region.tableSlots(again, 1)[9].id);
}
