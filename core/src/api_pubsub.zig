//! The C API of publish/subscribe's topic counts (topic_counts.zig), from any process: the
//! one that queues a subscription counts it, and `publish` reads the sum. In a tree the counts
//! are in the region; in a one-worker server, the reactor's.
const std = @import("std");
const abi = @import("abi.zig");
const api_region = @import("api_region.zig");
const pubsub = @import("pubsub.zig");
const shm = @import("shm.zig");
const topic_counts = @import("topic_counts.zig");
const Reactor = @import("reactor.zig").Reactor;
const Status = abi.Status;

const Row = struct { counts: topic_counts.Counts, row: u32 };

fn countsOf(r: ?*Reactor, region: ?[*]u8, session_id: u32) ?Row {
    if (region) |ptr| {
        const memory = api_region.regionMemory(ptr) orelse return null;
        const tables = shm.Region.tableCount(shm.Region.headerOf(memory));
        const row = if (session_id == 0) 0 else (session_id - 1) % tables;
        return .{ .counts = shm.Region.topicCounts(memory), .row = row };
    }
    const reactor = r orelse return null;
    return .{ .counts = reactor.pubsub.counts orelse return null, .row = reactor.pubsub.row };
}

/// Adds `delta` (1 or -1) to `name`'s subscribers in the row of session `session_id`'s
/// reactor, as its subscription is queued. `limit_reached` when the table has no room for
/// another topic (it is then not counted).
export fn zg_topic_adjust(r: ?*Reactor, region: ?[*]u8, session_id: u32, name: [*]const u8, len: u32, delta: i32) Status {
    if (len == 0 or len > pubsub.max_topic_bytes or (delta != 1 and delta != -1)) return .invalid_argument;
    const found = countsOf(r, region, session_id) orelse return .invalid_argument;
    return if (found.counts.adjust(found.row, name[0..len], delta)) .ok else .limit_reached;
}

/// How many subscribers `name` has across the tree (or the server).
export fn zg_topic_count(r: ?*Reactor, region: ?[*]u8, name: [*]const u8, len: u32) u32 {
    if (len == 0 or len > pubsub.max_topic_bytes) return 0;
    const found = countsOf(r, region, 0) orelse return 0;
    return found.counts.total(name[0..len]);
}
