//! Shared memory: one `memfd_create` region per channel, mapped MAP_SHARED.
//!
//! A memfd has no name in /dev/shm, so nothing outside the process tree can attach; children
//! inherit the fd and map the same pages. Layout: `abi.ChannelHeader` at offset 0, the inbound
//! ring's data at `abi.data_offset`, the outbound ring's data right after it.
const std = @import("std");
const abi = @import("abi.zig");
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
        return @alignCast(ch.memory[abi.data_offset..][0..ch.header.ring_bytes]);
    }

    pub fn outData(ch: *Channel) []align(abi.record_align) u8 {
        return @alignCast(ch.memory[abi.data_offset + ch.header.ring_bytes ..][0..ch.header.ring_bytes]);
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
    pub fn size(worker_num: u32) usize {
        return abi.region_slots_offset + @as(usize, worker_num) * @sizeOf(abi.WorkerSlot);
    }

    /// Creates it (in the manager); returns the fd to pass down and the mapping.
    pub fn create(worker_num: u32, manager_pid: i32) !struct { fd: i32, memory: []align(std.heap.page_size_min) u8 } {
        if (worker_num == 0 or worker_num > 1024) return error.InvalidArgument;
        const fd = try posix.memfd_create("ziggurat-region", linux.MFD.CLOEXEC);
        errdefer posix.close(fd);
        try posix.ftruncate(fd, size(worker_num));
        const memory = try posix.mmap(null, size(worker_num), posix.PROT.READ | posix.PROT.WRITE, .{ .TYPE = .SHARED }, fd, 0);
        const header: *abi.RegionHeader = @ptrCast(memory.ptr);
        header.* = .{ .magic = abi.region_magic, .worker_num = worker_num, .manager_pid = manager_pid, .start_time = @intCast(std.time.timestamp()) };
        return .{ .fd = fd, .memory = memory };
    }

    /// Maps an inherited region (in a worker), after checking what it holds.
    pub fn map(fd: i32) ![]align(std.heap.page_size_min) u8 {
        // Inherited without close-on-exec; this process's own children must not get it.
        _ = try posix.fcntl(fd, posix.F.SETFD, posix.FD_CLOEXEC);
        const stat = try posix.fstat(fd);
        const len: usize = @intCast(stat.size);
        if (len < abi.region_slots_offset) return error.InvalidArgument;
        const memory = try posix.mmap(null, len, posix.PROT.READ | posix.PROT.WRITE, .{ .TYPE = .SHARED }, fd, 0);
        const header: *const abi.RegionHeader = @ptrCast(memory.ptr);
        if (header.magic != abi.region_magic or size(header.worker_num) != len) {
            posix.munmap(memory);
            return error.InvalidArgument;
        }
        return memory;
    }

    pub fn slot(memory: []u8, worker_id: u32) ?*abi.WorkerSlot {
        const header: *const abi.RegionHeader = @ptrCast(@alignCast(memory.ptr));
        if (worker_id >= header.worker_num) return null;
        return @ptrCast(@alignCast(&memory[abi.region_slots_offset + worker_id * @sizeOf(abi.WorkerSlot)]));
    }
};

test "shm: a region created under one mapping reads the same through a second" {
    const created = try Region.create(3, 1234);
    defer posix.close(created.fd);
    defer posix.munmap(created.memory);
    Region.slot(created.memory, 2).?.pid = 77;
    const again = try Region.map(created.fd);
    defer posix.munmap(again);
    try std.testing.expectEqual(@as(i32, 77), Region.slot(again, 2).?.pid);
    try std.testing.expect(Region.slot(again, 3) == null);
}
