//! How many subscribers each publish/subscribe topic has, readable from every process of the
//! tree without asking the reactors (`publish` returns it). The membership itself lives in each
//! reactor (pubsub.zig); this is only its sum, kept in the tree's region (a private copy in a
//! one-worker server).
//!
//! The memory: `slots` topic keys (a 64-bit hash of the name, 0 for a free slot; open addressing,
//! never removed, so a lookup stops at the first free slot), then one row of `slots` signed
//! counts per session table (a reactor thread's in PROCESS mode, an event worker's in BASE). A
//! row has one writer side only: the process that queues subscriptions on that reactor's lane
//! counts them as it queues them, and the reactor takes back the ones it could not apply (a
//! second subscribe, a session gone) and its sessions' as they close. A BASE worker that is
//! replaced clears its row, as its sessions died with its predecessor.
const std = @import("std");

/// Slots a lookup tries before it gives up.
const max_probes = 4096;

pub const Counts = struct {
    keys: []u64,
    /// `tables` rows of `keys.len`.
    counts: []i32,
    tables: u32,

    /// The key slots for a server of `max_connection` sessions: room for two topics per
    /// session, at least 1,024 and at most 2^20 (a power of two).
    pub fn slotsFor(max_connection: u32) u32 {
        const want = std.math.clamp(@as(u64, max_connection) * 2, 1024, 1 << 20);
        return @intCast(std.math.ceilPowerOfTwoAssert(u64, want));
    }

    /// Bytes of memory for `slots` keys and `tables` rows.
    pub fn bytes(slots: u32, tables: u32) usize {
        return @as(usize, slots) * 8 + @as(usize, slots) * tables * 4;
    }

    /// Over zeroed (or earlier used) memory of `bytes(slots, tables)`, 8-byte aligned.
    pub fn over(memory: []u8, slots: u32, tables: u32) Counts {
        std.debug.assert(memory.len >= bytes(slots, tables) and std.math.isPowerOfTwo(slots));
        const keys: [*]u64 = @ptrCast(@alignCast(memory.ptr));
        const counts: [*]i32 = @ptrCast(@alignCast(memory.ptr + @as(usize, slots) * 8));
        return .{ .keys = keys[0..slots], .counts = counts[0 .. @as(usize, slots) * tables], .tables = tables };
    }

    pub fn keyOf(name: []const u8) u64 {
        const h = std.hash.Wyhash.hash(0x7a69_6767_7572_6174, name);
        return if (h == 0) 1 else h;
    }

    /// The slot of `key`, claiming a free one when `claim`; null when absent (or the table is
    /// full).
    fn slotOf(c: Counts, key: u64, claim: bool) ?usize {
        const mask = c.keys.len - 1;
        var i: usize = @intCast(key & mask);
        // (Bounded: a table gone full answers in this many probes, not in a scan of it all.)
        for (0..@min(c.keys.len, max_probes)) |_| {
            const seen = @atomicLoad(u64, &c.keys[i], .acquire);
            if (seen == key) return i;
            if (seen == 0) {
                if (!claim) return null;
                const prior = @cmpxchgStrong(u64, &c.keys[i], 0, key, .acq_rel, .acquire) orelse return i;
                if (prior == key) return i;
                // Another process took it for another topic: probe on.
            }
            i = (i + 1) & mask;
        }
        return null;
    }

    /// Adds `delta` to `name`'s count in row `table`; false when the table has no room for
    /// another topic (then the topic is not counted: `publish` reports 0 for it).
    pub fn adjust(c: Counts, table: u32, name: []const u8, delta: i32) bool {
        if (table >= c.tables) return false;
        // (A topic is claimed by a count going up only: a removal of one never counted finds
        // no slot and counts nothing, so nothing is taken back for it either.)
        const i = c.slotOf(keyOf(name), delta > 0) orelse return false;
        _ = @atomicRmw(i32, &c.counts[@as(usize, table) * c.keys.len + i], .Add, delta, .monotonic);
        return true;
    }

    /// `name`'s subscribers over every row (a row below zero, a count taken back before it was
    /// made, counts as zero).
    pub fn total(c: Counts, name: []const u8) u32 {
        const i = c.slotOf(keyOf(name), false) orelse return 0;
        var sum: u64 = 0;
        for (0..c.tables) |t| {
            const n = @atomicLoad(i32, &c.counts[t * c.keys.len + i], .monotonic);
            if (n > 0) sum += @intCast(n);
        }
        return @intCast(@min(sum, std.math.maxInt(u32)));
    }

    /// Row `table` back to zero (its reactor's sessions are gone).
    pub fn clearRow(c: Counts, table: u32) void {
        if (table >= c.tables) return;
        const row = c.counts[@as(usize, table) * c.keys.len ..][0..c.keys.len];
        for (row) |*n| @atomicStore(i32, n, 0, .monotonic);
    }
};

const testing = std.testing;

test "topic counts: rows add up, taken-back counts do not go below zero, a cleared row is gone" {
    const slots: u32 = 1024;
    const memory = try testing.allocator.alignedAlloc(u8, .@"8", Counts.bytes(slots, 3));
    defer testing.allocator.free(memory);
    @memset(memory, 0);
    const c = Counts.over(memory, slots, 3);
    try testing.expectEqual(@as(u32, 0), c.total("room"));
    try testing.expect(c.adjust(0, "room", 2));
    try testing.expect(c.adjust(2, "room", 1));
    try testing.expect(c.adjust(1, "other", 1));
    try testing.expectEqual(@as(u32, 3), c.total("room"));
    try testing.expect(c.adjust(1, "room", -1));
    try testing.expectEqual(@as(u32, 3), c.total("room"));
    c.clearRow(0);
    try testing.expectEqual(@as(u32, 1), c.total("room"));
    try testing.expectEqual(@as(u32, 1), c.total("other"));
    try testing.expect(!c.adjust(3, "room", 1));
}

test "topic counts: a full table refuses new topics and still counts the ones it has" {
    const slots: u32 = 1024;
    const memory = try testing.allocator.alignedAlloc(u8, .@"8", Counts.bytes(slots, 1));
    defer testing.allocator.free(memory);
    @memset(memory, 0);
    const c = Counts.over(memory, slots, 1);
    var name: [16]u8 = undefined;
    for (0..slots) |i| try testing.expect(c.adjust(0, try std.fmt.bufPrint(&name, "t{d}", .{i}), 1));
    try testing.expect(!c.adjust(0, "one more", 1));
    try testing.expectEqual(@as(u32, 0), c.total("one more"));
    try testing.expectEqual(@as(u32, 1), c.total("t77"));
    try testing.expectEqual(@as(u32, 1024), Counts.slotsFor(10));
    try testing.expectEqual(@as(u32, 65536), Counts.slotsFor(20000));
}
