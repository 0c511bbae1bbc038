//! Publish/subscribe for WebSocket connections, in the reactor that owns their sockets: each
//! reactor keeps the topics of its own sessions. A `publish` reaches every reactor once (one
//! record on each lane, whoever sent it), with its frame built once by the publisher; the
//! reactor writes those bytes to each of its subscribers that is an open WebSocket.
//! Subscriptions end with their connection. Counts for `publish`'s answer: topic_counts.zig.
//!
//! Records (outbound lanes): `subscribe` / `unsubscribe` carry the topic (aux bit 0: the
//! sender counted it in the topic counts already, see topic_counts.zig); `publish` carries a
//! u16 topic length, the topic, then the frame, in several records when larger than one
//! (`publish_flag_more` on all but the last; the later ones carry frame bytes only).
const std = @import("std");
const abi = @import("abi.zig");
const topic_counts = @import("topic_counts.zig");
const reactor = @import("reactor.zig");
const websocket_session = @import("websocket_session.zig");
const Reactor = reactor.Reactor;
const Lane = reactor.Lane;
const Allocator = std.mem.Allocator;
const log = std.log.scoped(.pubsub);

/// The longest topic name, in bytes.
pub const max_topic_bytes = 1024;
/// The most topics one connection subscribes to; more are refused (and logged).
pub const max_topics_per_session = 1024;
/// The largest frame one publish carries (the lane's assembly buffer for a publish in several
/// records is bounded by it).
pub const max_publish_bytes = 64 * 1024 * 1024;

const Topic = struct {
    name: []u8,
    members: std.AutoArrayHashMapUnmanaged(u32, void) = .empty,
};

/// One reactor's topics and who of its sessions is subscribed to each.
pub const Topics = struct {
    by_name: std.StringHashMapUnmanaged(*Topic) = .empty,
    by_session: std.AutoHashMapUnmanaged(u32, std.ArrayList(*Topic)) = .empty,
    /// A publish's subscribers, copied before writing (a write may close a session, which
    /// changes the topic).
    scratch: std.ArrayList(u32) = .empty,

    pub const Added = enum { added, already, refused };

    pub fn add(t: *Topics, a: Allocator, id: u32, name: []const u8) Allocator.Error!Added {
        const mine = try t.by_session.getOrPut(a, id);
        if (!mine.found_existing) mine.value_ptr.* = .empty;
        errdefer if (mine.value_ptr.items.len == 0) t.forget(a, id);
        const topic = t.by_name.get(name) orelse blk: {
            if (mine.value_ptr.items.len >= max_topics_per_session) return .refused;
            const created = try a.create(Topic);
            errdefer a.destroy(created);
            created.* = .{ .name = try a.dupe(u8, name) };
            errdefer a.free(created.name);
            try t.by_name.put(a, created.name, created);
            break :blk created;
        };
        errdefer t.dropIfEmpty(a, topic);
        if (topic.members.contains(id)) return .already;
        if (mine.value_ptr.items.len >= max_topics_per_session) return .refused;
        try mine.value_ptr.ensureUnusedCapacity(a, 1);
        try topic.members.put(a, id, {});
        mine.value_ptr.appendAssumeCapacity(topic);
        return .added;
    }

    /// False when `id` was not subscribed to `name`.
    pub fn remove(t: *Topics, a: Allocator, id: u32, name: []const u8) bool {
        const topic = t.by_name.get(name) orelse return false;
        if (!topic.members.swapRemove(id)) return false;
        const mine = t.by_session.getPtr(id).?;
        for (mine.items, 0..) |held, i| {
            if (held == topic) {
                _ = mine.swapRemove(i);
                break;
            }
        }
        if (mine.items.len == 0) t.forget(a, id);
        t.dropIfEmpty(a, topic);
        return true;
    }

    /// Every subscription of session `id` ends; each is taken out of `counts` (row `row`).
    pub fn dropSession(t: *Topics, a: Allocator, id: u32, counts: ?topic_counts.Counts, row: u32) void {
        var mine = (t.by_session.fetchRemove(id) orelse return).value;
        defer mine.deinit(a);
        for (mine.items) |topic| {
            _ = topic.members.swapRemove(id);
            if (counts) |c| _ = c.adjust(row, topic.name, -1);
            t.dropIfEmpty(a, topic);
        }
    }

    /// The sessions subscribed to `name` now, copied (valid until the next call).
    pub fn membersOf(t: *Topics, a: Allocator, name: []const u8) Allocator.Error![]const u32 {
        const topic = t.by_name.get(name) orelse return &.{};
        t.scratch.clearRetainingCapacity();
        try t.scratch.appendSlice(a, topic.members.keys());
        return t.scratch.items;
    }

    fn forget(t: *Topics, a: Allocator, id: u32) void {
        var mine = (t.by_session.fetchRemove(id) orelse return).value;
        mine.deinit(a);
    }

    fn dropIfEmpty(t: *Topics, a: Allocator, topic: *Topic) void {
        if (topic.members.count() > 0) return;
        _ = t.by_name.remove(topic.name);
        topic.members.deinit(a);
        a.free(topic.name);
        a.destroy(topic);
    }

    pub fn deinit(t: *Topics, a: Allocator) void {
        var topics = t.by_name.valueIterator();
        while (topics.next()) |topic| {
            topic.*.members.deinit(a);
            a.free(topic.*.name);
            a.destroy(topic.*);
        }
        t.by_name.deinit(a);
        var sessions = t.by_session.valueIterator();
        while (sessions.next()) |list| list.deinit(a);
        t.by_session.deinit(a);
        t.scratch.deinit(a);
        t.* = .{};
    }
};

/// A reactor's publish/subscribe: its topics, and the counts `publish` answers with (the tree's,
/// in the region, or its own in a one-worker server) and its row in them.
pub const State = struct {
    topics: Topics = .{},
    counts: ?topic_counts.Counts = null,
    row: u32 = 0,
    /// A one-worker server's counts, owned here.
    own_memory: []u8 = &.{},

    /// Counts of its own (mapped: its pages cost nothing until topics are counted in them).
    pub fn initOwn(max_connection: u32) !State {
        const slots = topic_counts.Counts.slotsFor(max_connection);
        const memory = try std.heap.page_allocator.alloc(u8, topic_counts.Counts.bytes(slots, 1));
        // (Safe builds fill new memory with 0xaa; a free key slot is 0.)
        @memset(memory, 0);
        return .{ .counts = topic_counts.Counts.over(memory, slots, 1), .own_memory = memory };
    }

    /// From now on it counts in the tree's `counts`, in row `row`.
    pub fn useShared(p: *State, counts: topic_counts.Counts, row: u32) void {
        p.freeOwn();
        p.counts = counts;
        p.row = row;
    }

    /// A session carried over from this worker's predecessor (carry.zig) is subscribed to
    /// `name` again, and counted.
    pub fn subscribeCarried(p: *State, a: Allocator, id: u32, name: []const u8) void {
        if (name.len == 0 or name.len > max_topic_bytes) return;
        const added = p.topics.add(a, id, name) catch |err| {
            log.warn("session {d}: cannot subscribe it again to a topic ({s})", .{ id, @errorName(err) });
            return;
        };
        if (added == .added) p.adjust(name, 1);
    }

    fn adjust(p: *const State, name: []const u8, delta: i32) void {
        if (p.counts) |c| _ = c.adjust(p.row, name, delta);
    }

    fn freeOwn(p: *State) void {
        if (p.own_memory.len > 0) std.heap.page_allocator.free(p.own_memory);
        p.own_memory = &.{};
    }

    pub fn deinit(p: *State, a: Allocator) void {
        p.topics.deinit(a);
        p.freeOwn();
    }
};

/// A lane's publish that comes in several records, as far as it came.
pub const Assembly = struct {
    bytes: std.ArrayList(u8) = .empty,
    /// The rest of one too large to assemble is skipped.
    dropping: bool = false,

    fn begun(l: *const Assembly) bool {
        return l.bytes.items.len > 0 or l.dropping;
    }

    fn drop(l: *Assembly, a: Allocator) void {
        l.bytes.clearAndFree(a);
        l.dropping = true;
    }

    pub fn deinit(l: *Assembly, a: Allocator) void {
        l.bytes.deinit(a);
    }
};

/// A `subscribe` (`on`) or `unsubscribe` record for session `id`.
pub fn subscriptionRecord(r: *Reactor, id: u32, name: []const u8, counted: bool, on: bool) void {
    // What the sender counted and this reactor could not apply is taken back.
    var applied = false;
    if (name.len > 0 and name.len <= max_topic_bytes) {
        const live = if (r.sessions.get(id)) |s| s.isLive() else false;
        if (on and live) {
            const added = r.pubsub.topics.add(r.allocator, id, name) catch .refused;
            if (added == .refused) log.warn("session {d}: subscription to a topic refused (at most {d} per connection, or out of memory)", .{ id, max_topics_per_session });
            applied = added == .added;
        } else if (!on) {
            applied = r.pubsub.topics.remove(r.allocator, id, name);
        }
    }
    if (counted and !applied) r.pubsub.adjust(name, if (on) -1 else 1);
    // Counted here when the sender could not (it reached the lane without counting).
    if (!counted and applied) r.pubsub.adjust(name, if (on) 1 else -1);
}

/// A `publish` record from `lane`: assembled when in several, then written to each subscriber.
pub fn publishRecord(r: *Reactor, lane: *Lane, flags: u8, payload: []const u8) void {
    const more = flags & abi.publish_flag_more != 0;
    const first = flags & abi.publish_flag_first != 0;
    const l = &lane.publish;
    if (first and l.begun()) {
        log.warn("a publish left unfinished on a lane dropped", .{});
        dropAssembly(r, lane);
    }
    // A publish in one record.
    if (first and !more) return fanOut(r, payload);
    if (!l.dropping) {
        if (l.bytes.items.len + payload.len > max_publish_bytes + 2 + max_topic_bytes) {
            log.err("a publish of more than {d} bytes dropped", .{max_publish_bytes});
            l.drop(r.allocator);
        } else l.bytes.appendSlice(r.allocator, payload) catch {
            log.err("out of memory assembling a publish of {d}+ bytes; dropped", .{l.bytes.items.len});
            l.drop(r.allocator);
        };
    }
    if (more) return;
    if (l.dropping) {
        l.dropping = false;
        r.count("send_dropped_count", 1);
        return;
    }
    fanOut(r, l.bytes.items);
    // Keep a modest buffer for the next one; give back a large one.
    if (l.bytes.capacity > 1 << 20) l.bytes.clearAndFree(r.allocator) else l.bytes.clearRetainingCapacity();
}

/// What a lane had of a publish in several records is dropped (its worker died before the rest).
pub fn dropAssembly(r: *Reactor, lane: *Lane) void {
    if (lane.publish.begun()) r.count("send_dropped_count", 1);
    lane.publish.bytes.clearAndFree(r.allocator);
    lane.publish.dropping = false;
}

fn fanOut(r: *Reactor, message: []const u8) void {
    if (message.len < 2) return;
    const name_len = std.mem.readInt(u16, message[0..2], .little);
    if (message.len < 2 + @as(usize, name_len)) return;
    const name = message[2..][0..name_len];
    const frame = message[2 + name_len ..];
    const members = r.pubsub.topics.membersOf(r.allocator, name) catch {
        log.err("out of memory publishing to a topic; dropped", .{});
        return r.count("send_dropped_count", 1);
    };
    for (members) |id| {
        const s = r.sessions.get(id) orelse continue;
        if (!s.isLive() or s.ws.status != .active) continue;
        const limit = r.config.socket_buffer_size;
        // (The rule `push` has: a buffer at its limit takes no more; one below it takes a
        // message of any size.)
        const queued = @atomicLoad(u64, &s.out_queued, .monotonic) + s.ws.held.items.len;
        if (limit > 0 and queued >= limit) {
            // A slow consumer: this message is not queued for it, or it is closed.
            r.count("send_dropped_count", 1);
            if (r.settingsOf(s.listener).websocket.close_on_backpressure) {
                log.warn("session {d}: its output is over the limit ({d} bytes); closing it (close_on_backpressure_limit)", .{ id, limit });
                r.closeSession(s, abi.close_flag_server | abi.close_flag_error, @intFromEnum(std.posix.E.NOBUFS), true);
            }
            continue;
        }
        if (s.ws.out_open_lane != 0) {
            // A worker's message to it is unfinished: this one waits for its end.
            s.ws.held.appendSlice(r.allocator, frame) catch {
                r.count("send_dropped_count", 1);
                continue;
            };
            continue;
        }
        r.sendTo(id, frame);
    }
}

/// A send record from lane `lane` for session `id` was written: `more` when it leaves a
/// WebSocket message unfinished. Once finished, the published frames that waited go out.
pub fn messageProgress(r: *Reactor, id: u32, lane: u16, more: bool) void {
    const s = r.sessions.get(id) orelse return;
    if (s.ws.status == .none) return;
    if (more) {
        s.ws.out_open_lane = lane + 1;
        return;
    }
    if (s.ws.out_open_lane == 0) return;
    s.ws.out_open_lane = 0;
    if (s.ws.held.items.len == 0) return;
    var held = s.ws.held;
    s.ws.held = .empty;
    defer held.deinit(r.allocator);
    r.sendTo(id, held.items);
}

/// PROCESS mode: the worker of lane `lane` died. A message it left unfinished to a WebSocket
/// cannot be finished: that connection is closed with 1011 (a Close may come between
/// fragments); what was published meanwhile is dropped with it.
pub fn workerDied(r: *Reactor, lane: u16) void {
    dropAssembly(r, &r.lanes[lane]);
    for (r.sessions.slots) |*s| {
        if (!s.isLive() or s.ws.out_open_lane != lane + 1) continue;
        log.warn("session {d}: its worker died in the middle of a message to it; closing it with 1011", .{s.id});
        s.ws.out_open_lane = 0;
        s.ws.held.clearAndFree(r.allocator);
        websocket_session.closeWith(r, s, 1011, "worker died", abi.close_flag_error | abi.close_flag_server, @intFromEnum(std.posix.E.PIPE));
    }
}

/// Session `id` ends: its subscriptions go.
pub fn sessionEnded(r: *Reactor, id: u32) void {
    const p = &r.pubsub;
    if (p.topics.by_session.count() == 0) return;
    p.topics.dropSession(r.allocator, id, p.counts, p.row);
}

const testing = std.testing;

test "pubsub topics: add, refuse a second, remove, drop a session's, no leaks" {
    const a = testing.allocator;
    var t: Topics = .{};
    defer t.deinit(a);
    try testing.expectEqual(Topics.Added.added, try t.add(a, 1, "room"));
    try testing.expectEqual(Topics.Added.already, try t.add(a, 1, "room"));
    try testing.expectEqual(Topics.Added.added, try t.add(a, 2, "room"));
    try testing.expectEqual(Topics.Added.added, try t.add(a, 1, "lobby"));
    try testing.expectEqualSlices(u32, &.{ 1, 2 }, try t.membersOf(a, "room"));
    try testing.expect(t.remove(a, 2, "room"));
    try testing.expect(!t.remove(a, 2, "room"));
    try testing.expect(!t.remove(a, 3, "nothing"));
    t.dropSession(a, 1, null, 0);
    try testing.expectEqual(@as(usize, 0), (try t.membersOf(a, "room")).len);
    try testing.expectEqual(@as(u32, 0), t.by_name.count());
    try testing.expectEqual(@as(u32, 0), t.by_session.count());
    // A session with subscriptions left when the reactor goes: deinit frees them.
    _ = try t.add(a, 5, "left");
}

test "pubsub topics: at most max_topics_per_session per connection" {
    const a = testing.allocator;
    var t: Topics = .{};
    defer t.deinit(a);
    var name: [16]u8 = undefined;
    for (0..max_topics_per_session) |i| {
        try testing.expectEqual(Topics.Added.added, try t.add(a, 7, try std.fmt.bufPrint(&name, "t{d}", .{i})));
    }
    try testing.expectEqual(Topics.Added.refused, try t.add(a, 7, "one more"));
    // Another connection's topic exists: still refused for this one.
    try testing.expectEqual(Topics.Added.added, try t.add(a, 8, "shared"));
    try testing.expectEqual(Topics.Added.refused, try t.add(a, 7, "shared"));
    try testing.expectEqual(@as(u32, max_topics_per_session + 1), t.by_name.count());
}

test "pubsub topics: allocation failures leave no half-made topic" {
    var t: Topics = .{};
    var failing = testing.FailingAllocator.init(testing.allocator, .{ .fail_index = 2 });
    const a = failing.allocator();
    defer t.deinit(testing.allocator);
    try testing.expectError(error.OutOfMemory, t.add(a, 1, "room"));
    try testing.expectEqual(@as(u32, 0), t.by_name.count());
}
