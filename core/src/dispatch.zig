//! Dispatch: which lane (worker) a session's records go to, by the dispatch mode; records
//! queued behind a full ring; `max_queued_bytes` holds.
const std = @import("std");
const abi = @import("abi.zig");
const ring = @import("ring.zig");
const session_table = @import("session_table.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const http_session = @import("http_session.zig");
const Lane = reactor.Lane;
const Session = session_table.Session;
const log = std.log.scoped(.reactor);
const kick = reactor.kick;
const ipHash = reactor.ipHash;
const monoNs = reactor.monoNs;

pub fn lanePending(r: *const Reactor, lane: u16) bool {
    for (r.pending.items) |p| if (p.lane == lane) return true;
    return false;
}

/// Publishes inbound records and rings the doorbell of each worker that parked.
pub fn publish(r: *Reactor) void {
    for (r.lanes) |*lane| {
        if (lane.inbound.publish()) kick(lane.doorbell_fd);
    }
}

/// The lane's ring has no room for a record of `payload_max` bytes: publish, and ask the
/// worker to kick when it frees room. False when room appeared meanwhile (then nothing was
/// asked, and the caller retries): the flag a worker clears stands for the latest wait only.
pub fn noRoom(r: *Reactor, lane: *Lane, payload_max: u32) bool {
    _ = r;
    if (lane.inbound.publish()) kick(lane.doorbell_fd);
    lane.waiting_for_room = lane.inbound.prepareWait(payload_max);
    return lane.waiting_for_room;
}

/// The lane a session's connect and close (and in the sticky modes its data) go to.
pub fn homeLane(r: *Reactor, s: *const Session) u16 {
    const n: u32 = @intCast(r.lanes.len);
    if (n == 1) return 0;
    return switch (r.dispatch_mode) {
        .ip_hash => @intCast(ipHash(s.remote) % n),
        // Round-robin and idle-worker modes spread connections the same way.
        .round_robin, .idle_worker => blk: {
            const lane = r.next_lane % n;
            r.next_lane +%= 1;
            break :blk @intCast(lane);
        },
        .fd_modulo, .uid => @intCast(@as(u32, @intCast(s.fd)) % n),
    };
}

/// The lane the next bytes of `s` go to, or null when every candidate waits for room.
pub fn receiveLane(r: *Reactor, s: *const Session) ?*Lane {
    const n: u32 = @intCast(r.lanes.len);
    // An HTTP connection's requests go where the ones still unanswered went (in order).
    if (r.protocolOf(s) == .http) {
        if (http_session.pinnedLane(s)) |pinned| {
            const lane = &r.lanes[pinned];
            return if (lane.waiting_for_room) null else lane;
        }
    }
    const lane: *Lane = switch (r.dispatch_mode) {
        .fd_modulo, .ip_hash => &r.lanes[s.home_lane],
        .uid => blk: {
            const uid = @atomicLoad(u32, &s.uid, .acquire);
            break :blk &r.lanes[if (uid != 0) uid % n else s.home_lane];
        },
        .round_robin, .idle_worker => if (r.protocolOf(s) == .worker)
            &r.lanes[s.home_lane]
        else if (r.dispatch_mode == .round_robin)
            return r.nextLaneWithRoom()
        else
            return r.idleWorkerLane(),
    };
    return if (lane.waiting_for_room) null else lane;
}

pub fn nextLaneWithRoom(r: *Reactor) ?*Lane {
    const n: u32 = @intCast(r.lanes.len);
    for (0..n) |_| {
        const lane = &r.lanes[r.next_lane % n];
        r.next_lane +%= 1;
        if (!lane.waiting_for_room) return lane;
    }
    return null;
}

/// Dispatch mode 3: a worker that is idle with nothing left in its ring; else the idle
/// worker with the least backlog; else, when every worker is in a callback (or not running),
/// the one with the least backlog. A busy worker is never picked while another is idle, and
/// one that is slow falls behind in backlog, so it gets less. Ties go round-robin from after
/// the last lane that got a record (`dispatched`: a read that finds nothing moves nothing on);
/// null when every lane waits for room.
pub fn idleWorkerLane(r: *Reactor) ?*Lane {
    const a = r.attach orelse return r.nextLaneWithRoom();
    const n: u32 = @intCast(r.lanes.len);
    var best: ?u32 = null;
    var best_key: u64 = std.math.maxInt(u64);
    for (0..n) |k| {
        const i = (r.next_idle +% @as(u32, @intCast(k))) % n;
        const lane = &r.lanes[i];
        if (lane.waiting_for_room) continue;
        const idle = @atomicLoad(u32, &a.workers[i].status, .monotonic) == 2;
        const backlog = lane.inbound.backlog();
        const key = (@as(u64, @intFromBool(!idle)) << 32) | backlog;
        if (key < best_key) {
            best = i;
            best_key = key;
            if (key == 0) break;
        }
    }
    const i = best orelse return null;
    return &r.lanes[i];
}

/// A record went into `lane`'s ring: dispatch mode 3 looks for an idle worker after it next.
pub fn dispatched(r: *Reactor, lane: *const Lane) void {
    if (r.dispatch_mode == .idle_worker) r.next_idle = @as(u32, @intCast(lane - r.lanes.ptr)) +% 1;
}

/// Pushes a connect or close record, or queues it behind the lane's earlier ones; true when
/// it went into the ring.
pub fn pushOrQueue(r: *Reactor, record_type: abi.RecordType, flags: u8, lane_index: u16, session_id: u32, aux: u32) bool {
    const reactor_id = if (record_type == .close) r.closeReactorId(flags) else r.reactorId();
    const lane = &r.lanes[lane_index];
    if (!r.lanePending(lane_index) and lane.inbound.push(record_type, flags, reactor_id, session_id, aux, "")) {
        r.count("dispatch_count", 1);
        return true;
    }
    // Two per session at most in one lane; with several lanes blocked at once a slot's
    // successive sessions can each leave a close behind, so the list may grow.
    r.pending.append(r.allocator, .{ .type = record_type, .flags = flags, .lane = lane_index, .session_id = session_id, .aux = aux }) catch {
        log.err("session {d}: out of memory queueing its {s} record; the worker will not see it", .{ session_id, @tagName(record_type) });
        return false;
    };
    _ = r.noRoom(lane, 0);
    return false;
}

/// A session's close record. Its payload is the session's `ClientInfo` as it ends (the
/// slot may be free by the time the worker runs `close`, whose `getClientInfo` reads this).
pub fn pushClose(r: *Reactor, s: *Session, flags: u8, errno: u32) void {
    var info = s.info(r.config.reactor_id);
    info.close_errno = @intCast(errno);
    const lane_index = r.closeLane(s);
    const lane = &r.lanes[lane_index];
    if (!r.lanePending(lane_index) and lane.inbound.push(.close, flags, r.closeReactorId(flags), s.id, errno, std.mem.asBytes(&info))) {
        r.count("dispatch_count", 1);
        return;
    }
    // No room: the record waits with a copy of the info (without memory, it waits without).
    const copy = r.allocator.create(abi.ClientInfo) catch null;
    if (copy) |kept| kept.* = info;
    r.pending.append(r.allocator, .{ .type = .close, .flags = flags, .lane = lane_index, .session_id = s.id, .aux = errno, .info = copy }) catch {
        if (copy) |kept| r.allocator.destroy(kept);
        log.err("session {d}: out of memory queueing its close record; the worker will not see it", .{s.id});
        return;
    };
    _ = r.noRoom(lane, @sizeOf(abi.ClientInfo));
}

/// Counts `n` more bytes of `s` handed to a worker; true when that holds the session
/// (`max_queued_bytes` reached): it is not read until `releaseHeld` lets it go.
pub fn countQueued(r: *Reactor, s: *Session, n: u32) bool {
    const now = @atomicRmw(i64, &s.recv_queued, .Add, n, .monotonic) + n;
    if (now < r.max_queued or s.queue_held) return s.queue_held;
    s.queue_held = true;
    if (!s.on_held_list) {
        s.on_held_list = true;
        r.held.appendAssumeCapacity(@intCast(r.sessions.slotIndex(s.id)));
    }
    // A newly held session is looked at soon, whatever the backoff of the others.
    r.held_backoff_ms = 1;
    r.held_check_ns = @min(r.held_check_ns, monoNs() + std.time.ns_per_ms);
    if (r.held.items.len == 1) r.held_check_ns = monoNs() + std.time.ns_per_ms;
    log.debug("session {d}: {d} bytes handed to workers and not yet handled; reading waits", .{ s.id, now });
    return true;
}

/// Lets held sessions whose workers caught up (below `max_queued_bytes`) be read again;
/// forgets those that closed. Looks again after a backoff while some stay held.
pub fn releaseHeld(r: *Reactor) void {
    if (r.held.items.len == 0 or monoNs() < r.held_check_ns) return;
    var kept: usize = 0;
    var released = false;
    for (r.held.items) |slot| {
        const s = &r.sessions.slots[slot];
        if (s.state == .open and s.queue_held and
            @atomicLoad(i64, &s.recv_queued, .monotonic) >= r.max_queued)
        {
            r.held.items[kept] = slot;
            kept += 1;
            continue;
        }
        s.on_held_list = false;
        if (s.queue_held) {
            s.queue_held = false;
            released = true;
            if (s.state == .open and !s.paused) r.markReady(s);
        }
    }
    r.held.shrinkRetainingCapacity(kept);
    r.held_backoff_ms = if (released) 1 else @min(r.held_backoff_ms * 2, 1024);
    r.held_check_ns = monoNs() + @as(i64, r.held_backoff_ms) * std.time.ns_per_ms;
}

/// Where a session's close record goes: its home lane, or its uid's worker once bound.
pub fn closeLane(r: *const Reactor, s: *const Session) u16 {
    if (r.dispatch_mode == .uid and r.lanes.len > 1) {
        const uid = @atomicLoad(u32, &s.uid, .acquire);
        if (uid != 0) return @intCast(uid % r.lanes.len);
    }
    return s.home_lane;
}

/// Swoole reports -1 as the reactor of a close the server started.
pub fn closeReactorId(r: *const Reactor, flags: u8) i16 {
    return if (flags & abi.close_flag_server != 0) -1 else r.reactorId();
}

pub fn dropPending(r: *Reactor, session_id: u32) void {
    var kept: usize = 0;
    for (r.pending.items) |p| {
        if (p.session_id == session_id) {
            if (p.info) |info| r.allocator.destroy(info);
            continue;
        }
        r.pending.items[kept] = p;
        kept += 1;
    }
    r.pending.shrinkRetainingCapacity(kept);
}

/// Delivers pending records in order; a lane whose ring is still full keeps the rest of its
/// records (those of other lanes go on).
pub fn flushPending(r: *Reactor) void {
    if (r.pending.items.len == 0) return;
    for (r.lanes) |*lane| lane.blocked = false;
    var kept: usize = 0;
    for (r.pending.items) |p| {
        const lane = &r.lanes[p.lane];
        if (!lane.blocked) {
            const reactor_id = if (p.type == .close) r.closeReactorId(p.flags) else r.reactorId();
            const payload: []const u8 = if (p.info) |info| std.mem.asBytes(info) else "";
            if (lane.inbound.push(p.type, p.flags, reactor_id, p.session_id, p.aux, payload)) {
                if (p.info) |info| r.allocator.destroy(info);
                r.count("dispatch_count", 1);
                if (p.type == .connect) {
                    if (r.sessions.get(p.session_id)) |s| s.connect_pending = false;
                    r.ready_blocked = false;
                }
                continue;
            }
            lane.blocked = true;
            _ = r.noRoom(lane, @intCast(payload.len));
        }
        r.pending.items[kept] = p;
        kept += 1;
    }
    r.pending.shrinkRetainingCapacity(kept);
}
