//! The session table: a fixed array of sessions sized `max_connection` at start-up.
//!
//! A session id is a u32 that only grows (Swoole's `session_round`); the slot of id `s` is
//! `s % capacity`. Allocation takes the next id whose slot is free, so ids are never reused
//! while the counter has not wrapped, even when the kernel hands out the same fd again, and a
//! lookup is one array access plus an id compare: an id whose session ended finds a slot that
//! is free or holds a later id, never a stranger's connection.
const std = @import("std");
const http_session = @import("http_session.zig");
const websocket_session = @import("websocket_session.zig");
const abi = @import("abi.zig");
const assert = std.debug.assert;

pub const State = enum(u8) {
    free = 0,
    /// Reading and writing.
    open = 1,
    /// The peer sent EOF; the worker was told and the socket stays open until it answers, so
    /// output it queued first is still written.
    peer_closed = 2,
    /// The server closes it once the queued output is written.
    closing = 3,
};

pub const Session = struct {
    /// The session id, or 0 while the slot is free. Written by the reactor thread only; read
    /// atomically by the JS thread (`exists`, `getClientInfo`).
    id: u32 = 0,
    /// Written by the reactor thread only; read atomically by the JS thread.
    state: State = .free,
    fd: i32 = -1,
    listener: u16 = 0,
    /// The worker has been sent this session's close record.
    close_notified: bool = false,
    /// EPOLLOUT is armed because output is queued.
    want_write: bool = false,
    /// The slot is on the reactor's ready list (readable, not yet read to EAGAIN). Belongs to
    /// the slot, not the session: it survives release, so a slot is listed at most once.
    on_ready_list: bool = false,
    /// epoll reported RDHUP/HUP/ERR: an EOF or error waits behind the data, so a short read
    /// does not mean drained.
    peer_hup: bool = false,
    /// Queued output: bytes `out_sent..out.items.len` are still to be written.
    out: std.ArrayList(u8) = .empty,
    out_sent: usize = 0,
    /// `sendfile` segments, in order, each to go out once `out` is written up to its `at`.
    files: std.ArrayList(FileSegment) = .empty,
    /// Bytes still to be written, mirrored for other threads (`send` checks it against
    /// `socketBufferSize`).
    out_queued: u64 = 0,
    /// Framed protocols: bytes read and not yet delivered as whole messages,
    /// `in.items[in_start..]`.
    in: std.ArrayList(u8) = .empty,
    in_start: usize = 0,
    /// A message larger than one record goes out in pieces: how much of it went, to which lane.
    frame_sent: usize = 0,
    frame_lane: u16 = 0,
    /// HTTP (framing kind 5): the request being parsed and the responses still due.
    http: http_session.Conn = .{},
    /// WebSocket (an upgraded HTTP connection): its status and the message being reassembled.
    ws: websocket_session.Conn = .{},
    remote: std.net.Address = undefined,
    connect_time_ns: i64 = 0,
    last_recv_time_ns: i64 = 0,
    last_send_time_ns: i64 = 0,
    last_dispatch_time_ns: i64 = 0,
    recv_bytes: u64 = 0,
    send_bytes: u64 = 0,
    close_errno: i32 = 0,
    /// While `closing`: the close record's flags once the output is written (`close_errno` is
    /// its errno).
    close_flags: u8 = 0,
    /// PROCESS mode: the session's home worker (its lane): where its connect, close and, in
    /// the sticky dispatch modes, its data go.
    home_lane: u16 = 0,
    /// Its connect record waits for ring room: nothing of it is read until it is delivered.
    connect_pending: bool = false,
    /// Its port speaks the PROXY protocol and its header has not come yet: no worker has heard
    /// of it (proxy_session.zig). Read by other processes (session lists skip it): atomic.
    proxy_pending: bool = false,
    /// While `proxy_pending`: the monotonic time by which the header must be whole.
    proxy_deadline_ns: i64 = 0,
    /// `bind(sessionId, uid)`: set once (0 = unbound), by a worker, with a compare-exchange.
    uid: u32 = 0,
    /// `protect(sessionId)`: heartbeat never closes it. Set by workers, atomically.
    protected: u8 = 0,
    /// Its queued output crossed the high watermark (`bufferFull` sent, `bufferEmpty` due).
    buffer_full: bool = false,
    /// `pause()` (or `enable_delay_receive` before `confirm()`): not read until resumed.
    paused: bool = false,
    /// PROCESS mode with `max_queued_bytes`: bytes handed to workers and not yet handled. The
    /// reactor adds as it dispatches, the worker subtracts once its callback is done (atomic
    /// adds from both sides; a worker's late subtraction may take it below 0 for a moment).
    recv_queued: i64 = 0,
    /// Not read while `recv_queued` is at `max_queued_bytes` or over.
    queue_held: bool = false,
    /// The slot is on the reactor's held list. Belongs to the slot, like `on_ready_list`.
    on_held_list: bool = false,
    /// `sendwait`: the lanes (bit per lane, the first 64) that wait for its output to drain.
    drain_waiters: u64 = 0,
    /// The listening socket it came from, for `getClientInfo` in any process.
    server_fd: i32 = -1,
    server_port: u16 = 0,
    /// BASE mode: its worker left and sent the socket on to its successor (carry.zig), which
    /// has not taken it up yet. Open to the tree meanwhile, no reactor's own: `get` skips it.
    carried: bool = false,

    /// Output still to write: bytes or files.
    pub fn hasOutput(s: *const Session) bool {
        return s.out_sent < s.out.items.len or s.files.items.len > 0;
    }

    /// Open, closing, or past the peer's EOF, and this reactor's (not `carried` away).
    pub fn isLive(s: *const Session) bool {
        return s.state != .free and !s.carried;
    }

    /// What `getClientInfo` reports of it, as it is now. Another thread may recycle the slot
    /// meanwhile: such a reader checks `id` again after the copy.
    pub fn info(s: *const Session, reactor_id: u32) abi.ClientInfo {
        var out: abi.ClientInfo = std.mem.zeroes(abi.ClientInfo);
        out.session_id = @atomicLoad(u32, &s.id, .acquire);
        out.fd = s.fd;
        out.reactor_id = @intCast(reactor_id);
        out.server_fd = s.server_fd;
        out.server_port = s.server_port;
        switch (s.remote.any.family) {
            std.posix.AF.INET => {
                out.family = 4;
                out.remote_port = s.remote.getPort();
                @memcpy(out.remote_addr[0..4], std.mem.asBytes(&s.remote.in.sa.addr));
            },
            std.posix.AF.INET6 => {
                out.family = 6;
                out.remote_port = s.remote.getPort();
                out.remote_addr = s.remote.in6.sa.addr;
            },
            std.posix.AF.UNIX => out.family = 1,
            else => {},
        }
        out.connect_time = seconds(s.connect_time_ns);
        out.last_recv_time = seconds(s.last_recv_time_ns);
        out.last_send_time = seconds(s.last_send_time_ns);
        out.last_dispatch_time = seconds(s.last_dispatch_time_ns);
        out.send_queued_bytes = @atomicLoad(u64, &s.out_queued, .monotonic);
        out.recv_queued_bytes = @intCast(@max(0, @atomicLoad(i64, &s.recv_queued, .monotonic)));
        out.listener = s.listener;
        out.total_recv_bytes = s.recv_bytes;
        out.total_send_bytes = s.send_bytes;
        out.close_errno = s.close_errno;
        out.uid = @atomicLoad(u32, &s.uid, .monotonic);
        out.worker_id = s.home_lane;
        out.websocket_status = s.ws.statusNow();
        out.protected = @atomicLoad(u8, &s.protected, .monotonic);
        return out;
    }
};

fn seconds(ns: i64) f64 {
    return @as(f64, @floatFromInt(ns)) / std.time.ns_per_s;
}

/// A file queued with `sendfile`: `left` bytes from `offset`, after `out.items[0..at]`.
pub const FileSegment = struct { at: usize, fd: i32, offset: u64, left: u64 };

pub const SessionTable = struct {
    slots: []Session,
    /// Sessions in use.
    count: u32 = 0,
    /// The last id handed out (0: none yet).
    round: u32,
    /// With several workers, worker `offset` of `stride` hands out only the ids `i` with
    /// `(i - 1) % stride == offset`, so ids are unique across the tree and name their owner.
    stride: u32 = 1,
    offset: u32 = 0,
    /// The slots were allocated here (false: they live in the tree's shared region).
    owned: bool = true,

    pub fn init(allocator: std.mem.Allocator, capacity: u32, start_round: u32) !SessionTable {
        return initShared(allocator, capacity, start_round, 1, 0);
    }

    pub fn initShared(allocator: std.mem.Allocator, capacity: u32, start_round: u32, stride: u32, offset: u32) !SessionTable {
        assert(capacity > 0);
        assert(stride > 0 and offset < stride);
        const slots = try allocator.alloc(Session, capacity);
        @memset(slots, .{});
        return .{ .slots = slots, .round = start_round, .stride = stride, .offset = offset };
    }

    /// A table over slots that live elsewhere (the tree's shared region), already cleared.
    pub fn initIn(slots: []Session, start_round: u32, stride: u32, offset: u32) SessionTable {
        assert(slots.len > 0);
        assert(stride > 0 and offset < stride);
        return .{ .slots = slots, .round = start_round, .stride = stride, .offset = offset, .owned = false };
    }

    /// Whether this table hands out `id` (it may still be free).
    pub fn owns(t: *const SessionTable, id: u32) bool {
        return id != 0 and (id - 1) % t.stride == t.offset;
    }

    /// The slot of an id this table owns: consecutive ids of this table take consecutive slots.
    pub fn slotIndex(t: *const SessionTable, id: u32) usize {
        assert(t.owns(id));
        return ((id - 1) / t.stride) % t.slots.len;
    }

    /// The `round` (last id handed out) of a table of `stride` and `offset` whose first id is
    /// the first one it owns above `after` (Swoole's `start_session_id`).
    pub fn roundBefore(after: u32, stride: u32, offset: u32) u32 {
        assert(stride > 0 and offset < stride);
        if (after <= offset) return 0;
        // Its ids are offset + 1 + k * stride; the first above `after` is k = (after - offset - 1) / stride + 1.
        const k = (after - offset - 1) / stride + 1;
        const first = @as(u64, offset) + 1 + @as(u64, k) * stride;
        // Past the top: the ids wrap to the start.
        if (first > std.math.maxInt(u32)) return 0;
        return @intCast(first - stride);
    }

    fn nextId(t: *const SessionTable, id: u32) u32 {
        if (id == 0) return t.offset + 1;
        const next, const overflow = @addWithOverflow(id, t.stride);
        return if (overflow == 1) t.offset + 1 else next;
    }

    pub fn deinit(t: *SessionTable, allocator: std.mem.Allocator) void {
        for (t.slots) |*s| {
            s.out.deinit(allocator);
            s.in.deinit(allocator);
            for (s.files.items) |f| std.posix.close(f.fd);
            s.files.deinit(allocator);
        }
        if (t.owned) allocator.free(t.slots);
        t.* = undefined;
    }

    /// A free slot under a new id, or null when every slot is in use.
    pub fn allocate(t: *SessionTable) ?*Session {
        const slot = t.reserve() orelse return null;
        t.open(slot);
        return slot;
    }

    /// A free slot under a new id, not yet visible to other threads and processes as open:
    /// fill it in, then `open` it (before the next `reserve`).
    pub fn reserve(t: *SessionTable) ?*Session {
        if (t.count == t.slots.len) return null;
        var id = t.round;
        while (true) {
            id = t.nextId(id);
            const slot = &t.slots[t.slotIndex(id)];
            if (slot.state != .free) continue;
            assert(slot.out_sent == 0 and slot.out.items.len == 0);
            t.round = id;
            t.count += 1;
            slot.out_queued = 0;
            slot.close_notified = false;
            slot.buffer_full = false;
            slot.paused = false;
            slot.queue_held = false;
            @atomicStore(i64, &slot.recv_queued, 0, .release);
            slot.drain_waiters = 0;
            slot.want_write = false;
            slot.peer_hup = false;
            slot.close_errno = 0;
            slot.close_flags = 0;
            slot.recv_bytes = 0;
            slot.send_bytes = 0;
            slot.last_recv_time_ns = 0;
            slot.last_send_time_ns = 0;
            slot.last_dispatch_time_ns = 0;
            slot.home_lane = 0;
            slot.connect_pending = false;
            @atomicStore(bool, &slot.proxy_pending, false, .release);
            @atomicStore(u8, &slot.protected, 0, .release);
            @atomicStore(u32, &slot.uid, 0, .release);
            @atomicStore(u32, &slot.id, id, .release);
            return slot;
        }
    }

    /// Publishes a reserved slot as open: readers elsewhere (`stateOf`, `zg_client_info` in
    /// other processes) see its fields only from now on.
    pub fn open(t: *SessionTable, s: *Session) void {
        _ = t;
        assert(s.state == .free and s.id != 0);
        @atomicStore(State, &s.state, .open, .release);
    }

    /// Empties every slot with atomic stores (other processes may be reading them): the
    /// table of a worker that is gone, whose sockets died with it; but with `keep_carried`,
    /// the sessions it `carried` to its successor stay (their heap parts were the dead
    /// process's: emptied).
    pub fn clearShared(slots: []Session, keep_carried: bool) void {
        for (slots) |*s| {
            if (keep_carried and s.carried and s.state != .free) {
                s.in = .empty;
                s.in_start = 0;
                s.out = .empty;
                s.out_sent = 0;
                s.files = .empty;
                s.ws.held = .empty;
                s.on_ready_list = false;
                s.on_held_list = false;
                s.want_write = false;
                continue;
            }
            @atomicStore(State, &s.state, .free, .release);
            @atomicStore(u32, &s.id, 0, .release);
            s.* = .{};
        }
    }

    /// The live session with this id, or null.
    pub fn get(t: *SessionTable, id: u32) ?*Session {
        if (!t.owns(id)) return null;
        const slot = &t.slots[t.slotIndex(id)];
        if (slot.id != id or slot.state == .free or slot.carried) return null;
        return slot;
    }

    /// The state of session `id` as another thread sees it (`free` when it is gone).
    pub fn stateOf(t: *const SessionTable, id: u32) State {
        if (!t.owns(id)) return .free;
        const slot = &t.slots[t.slotIndex(id)];
        const state = @atomicLoad(State, &slot.state, .acquire);
        if (@atomicLoad(u32, &slot.id, .acquire) != id) return .free;
        return state;
    }

    /// Returns the slot to the free list and frees its output buffer, so a table of idle
    /// slots holds no buffer memory. `on_ready_list` stays: the reactor's ready list may still
    /// name the slot (see `Reactor.readReady`).
    pub fn release(t: *SessionTable, allocator: std.mem.Allocator, s: *Session) void {
        assert(s.state != .free);
        assert(t.count > 0);
        s.out.clearAndFree(allocator);
        s.out_sent = 0;
        for (s.files.items) |f| std.posix.close(f.fd);
        s.files.clearAndFree(allocator);
        s.in.clearAndFree(allocator);
        s.in_start = 0;
        s.frame_sent = 0;
        s.http = .{};
        @atomicStore(websocket_session.Status, &s.ws.status, .none, .monotonic);
        s.ws.held.deinit(allocator);
        s.ws = .{};
        @atomicStore(u64, &s.out_queued, 0, .release);
        @atomicStore(State, &s.state, .free, .release);
        @atomicStore(u32, &s.id, 0, .release);
        s.fd = -1;
        t.count -= 1;
    }
};

const testing = std.testing;

test "session table: ids are never reused even when the same slot and fd come back" {
    var t = try SessionTable.init(testing.allocator, 4, 0);
    defer t.deinit(testing.allocator);
    var seen = std.AutoHashMap(u32, void).init(testing.allocator);
    defer seen.deinit();
    for (0..1000) |i| {
        const s = t.allocate().?;
        s.fd = 7; // the kernel reuses the lowest free fd: every session gets the same one
        try testing.expect(!seen.contains(s.id));
        try seen.put(s.id, {});
        if (i >= 9 or i % 3 != 0) t.release(testing.allocator, s);
    }
    // Three sessions stayed open and block their slots; allocation skips them and stays unique.
    try testing.expectEqual(@as(u32, 3), t.count);
    try testing.expect(!seen.contains(t.allocate().?.id));
    try testing.expect(t.allocate() == null);
}

test "session table: a lookup by an ended session's id never finds the new occupant" {
    var t = try SessionTable.init(testing.allocator, 2, 0);
    defer t.deinit(testing.allocator);
    const a = t.allocate().?;
    const old_id = a.id;
    t.release(testing.allocator, a);
    try testing.expect(t.get(old_id) == null);
    try testing.expectEqual(State.free, t.stateOf(old_id));
    _ = t.allocate().?;
    const c = t.allocate().?; // lands in old_id's slot under a new id
    try testing.expect(c.id != old_id);
    try testing.expect(t.get(old_id) == null);
    try testing.expect(t.get(c.id) == c);
    try testing.expectEqual(State.open, t.stateOf(c.id));
}

test "session table: ids wrap past 2^32 - 1 without handing out 0" {
    var t = try SessionTable.init(testing.allocator, 3, std.math.maxInt(u32) - 1);
    defer t.deinit(testing.allocator);
    try testing.expectEqual(std.math.maxInt(u32), t.allocate().?.id);
    try testing.expectEqual(@as(u32, 1), t.allocate().?.id);
}

test "session table: output buffers are freed on release (the test allocator finds leaks)" {
    var t = try SessionTable.init(testing.allocator, 2, 0);
    defer t.deinit(testing.allocator);
    const s = t.allocate().?;
    try s.out.appendSlice(testing.allocator, &([_]u8{1} ** (100 * 1024)));
    t.release(testing.allocator, s);
    try testing.expectEqual(@as(usize, 0), s.out.capacity);
}

test "session table: workers of a tree hand out disjoint ids that name their owner" {
    var a = try SessionTable.initShared(testing.allocator, 4, 0, 3, 0);
    defer a.deinit(testing.allocator);
    var b = try SessionTable.initShared(testing.allocator, 4, 0, 3, 2);
    defer b.deinit(testing.allocator);
    for (0..20) |_| {
        const s = a.allocate().?;
        try testing.expectEqual(@as(u32, 0), (s.id - 1) % 3);
        try testing.expect(!b.owns(s.id));
        try testing.expect(b.get(s.id) == null);
        a.release(testing.allocator, s);
        const t = b.allocate().?;
        try testing.expectEqual(@as(u32, 2), (t.id - 1) % 3);
        b.release(testing.allocator, t);
    }
    try testing.expectEqual(@as(u32, 1 + 19 * 3), a.round);
}

test "session table: startSessionId makes the first id start + 1, each table its own in turn" {
    var one = try SessionTable.init(testing.allocator, 4, SessionTable.roundBefore(1000, 1, 0));
    defer one.deinit(testing.allocator);
    try testing.expectEqual(@as(u32, 1001), one.allocate().?.id);
    // Three tables sharing the id space: 1001 is table 1's (1000 % 3), then 1002, 1003.
    var ids: [3]u32 = undefined;
    for (0..3) |offset| {
        var t = try SessionTable.initShared(testing.allocator, 4, SessionTable.roundBefore(1000, 3, @intCast(offset)), 3, @intCast(offset));
        defer t.deinit(testing.allocator);
        ids[offset] = t.allocate().?.id;
    }
    try testing.expectEqualSlices(u32, &.{ 1003, 1001, 1002 }, &ids);
    try testing.expectEqual(@as(u32, 0), SessionTable.roundBefore(0, 3, 1));
}
