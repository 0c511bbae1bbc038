//! An epoll reactor: in BASE mode one per worker (on its own native thread, or driven from the
//! worker's JS thread); in PROCESS mode `reactor_num` of them on threads of the master.
//!
//! It accepts on its listen sockets, reads sessions straight into a worker's inbound ring,
//! writes what workers queue in their outbound rings (directly from ring memory when the
//! session has no backlog, through a per-session output buffer otherwise) and closes sessions.
//! Each worker it serves is a `Lane`: one channel (an inbound and an outbound ring) and the
//! worker's doorbell. BASE mode has one lane; PROCESS mode one per worker, and the dispatch
//! mode picks the lane of each record. It never calls into JavaScript: a worker is woken through
//! its eventfd doorbell only when it parked, and the reactor is kicked through another eventfd
//! only when it sleeps.
const std = @import("std");
const abi = @import("abi.zig");
const ring = @import("ring.zig");
const shm = @import("shm.zig");
const session_table = @import("session_table.zig");
const framing = @import("framing.zig");
const lingering_close = @import("linger.zig");
const handoff_mod = @import("handoff.zig");
const Handoff = handoff_mod.Handoff;
const Accepted = handoff_mod.Accepted;
const orphans = @import("orphans.zig");
const SessionTable = session_table.SessionTable;
const Session = session_table.Session;
const linux = std.os.linux;
const posix = std.posix;
const c = std.c;
const assert = std.debug.assert;
const log = std.log.scoped(.reactor);

/// The most a single read takes from a socket (one receive record).
pub const read_chunk = 64 * 1024;
/// The largest Unix datagram read whole (the kernel's default socket buffer is 208 KiB).
const unix_datagram_max = 256 * 1024;
/// Reads of one session per loop turn before the others get theirs.
const reads_per_turn = 4;
/// Connections accepted per listener per loop turn.
const accepts_per_turn = 64;
pub const listeners_max = abi.ports_max;
const events_max = 256;
const accept_pause_ms = 1000;
/// An output buffer larger than this is freed once drained, not kept for the next burst.
pub const out_keep_bytes = 64 * 1024;

pub const poll_more: u32 = 1;

const tag_session: u64 = 0;
const session_events: u32 = linux.EPOLL.IN | linux.EPOLL.RDHUP | linux.EPOLL.ET;
const tag_listener: u64 = 1 << 32;
const tag_kick: u64 = 2 << 32;
const tag_doorbell: u64 = 3 << 32;
const tag_linger: u64 = 4 << 32;

pub const Listener = struct {
    fd: i32,
    port: u16,
    tcp_nodelay: bool,
    /// Shared with other workers' reactors (inherited from the manager): polled with
    /// EPOLLEXCLUSIVE so one connection wakes one worker.
    shared: bool = false,
    /// Edge-triggered: set when the socket signalled and has not yet been accepted to EAGAIN.
    pending: bool = false,
    /// A UDP socket: read with recvfrom into `packet` records instead of accepted.
    datagram: bool = false,
    /// A Unix socket (found by the reactor).
    unix: bool = false,
    /// A port with settings of its own (`Port.set`); otherwise the server's.
    own_settings: bool = false,
    settings: Settings = .{},
    /// Polled for connections here. PROCESS mode with several reactor threads: reactor 0 only,
    /// which hands the connections out in turn (see handoff.zig); datagram sockets are read
    /// by every thread.
    accepts: bool = true,
};

/// What `abi.FramingConfig` sets, for the server or one port: framing, limits, output
/// watermarks, delayed receive, heartbeat idle time and the options of accepted sockets.
pub const Settings = struct {
    /// How a session's bytes become messages (none: as read).
    framing: framing.Protocol = .none,
    /// `package_max_length`.
    max_length: u32 = 2 * 1024 * 1024,
    /// `bufferFull` when a session's queued output reaches this (0: off), `bufferEmpty` when
    /// it is down to `low_watermark` again.
    high_watermark: u64 = 0,
    low_watermark: u64 = 0,
    /// `enable_delay_receive`: new sessions start paused.
    delay_receive: bool = false,
    /// A port's `heartbeat_idle_time` in ns (0: the server's).
    heartbeat_idle_ns: i64 = 0,
    /// Socket options of accepted sockets (see `abi.FramingConfig`).
    socket: abi.FramingConfig = std.mem.zeroes(abi.FramingConfig),

    pub fn parse(config: abi.FramingConfig) error{InvalidArgument}!Settings {
        return .{
            .max_length = if (config.max_length == 0) 2 * 1024 * 1024 else config.max_length,
            .high_watermark = config.high_watermark,
            .low_watermark = @min(config.low_watermark, config.high_watermark),
            .delay_receive = config.delay_receive != 0,
            .heartbeat_idle_ns = @as(i64, config.heartbeat_idle_ms) * std.time.ns_per_ms,
            .socket = config,
            .framing = switch (config.kind) {
                0 => .none,
                4 => .worker,
                1, 2 => blk: {
                    if (config.marker_len == 0 or config.marker_len > 8) return error.InvalidArgument;
                    var p: framing.Protocol = .{ .eof = .{ .len = @intCast(config.marker_len), .split = config.kind == 1 } };
                    @memcpy(p.eof.marker[0..config.marker_len], config.marker[0..config.marker_len]);
                    break :blk p;
                },
                3 => .{ .length = .{
                    .type = std.meta.intToEnum(framing.LengthType, @as(u8, @intCast(config.length_type & 0xff))) catch return error.InvalidArgument,
                    .offset = config.length_offset,
                    .body_offset = config.body_offset,
                } },
                else => return error.InvalidArgument,
            },
        };
    }
};

const Phase = enum(u32) {
    running,
    /// The worker was sent `shutdown`; its `shutdown_ack` is awaited.
    draining,
    /// Writing the last queued output before closing everything.
    flushing,
    /// Every session closed; their close records and `stopped` wait for ring room.
    closing,
    stopped,
};

/// A connect or close record that found no room in its lane's ring; delivered in order, first,
/// when room returns.
const PendingRecord = struct {
    type: abi.RecordType,
    flags: u8,
    lane: u16,
    session_id: u32,
    aux: u32,
    /// A close record's payload (see `pushClose`), owned by the pending list until delivered.
    info: ?*abi.ClientInfo = null,
};

/// One worker as this reactor sees it.
pub const Lane = struct {
    inbound: ring.Producer,
    outbound: ring.Consumer,
    /// The worker's doorbell (an eventfd it reads when parked).
    wake_fd: i32,
    /// The inbound ring was full; the worker clears `producer_waiting` and kicks when it frees.
    waiting_for_room: bool = false,
    shutdown_sent: bool = false,
    shutdown_acked: bool = false,
    stopped_sent: bool = false,
    /// While pending records are flushed: an earlier one for this lane found no room.
    blocked: bool = false,
    /// PROCESS mode, set by the master's JS thread: the worker exited; close its sessions that
    /// wait for its answer to their close.
    worker_exited: u32 = 0,
    /// PROCESS mode: sessions of records the dead worker had taken but not finished, noted by
    /// the master's JS thread (`workerExited`) and closed by this reactor's thread.
    orphans: orphans.Orphans = .{},
};

pub const DispatchMode = enum(u8) { round_robin = 1, fd_modulo = 2, idle_worker = 3, ip_hash = 4, uid = 5 };

/// PROCESS mode: what a reactor thread of the master works with, all in the tree's region.
pub const Attach = struct {
    /// The channel memory of each worker's lane.
    channels: []const []u8,
    wake_fds: []const i32,
    /// This reactor's session table slots.
    slots: []Session,
    stats: *abi.Stats,
    /// The worker table (the idle-worker dispatch reads statuses).
    workers: []abi.WorkerSlot,
    /// Sessions open across every reactor thread, against `max_connection`.
    connection_total: *u32,
    reactor_num: u32,
};

pub const Reactor = struct {
    allocator: std.mem.Allocator,
    config: abi.ServerConfig,
    /// BASE mode: the channel of the one lane, owned here.
    channel: ?shm.Channel,
    epoll_fd: i32,
    /// Written by workers (and `requestShutdown`) to wake the reactor from epoll_wait.
    kick_fd: i32,
    /// BASE mode: written by the reactor to wake the worker parked in `zg_server_wait`; owned
    /// here unless it is the worker's doorbell (`useDoorbell`). -1 in PROCESS mode (each lane
    /// has its worker's).
    wake_fd: i32,
    owns_wake_fd: bool = true,
    /// In a tree: the worker's doorbell, which its mailbox peers ring too; the inline reactor
    /// polls it so that `waitIo` returns for mail.
    doorbell_fd: i32 = -1,
    listeners: [listeners_max]Listener = undefined,
    listener_count: u32 = 0,
    /// PROCESS mode with several reactor threads: every reactor thread of the master (this
    /// one too, at its `reactor_id`), and the connections reactor 0 handed to this one.
    peers: []const *Reactor = &.{},
    handoff: Handoff = .{},
    /// Reactor 0: connections accepted so far (the next goes to `peers[accepted % len]`).
    accepted: u32 = 0,
    sessions: SessionTable,
    lanes: []Lane,
    dispatch_mode: DispatchMode = .fd_modulo,
    /// The server's settings: those of every listener without its own.
    defaults: Settings = .{},
    /// PROCESS mode, `max_queued_bytes` (0: off): sessions with this much handed to workers and
    /// not yet handled are held (not read) until the workers catch up.
    max_queued: u32 = 0,
    /// Slot indexes of held sessions (each at most once), looked at every `held_backoff_ms`:
    /// 1 ms, doubling up to 1024 while none is let go (Swoole's backoff). Capacity reserved.
    held: std.ArrayList(u32) = .empty,
    held_check_ns: i64 = 0,
    /// Sockets of sessions closed gracefully while their peer still sent: half closed, read
    /// until the peer's FIN (see linger.zig). Capacity: one per session slot, reserved at start.
    lingering: lingering_close.Lingering = .{},
    held_backoff_ms: u32 = 1,
    /// Heartbeat: every `heartbeat_interval_ns`, sessions that received nothing for
    /// `heartbeat_idle_ns` (and are not protected) are closed. 0: off.
    heartbeat_interval_ns: i64 = 0,
    heartbeat_idle_ns: i64 = 0,
    /// Monotonic time of the next heartbeat check.
    heartbeat_next_ns: i64 = 0,
    /// connect and close records go to workers (BASE; dispatch modes 2 and 4; or asked for).
    deliver_session_events: bool = true,
    /// The next lane of round-robin dispatch.
    next_lane: u32 = 0,
    attach: ?Attach = null,
    /// Sessions with unread input, in arrival order. Capacity reserved at init.
    ready: std.ArrayList(u32),
    ready_next: std.ArrayList(u32),
    /// Nothing on the ready list can move until a worker frees ring room (or a new session
    /// becomes ready): epoll may sleep.
    ready_blocked: bool = false,
    /// Connect and close records that found no room in their ring, delivered first, in order,
    /// when room returns. At most two per session: capacity reserved at init.
    pending: std.ArrayList(PendingRecord),
    thread: ?std.Thread = null,
    started: bool = false,
    /// Where the counters go: the worker's slot in the tree's region, or (null) the channel.
    stats_block: ?*abi.Stats = null,
    shutdown_requested: u32 = 0,
    phase: Phase = .running,
    /// Monotonic deadline of the current shutdown phase's wait for workers.
    phase_deadline_ns: i64 = 0,
    /// Monotonic time until which accepting is paused (after EMFILE and the like), or 0.
    accept_resume_ns: i64 = 0,
    accept_pause_logged_ns: i64 = std.math.minInt(i64) / 2,
    accept_pauses: u32 = 0,
    now_ns: i64 = 0,
    /// Inline mode: events `waitIo` collected for the next `poll`.
    stash: [events_max]linux.epoll_event = undefined,
    stash_len: u32 = 0,

    /// A BASE-mode reactor: one lane, over a channel of its own.
    pub fn init(allocator: std.mem.Allocator, config: abi.ServerConfig) !*Reactor {
        return create(allocator, config, null);
    }

    /// A PROCESS-mode reactor thread of the master: one lane per worker, in the region.
    pub fn initAttached(allocator: std.mem.Allocator, config: abi.ServerConfig, attach: Attach) !*Reactor {
        return create(allocator, config, attach);
    }

    fn create(allocator: std.mem.Allocator, config: abi.ServerConfig, attach: ?Attach) !*Reactor {
        const r = try allocator.create(Reactor);
        errdefer allocator.destroy(r);
        var channel: ?shm.Channel = null;
        if (attach == null) channel = try shm.Channel.create(config.ring_bytes);
        errdefer if (channel) |*ch| ch.destroy();
        var sessions = if (attach) |a|
            SessionTable.initIn(a.slots, SessionTable.roundBefore(config.start_session_id, a.reactor_num, config.reactor_id), a.reactor_num, config.reactor_id)
        else
            try SessionTable.initShared(allocator, config.max_connection, SessionTable.roundBefore(config.start_session_id, @max(1, config.session_stride), config.reactor_id % @max(1, config.session_stride)), @max(1, config.session_stride), config.reactor_id % @max(1, config.session_stride));
        errdefer sessions.deinit(allocator);
        var ready = try std.ArrayList(u32).initCapacity(allocator, sessions.slots.len);
        errdefer ready.deinit(allocator);
        var ready_next = try std.ArrayList(u32).initCapacity(allocator, sessions.slots.len);
        errdefer ready_next.deinit(allocator);
        var pending = try std.ArrayList(PendingRecord).initCapacity(allocator, 2 * sessions.slots.len);
        errdefer pending.deinit(allocator);
        const lane_count = if (attach) |a| a.channels.len else 1;
        const lanes = try allocator.alloc(Lane, lane_count);
        errdefer allocator.free(lanes);
        const epoll_fd = try posix.epoll_create1(linux.EPOLL.CLOEXEC);
        errdefer posix.close(epoll_fd);
        const kick_fd = try posix.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK);
        errdefer posix.close(kick_fd);
        const wake_fd = if (attach == null) try posix.eventfd(0, linux.EFD.CLOEXEC) else -1;
        errdefer if (wake_fd >= 0) posix.close(wake_fd);
        var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = tag_kick } };
        try posix.epoll_ctl(epoll_fd, linux.EPOLL.CTL_ADD, kick_fd, &event);
        for (lanes, 0..) |*lane, i| {
            const memory = if (attach) |a| a.channels[i] else channel.?.memory;
            const header = shm.Channel.headerOf(memory);
            lane.* = .{
                .inbound = ring.Producer.init(&header.in_ctl, shm.Channel.inDataOf(memory)),
                .outbound = ring.Consumer.init(&header.out_ctl, shm.Channel.outDataOf(memory)),
                .wake_fd = if (attach) |a| a.wake_fds[i] else wake_fd,
            };
        }
        var dispatch_mode: DispatchMode = .fd_modulo;
        var deliver_session_events = true;
        if (attach != null) {
            dispatch_mode = std.meta.intToEnum(DispatchMode, config.dispatch & 0xff) catch return error.InvalidArgument;
            // Swoole's rule: only the modes that keep a connection on one worker deliver its
            // connect and close, unless the user accepts them out of order.
            deliver_session_events = dispatch_mode == .fd_modulo or dispatch_mode == .ip_hash or
                config.dispatch & abi.dispatch_unsafe_event != 0;
        }
        r.* = .{
            .allocator = allocator,
            .config = config,
            .channel = channel,
            .epoll_fd = epoll_fd,
            .kick_fd = kick_fd,
            .wake_fd = wake_fd,
            .sessions = sessions,
            .lanes = lanes,
            .dispatch_mode = dispatch_mode,
            .deliver_session_events = deliver_session_events,
            .attach = attach,
            .ready = ready,
            .ready_next = ready_next,
            .pending = pending,
            .stats_block = if (attach) |a| a.stats else null,
        };
        return r;
    }

    /// Joins the thread (if it ran) and frees everything. Sessions still open are closed.
    pub fn deinit(r: *Reactor) void {
        if (r.thread) |t| t.join();
        for (r.sessions.slots) |*s| {
            if (s.isLive()) {
                posix.close(s.fd);
                if (r.attach) |a| _ = @atomicRmw(u32, a.connection_total, .Sub, 1, .monotonic);
                r.sessions.release(r.allocator, s);
            }
        }
        for (r.listeners[0..r.listener_count]) |l| {
            if (l.fd >= 0) posix.close(l.fd);
        }
        r.sessions.deinit(r.allocator);
        r.ready.deinit(r.allocator);
        r.ready_next.deinit(r.allocator);
        r.held.deinit(r.allocator);
        r.lingering.deinit(r.allocator);
        r.handoff.deinit(r.allocator);
        for (r.pending.items) |p| if (p.info) |info| r.allocator.destroy(info);
        r.pending.deinit(r.allocator);
        r.allocator.free(r.lanes);
        posix.close(r.epoll_fd);
        posix.close(r.kick_fd);
        if (r.wake_fd >= 0 and r.owns_wake_fd) posix.close(r.wake_fd);
        if (r.channel) |*ch| ch.destroy();
        const allocator = r.allocator;
        allocator.destroy(r);
    }

    pub fn addListener(r: *Reactor, listener_in: Listener) !void {
        if (r.listener_count == listeners_max) return error.LimitReached;
        const index = r.listener_count;
        var listener = listener_in;
        var kind: c_int = 0;
        var kind_len: posix.socklen_t = @sizeOf(c_int);
        if (c.getsockopt(listener.fd, linux.SOL.SOCKET, linux.SO.TYPE, @ptrCast(&kind), &kind_len) == 0) {
            listener.datagram = kind == linux.SOCK.DGRAM;
        }
        var domain: c_int = 0;
        var domain_len: posix.socklen_t = @sizeOf(c_int);
        if (c.getsockopt(listener.fd, linux.SOL.SOCKET, linux.SO.DOMAIN, @ptrCast(&domain), &domain_len) == 0) {
            listener.unix = domain == linux.AF.UNIX;
        }
        if (listener.datagram) listener.accepts = true;
        if (listener.accepts) {
            const exclusive: u32 = if (listener.shared) linux.EPOLL.EXCLUSIVE else 0;
            var event: linux.epoll_event = .{ .events = linux.EPOLL.IN | linux.EPOLL.ET | exclusive, .data = .{ .u64 = tag_listener | index } };
            try posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_ADD, listener.fd, &event);
        }
        r.listeners[index] = listener;
        r.listeners[index].pending = listener.accepts;
        r.listener_count += 1;
    }

    /// BASE mode in a tree, before start: wake the worker through its doorbell.
    pub fn useDoorbell(r: *Reactor, fd: i32) void {
        assert(!r.started and r.attach == null);
        if (r.owns_wake_fd) posix.close(r.wake_fd);
        r.wake_fd = fd;
        r.owns_wake_fd = false;
        r.lanes[0].wake_fd = fd;
        r.doorbell_fd = fd;
    }

    pub fn start(r: *Reactor, inline_mode: bool) !void {
        assert(!r.started);
        if (inline_mode and r.doorbell_fd >= 0) {
            var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = tag_doorbell } };
            try posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_ADD, r.doorbell_fd, &event);
        }
        try r.lingering.init(r.allocator, r.sessions.slots.len);
        r.started = true;
        r.stats().start_time = @intCast(std.time.timestamp());
        if (inline_mode) return;
        r.thread = try std.Thread.spawn(.{ .stack_size = 256 * 1024 }, run, .{r});
        var name_buffer: [16]u8 = undefined;
        const name = std.fmt.bufPrint(&name_buffer, "zg-reactor-{d}", .{r.config.reactor_id}) catch unreachable;
        r.thread.?.setName(name) catch {};
    }

    /// Called from the JS thread: stop accepting and reading, deliver `shutdown`.
    pub fn requestShutdown(r: *Reactor) void {
        @atomicStore(u32, &r.shutdown_requested, 1, .seq_cst);
        kick(r.kick_fd);
    }

    fn stats(r: *Reactor) *abi.Stats {
        return r.stats_block orelse &r.channel.?.header.stats;
    }

    fn count(r: *Reactor, comptime field: []const u8, delta: u64) void {
        _ = @atomicRmw(u64, &@field(r.stats(), field), .Add, delta, .monotonic);
    }

    fn uncount(r: *Reactor, comptime field: []const u8, delta: u64) void {
        _ = @atomicRmw(u64, &@field(r.stats(), field), .Sub, delta, .monotonic);
    }

    /// Counts server-wide and for listener `listener`'s port. This reactor is the port
    /// counters' only writer, so they take a plain atomic store.
    fn tally(r: *Reactor, listener: u16, comptime field: []const u8, delta: u64) void {
        r.count(field, delta);
        const p = &@field(r.stats().ports[listener], field);
        @atomicStore(u64, p, @atomicLoad(u64, p, .monotonic) +% delta, .monotonic);
    }

    fn untally(r: *Reactor, listener: u16, comptime field: []const u8, delta: u64) void {
        r.uncount(field, delta);
        const p = &@field(r.stats().ports[listener], field);
        @atomicStore(u64, p, @atomicLoad(u64, p, .monotonic) -% delta, .monotonic);
    }

    /// The reactor thread: work, then sleep in epoll_wait until a socket, the worker's kick
    /// or a timeout wakes it.
    fn run(r: *Reactor) void {
        while (true) {
            r.work();
            if (r.phase == .stopped) break;
            var timeout = r.sleepMs(-1);
            if (timeout != 0 and !r.prepareParking()) timeout = 0;
            r.gather(timeout);
            r.unpark();
        }
    }

    /// Inline mode, one turn on the JS thread: take what epoll has (or what `waitIo` stashed),
    /// then work. Never blocks. Returns `poll_*` flags.
    pub fn poll(r: *Reactor) u32 {
        assert(r.thread == null);
        if (r.stash_len > 0) {
            for (r.stash[0..r.stash_len]) |event| r.onEvent(event);
            r.stash_len = 0;
        }
        r.gather(0);
        r.work();
        var flags: u32 = 0;
        if (r.hasWork()) flags |= poll_more;
        return flags;
    }

    /// Inline mode, parked: sleep in epoll_wait (on a thread of Deno's blocking pool) and stash
    /// the events for the next `poll` on the JS thread. Only epoll_wait runs here; the JS
    /// thread touches nothing else of the reactor until this returns.
    pub fn waitIo(r: *Reactor) void {
        assert(r.stash_len == 0);
        const timeout_ms = r.sleepMs(-1);
        if (timeout_ms == 0 or !r.prepareParking()) return;
        const rc = c.epoll_wait(r.epoll_fd, &r.stash, events_max, timeout_ms);
        r.unpark();
        r.stash_len = if (rc > 0) @intCast(rc) else 0;
    }

    /// Announces on every outbound ring that this reactor is about to sleep; false (and no
    /// announcement left) when one of them has records already.
    fn prepareParking(r: *Reactor) bool {
        for (r.lanes) |*lane| {
            if (!lane.outbound.prepareParking()) {
                r.unpark();
                return false;
            }
        }
        return true;
    }

    fn unpark(r: *Reactor) void {
        for (r.lanes) |*lane| lane.outbound.unpark();
    }

    fn gather(r: *Reactor, timeout: i32) void {
        var events: [events_max]linux.epoll_event = undefined;
        const rc = c.epoll_wait(r.epoll_fd, &events, events_max, timeout);
        if (rc < 0) {
            assert(posix.errno(rc) == .INTR);
            return;
        }
        for (events[0..@intCast(rc)]) |event| r.onEvent(event);
    }

    /// Everything but waiting: write what the workers queued, accept, read, advance shutdown,
    /// publish.
    fn work(r: *Reactor) void {
        r.now_ns = nowNs();
        r.consumeOutbound();
        if (r.phase == .running and @atomicLoad(u32, &r.shutdown_requested, .acquire) == 1) r.beginShutdown();
        r.flushPending();
        r.closeOrphans();
        r.heartbeat();
        r.releaseHeld();
        if (r.lingering.next_ns != 0) r.lingering.sweep(monoNs());
        r.takeHandedOver();
        switch (r.phase) {
            .running => {
                r.acceptPending();
                r.readReady();
            },
            .draining => {
                var acked = true;
                for (r.lanes, 0..) |*lane, i| {
                    // `shutdown` goes after the lane's queued connect and close records.
                    if (!lane.shutdown_sent and !r.lanePending(@intCast(i))) {
                        lane.shutdown_sent = lane.inbound.push(.shutdown, 0, r.reactorId(), 0, 0, "");
                        if (!lane.shutdown_sent) _ = r.noRoom(lane, 0);
                    }
                    acked = acked and (lane.shutdown_acked or r.workerGone(@intCast(i)));
                }
                // A worker that died (PROCESS mode) never answers: wait no longer than
                // max_wait_time for it.
                if (acked or r.gaveUpWaiting()) {
                    if (!acked) log.warn("shutdown: a worker did not answer within max_wait_time; going on without it", .{});
                    r.phase = .flushing;
                    r.phase_deadline_ns = monoNs() + @as(i64, r.config.max_wait_time_ms) * std.time.ns_per_ms;
                }
            },
            .flushing, .closing, .stopped => {},
        }
        if (r.phase == .flushing and r.flushDone()) r.closeAll();
        if (r.phase == .closing) r.sendStopped();
        r.publish();
    }

    /// `stopped` goes last to every lane, after its close records; without room, the worker's
    /// kick brings us back here (or, for a worker that is gone, max_wait_time runs out).
    fn sendStopped(r: *Reactor) void {
        var done = true;
        for (r.lanes, 0..) |*lane, i| {
            if (lane.stopped_sent) continue;
            if (!r.lanePending(@intCast(i)) and lane.inbound.push(.stopped, 0, r.reactorId(), 0, 0, "")) {
                // (Also for a worker that is gone: one spawned just before the shutdown may not
                // have attached yet, and reads `shutdown` and `stopped` when it does. Without
                // room, it waits for that successor to make some, up to max_wait_time.)
                lane.stopped_sent = true;
            } else {
                _ = r.noRoom(lane, 0);
                done = false;
            }
        }
        if (!done and r.gaveUpWaiting()) {
            log.warn("shutdown: a worker took no records within max_wait_time; stopping without it", .{});
            done = true;
        }
        if (done) r.phase = .stopped;
    }

    /// PROCESS mode: a worker may be dead (its successor not yet spawned), so shutdown waits
    /// for workers no longer than max_wait_time. A BASE worker is this very process: it always
    /// answers.
    fn gaveUpWaiting(r: *const Reactor) bool {
        return r.attach != null and monoNs() >= r.phase_deadline_ns;
    }

    /// PROCESS mode, from the master's JS thread once worker `lane` is gone and before its
    /// successor is spawned (so nobody else consumes its inbound ring): the record it had in
    /// hand is let go of and its session noted for this reactor's thread to close
    /// (orphans.zig).
    pub fn workerExited(r: *Reactor, lane_index: u16) void {
        const lane = &r.lanes[lane_index];
        lane.orphans.takeOver(&lane.inbound);
        @atomicStore(u32, &lane.worker_exited, 1, .release);
        kick(r.kick_fd);
    }

    /// Sessions past the peer's EOF wait for their worker's answer to the close before the
    /// socket closes. A worker that died may have taken the close record with it: close those
    /// sessions here rather than hold them (and a `max_connection` place) forever.
    ///
    /// With `max_queued_bytes`, the dead worker's unhandled bytes will never be subtracted: every
    /// session's count starts again from 0 (in the round-robin modes any worker may hold some of
    /// any session's bytes), so none stays held for good. The successor's subtractions for what
    /// is left in the ring take counts below 0 for a while, which only lets those sessions read
    /// a little more.
    ///
    /// The sessions of the records the dead worker had in hand (see `workerExited`) close
    /// gracefully: what it sent before is written first (its last sends are consumed here
    /// first), then FIN, and the close event goes where close events go.
    fn closeOrphans(r: *Reactor) void {
        for (r.lanes, 0..) |*lane, i| {
            if (@atomicLoad(u32, &lane.worker_exited, .acquire) == 0) continue;
            @atomicStore(u32, &lane.worker_exited, 0, .release);
            r.consumeOutbound();
            var ids: [4]u32 = undefined;
            for (lane.orphans.take(&ids)) |id| {
                const s = r.sessions.get(id) orelse continue;
                if (s.state != .open) continue;
                log.warn("session {d}: worker {d} died while handling it; closing it", .{ id, i });
                r.closeRequested(id, 0);
            }
            for (r.sessions.slots) |*s| {
                if (s.state == .peer_closed and s.close_notified and r.closeLane(s) == i) {
                    r.closeSession(s, abi.close_flag_server, 0, false);
                }
                if (r.max_queued > 0 and s.state != .free) @atomicStore(i64, &s.recv_queued, 0, .monotonic);
            }
            if (r.held.items.len > 0) r.held_check_ns = 0;
        }
    }

    /// PROCESS mode: the lane's worker is not running (not started yet, or gone: the master
    /// clears the pid of a worker that exited; one that drains is exited with its pid).
    fn workerGone(r: *const Reactor, lane: u16) bool {
        const a = r.attach orelse return false;
        const status = @atomicLoad(u32, &a.workers[lane].status, .monotonic);
        return status == 0 or @atomicLoad(i32, &a.workers[lane].pid, .monotonic) == 0;
    }

    fn lanePending(r: *const Reactor, lane: u16) bool {
        for (r.pending.items) |p| if (p.lane == lane) return true;
        return false;
    }

    fn reactorId(r: *const Reactor) i16 {
        return @intCast(r.config.reactor_id);
    }

    /// Work that needs no event to go on: epoll must not block while there is some.
    fn hasWork(r: *Reactor) bool {
        for (r.pending.items) |p| if (!r.lanes[p.lane].waiting_for_room) return true;
        switch (r.phase) {
            .running => {
                if (r.ready.items.len > 0 and !r.ready_blocked) return true;
                for (r.listeners[0..r.listener_count]) |l| if (l.pending and l.fd >= 0) return true;
                return false;
            },
            .draining => {
                for (r.lanes) |*lane| if (!lane.shutdown_sent and !lane.waiting_for_room) return true;
                return false;
            },
            .closing => {
                for (r.lanes) |*lane| if (!lane.stopped_sent and !lane.waiting_for_room) return true;
                return false;
            },
            .flushing, .stopped => return false,
        }
    }

    /// How long epoll may sleep: 0 with work at hand, else until the next timed duty (accept
    /// pause, shutdown flush), else `idle_ms`.
    pub fn sleepMs(r: *Reactor, idle_ms: i32) i32 {
        // First: an accept pause that ended makes the listeners pending, which is work.
        const pause = r.acceptPauseLeftMs();
        if (r.hasWork()) return 0;
        var timeout = idle_ms;
        if (pause >= 0 and (timeout < 0 or pause < timeout)) timeout = pause;
        if ((r.phase == .flushing or r.phase == .draining or r.phase == .closing) and (timeout < 0 or timeout > 10)) timeout = 10;
        if (r.heartbeat_interval_ns > 0 and r.phase == .running) {
            const left: i32 = @intCast(@max(0, @divFloor(r.heartbeat_next_ns - monoNs(), std.time.ns_per_ms) + 1));
            if (timeout < 0 or left < timeout) timeout = left;
        }
        if (r.held.items.len > 0) {
            const left: i32 = @intCast(@max(0, @divFloor(r.held_check_ns - monoNs(), std.time.ns_per_ms) + 1));
            if (timeout < 0 or left < timeout) timeout = left;
        }
        if (r.lingering.next_ns != 0) {
            const left: i32 = @intCast(@max(0, @divFloor(r.lingering.next_ns - monoNs(), std.time.ns_per_ms) + 1));
            if (timeout < 0 or left < timeout) timeout = left;
        }
        return timeout;
    }

    fn onEvent(r: *Reactor, event: linux.epoll_event) void {
        const tag = event.data.u64 & ~@as(u64, 0xffff_ffff);
        const low: u32 = @truncate(event.data.u64);
        switch (tag) {
            tag_kick => {
                var value: u64 = 0;
                _ = c.read(r.kick_fd, @ptrCast(&value), 8);
                for (r.lanes) |*lane| lane.waiting_for_room = false;
                r.ready_blocked = false;
            },
            tag_listener => r.listeners[low].pending = true,
            // Mail for the worker: reset the doorbell; the worker drains its mailboxes after
            // every poll.
            tag_doorbell => {
                var value: u64 = 0;
                _ = c.read(r.doorbell_fd, @ptrCast(&value), 8);
            },
            tag_linger => r.lingering.onReadable(@intCast(low)),
            tag_session => {
                const s = r.sessions.get(low) orelse return;
                if (event.events & linux.EPOLL.OUT != 0) r.flushSession(s);
                // A short read normally means the socket is drained, and edge-triggered epoll
                // signals new data. But an EOF that arrived with the last bytes signals nothing
                // more: RDHUP says it is there, so read on to it.
                if (event.events & (linux.EPOLL.RDHUP | linux.EPOLL.HUP | linux.EPOLL.ERR) != 0) s.peer_hup = true;
                const readable = linux.EPOLL.IN | linux.EPOLL.RDHUP | linux.EPOLL.HUP | linux.EPOLL.ERR;
                if (event.events & readable != 0 and s.state == .open) r.markReady(s);
            },
            else => unreachable,
        }
    }

    /// Publishes inbound records and rings the doorbell of each worker that parked.
    fn publish(r: *Reactor) void {
        for (r.lanes) |*lane| {
            if (lane.inbound.publish()) kick(lane.wake_fd);
        }
    }

    /// The lane's ring has no room for a record of `payload_max` bytes: publish, and ask the
    /// worker to kick when it frees room. False when room appeared meanwhile (then nothing was
    /// asked, and the caller retries): the flag a worker clears stands for the latest wait only.
    fn noRoom(r: *Reactor, lane: *Lane, payload_max: u32) bool {
        _ = r;
        if (lane.inbound.publish()) kick(lane.wake_fd);
        lane.waiting_for_room = lane.inbound.prepareWait(payload_max);
        return lane.waiting_for_room;
    }

    // --- accept -------------------------------------------------------------------------

    fn acceptPending(r: *Reactor) void {
        for (r.listeners[0..r.listener_count], 0..) |*l, index| {
            if (!l.pending or l.fd < 0) continue;
            if (l.datagram) {
                r.readPackets(l, @intCast(index));
                continue;
            }
            var accepted: u32 = 0;
            while (accepted < accepts_per_turn) : (accepted += 1) {
                var address: posix.sockaddr.storage = undefined;
                var address_len: posix.socklen_t = @sizeOf(posix.sockaddr.storage);
                const fd = c.accept4(l.fd, @ptrCast(&address), &address_len, linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC);
                if (fd < 0) {
                    switch (posix.errno(fd)) {
                        .AGAIN => l.pending = false,
                        .INTR, .CONNABORTED => continue,
                        // Out of fds or memory: leave connections in the backlog and stop
                        // accepting for a while rather than spin on the error (Swoole pauses
                        // accept for a second too).
                        .MFILE, .NFILE, .NOBUFS, .NOMEM => |e| r.pauseAccept(e),
                        else => |e| log.err("accept failed: {s}", .{@tagName(e)}),
                    }
                    return;
                }
                if (r.peers.len > 1) {
                    const to = r.peers[r.accepted % r.peers.len];
                    r.accepted +%= 1;
                    if (to != r) {
                        r.handOver(to, .{ .fd = fd, .listener = @intCast(index), .address = address });
                        continue;
                    }
                }
                r.addSession(fd, @intCast(index), l.*, @ptrCast(&address));
            }
        }
    }

    /// Reactor 0 (`r`, on its thread): a connection for reactor thread `to` (handoff.zig).
    /// The counters are the acceptor's to write.
    fn handOver(r: *Reactor, to: *Reactor, item: Accepted) void {
        if (!to.handoff.push(to.allocator, item)) {
            log.warn("connection refused: reactor thread {d} has {d} connections waiting for it", .{ to.config.reactor_id, Handoff.capacity });
            r.tally(item.listener, "refused_count", 1);
            posix.close(item.fd);
            return;
        }
        kick(to.kick_fd);
    }

    /// The connections reactor 0 handed to this thread, in the order it accepted them; once
    /// shutting down, they are closed unserved (as the kernel's backlog is).
    fn takeHandedOver(r: *Reactor) void {
        if (r.peers.len < 2) return;
        for (r.handoff.take()) |item| {
            if (r.phase != .running) {
                posix.close(item.fd);
                continue;
            }
            r.addSession(item.fd, item.listener, r.listeners[item.listener], @ptrCast(&item.address));
        }
    }

    /// UDP: each datagram becomes a `packet` record (the peer's address, then the bytes), for
    /// the worker the dispatch mode picks (by client address in mode 4). With no room in the
    /// ring, datagrams wait in the socket's buffer (and past it the kernel drops them, as UDP
    /// does).
    fn readPackets(r: *Reactor, l: *Listener, index: u16) void {
        // A Unix socket's peers have paths: room for the longest one.
        const header: u32 = if (l.unix) abi.PacketAddress.max_size else @sizeOf(abi.PacketAddress);
        var n_read: u32 = 0;
        while (n_read < accepts_per_turn) : (n_read += 1) {
            const lane = r.packetLane() orelse return;
            // A UDP datagram fits 64 KiB; a Unix one may be as large as its sender's buffer.
            const chunk: u32 = if (l.unix) @min(unix_datagram_max, lane.inbound.maxPayload() - header) else read_chunk;
            const room = lane.inbound.reserve(header + chunk) orelse {
                if (r.noRoom(lane, header + chunk)) return;
                continue;
            };
            var from: posix.sockaddr.storage = undefined;
            // An unnamed Unix sender leaves the address untouched (length 0).
            from.family = if (l.unix) posix.AF.UNIX else posix.AF.UNSPEC;
            var from_len: posix.socklen_t = @sizeOf(posix.sockaddr.storage);
            const got = rawResult(linux.recvfrom(l.fd, room.ptr + header, chunk, linux.MSG.TRUNC, @ptrCast(&from), &from_len));
            if (got < 0) {
                switch (rawErrno(got)) {
                    .AGAIN => l.pending = false,
                    .INTR => continue,
                    else => |e| log.err("recvfrom failed: {s}", .{@tagName(e)}),
                }
                return;
            }
            if (got > chunk) {
                // (MSG_TRUNC: the datagram's real length.) Cut short it would be another message.
                log.warn("a datagram of {d} bytes on port {d} is larger than a record ({d} bytes); dropped", .{ got, index, chunk });
                r.tally(index, "protocol_error_count", 1);
                continue;
            }
            var packet_address = packetAddress(&from, from_len);
            packet_address.size = header;
            @memcpy(room[0..8], std.mem.asBytes(&packet_address)[0..8]);
            if (packet_address.family == 1) {
                const un: *const linux.sockaddr.un = @ptrCast(@alignCast(&from));
                @memcpy(room[8..][0..packet_address.port], un.path[0..packet_address.port]);
            } else {
                @memcpy(room[8..24], &packet_address.addr);
            }
            const n: u32 = @intCast(got);
            lane.inbound.commit(.packet, 0, r.reactorId(), 0, index, header + n);
            r.tally(index, "total_recv_bytes", n);
            r.tally(index, "dispatch_count", 1);
        }
    }

    /// Where a datagram came from, as `packet` records carry it. (`std.net.Address.initPosix`
    /// does not take Unix addresses.)
    fn packetAddress(from: *const posix.sockaddr.storage, from_len: posix.socklen_t) abi.PacketAddress {
        var out: abi.PacketAddress = .{ .family = 0, .port = 0, .addr = @splat(0) };
        switch (from.family) {
            posix.AF.INET => {
                const in: *const posix.sockaddr.in = @ptrCast(@alignCast(from));
                out.family = 4;
                out.port = std.mem.bigToNative(u16, in.port);
                @memcpy(out.addr[0..4], std.mem.asBytes(&in.addr));
            },
            posix.AF.INET6 => {
                const in6: *const posix.sockaddr.in6 = @ptrCast(@alignCast(from));
                out.family = 6;
                out.port = std.mem.bigToNative(u16, in6.port);
                out.addr = in6.addr;
            },
            posix.AF.UNIX => {
                // An unnamed peer has only the family; a path may end in its NUL.
                const un: *const linux.sockaddr.un = @ptrCast(@alignCast(from));
                const given = @min(un.path.len, @as(usize, from_len) -| @sizeOf(posix.sa_family_t));
                var len: usize = given;
                if (len > 0 and un.path[0] != 0) len = std.mem.indexOfScalar(u8, un.path[0..given], 0) orelse given;
                out.family = 1;
                out.port = @intCast(len);
                out.size = abi.PacketAddress.unixSize(len);
            },
            else => {},
        }
        return out;
    }

    /// The worker for the next datagram: round-robin over those with room (BASE: the one).
    fn packetLane(r: *Reactor) ?*Lane {
        if (r.lanes.len == 1) return if (r.lanes[0].waiting_for_room) null else &r.lanes[0];
        return r.nextLaneWithRoom();
    }

    /// `sendto`: one datagram from listener `index` to the address the payload starts with.
    fn sendDatagram(r: *Reactor, index: u32, payload: []const u8) void {
        if (index >= r.listener_count or payload.len < 8) return r.count("send_dropped_count", 1);
        const l = &r.listeners[index];
        var packet_address: abi.PacketAddress = .{ .family = 0, .port = 0, .addr = @splat(0) };
        @memcpy(std.mem.asBytes(&packet_address)[0..8], payload[0..8]);
        const header = packet_address.size;
        var unix_len: posix.socklen_t = 0;
        if (header < 8 or header > payload.len or header > abi.PacketAddress.max_size) return r.count("send_dropped_count", 1);
        const address: std.net.Address = switch (packet_address.family) {
            4, 6 => blk: {
                if (header != @sizeOf(abi.PacketAddress)) return r.count("send_dropped_count", 1);
                @memcpy(&packet_address.addr, payload[8..24]);
                break :blk if (packet_address.family == 4)
                    std.net.Address.initIp4(packet_address.addr[0..4].*, packet_address.port)
                else
                    std.net.Address.initIp6(packet_address.addr, packet_address.port, 0, 0);
            },
            1 => blk: {
                const len = packet_address.port;
                if (len == 0 or len > 107 or header < abi.PacketAddress.unixSize(len)) return r.count("send_dropped_count", 1);
                var un: std.net.Address = .{ .un = .{ .family = posix.AF.UNIX, .path = @splat(0) } };
                @memcpy(un.un.path[0..len], payload[8..][0..len]);
                unix_len = @intCast(@offsetOf(linux.sockaddr.un, "path") + len);
                break :blk un;
            },
            else => return r.count("send_dropped_count", 1),
        };
        const data = payload[header..];
        // A path's exact length: an abstract name (a leading NUL) is looked up with every byte
        // of the length given, padding included.
        const address_len = if (unix_len > 0) unix_len else address.getOsSockLen();
        const rc = rawResult(linux.sendto(l.fd, data.ptr, data.len, linux.MSG.DONTWAIT | linux.MSG.NOSIGNAL, &address.any, address_len));
        if (rc < 0) return r.count("send_dropped_count", 1);
        r.tally(@intCast(index), "total_send_bytes", data.len);
    }

    fn pauseAccept(r: *Reactor, e: posix.E) void {
        const now = monoNs();
        r.accept_pauses += 1;
        // Closing sessions end pauses early, so pauses can come in quick succession: log at
        // most one line a second, with how many pauses it stands for.
        if (now - r.accept_pause_logged_ns >= std.time.ns_per_s) {
            log.warn("accept paused for {d} ms: {s} ({d} sessions open, {d} pauses since the last report)", .{ accept_pause_ms, @tagName(e), r.sessions.count, r.accept_pauses });
            r.accept_pause_logged_ns = now;
            r.accept_pauses = 0;
        }
        for (r.listeners[0..r.listener_count]) |*l| l.pending = false;
        r.accept_resume_ns = now + accept_pause_ms * std.time.ns_per_ms;
    }

    /// Ends an accept pause whose time has come; returns the milliseconds left otherwise
    /// (-1 when accept is not paused).
    fn acceptPauseLeftMs(r: *Reactor) i32 {
        if (r.accept_resume_ns == 0) return -1;
        const now = monoNs();
        if (now >= r.accept_resume_ns) {
            r.resumeAccept();
            return -1;
        }
        return @intCast(@divFloor(r.accept_resume_ns - now, std.time.ns_per_ms) + 1);
    }

    fn resumeAccept(r: *Reactor) void {
        r.accept_resume_ns = 0;
        for (r.listeners[0..r.listener_count]) |*l| l.pending = l.fd >= 0;
    }

    fn addSession(r: *Reactor, fd: i32, listener_index: u16, l: Listener, address: *const posix.sockaddr) void {
        // PROCESS mode: max_connection counts every reactor thread's sessions; take a place
        // first, so that two threads cannot both take the last one.
        const over_total = if (r.attach) |a|
            @atomicRmw(u32, a.connection_total, .Add, 1, .monotonic) >= r.config.max_connection
        else
            false;
        const s = (if (over_total) null else r.sessions.reserve()) orelse {
            if (r.attach) |a| _ = @atomicRmw(u32, a.connection_total, .Sub, 1, .monotonic);
            r.tally(listener_index, "refused_count", 1);
            log.warn("connection refused: max_connection ({d}) sessions are open", .{r.config.max_connection});
            posix.close(fd);
            return;
        };
        // Before anything can fail: a successor of this worker starts its ids after this one.
        @atomicStore(u64, &r.stats().session_round, s.id, .monotonic);
        s.fd = fd;
        s.listener = listener_index;
        s.server_fd = l.fd;
        s.server_port = l.port;
        s.remote = remoteAddress(address);
        s.connect_time_ns = r.now_ns;
        s.lane = r.homeLane(s);
        const settings = r.settingsOf(listener_index);
        s.paused = settings.delay_receive;
        // Every field is in place: other processes may look it up from now on.
        r.sessions.open(s);
        if (l.tcp_nodelay) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.NODELAY, 1);
        const sc = &settings.socket;
        if (sc.keepalive != 0) {
            setIntOption(fd, linux.SOL.SOCKET, linux.SO.KEEPALIVE, 1);
            if (sc.keep_idle > 0) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.KEEPIDLE, @intCast(sc.keep_idle));
            if (sc.keep_interval > 0) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.KEEPINTVL, @intCast(sc.keep_interval));
            if (sc.keep_count > 0) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.KEEPCNT, @intCast(sc.keep_count));
        }
        if (sc.user_timeout_ms > 0) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.USER_TIMEOUT, @intCast(sc.user_timeout_ms));
        if (sc.recv_buffer > 0) setIntOption(fd, linux.SOL.SOCKET, linux.SO.RCVBUF, @intCast(sc.recv_buffer));
        if (sc.send_buffer > 0) setIntOption(fd, linux.SOL.SOCKET, linux.SO.SNDBUF, @intCast(sc.send_buffer));
        var event: linux.epoll_event = .{ .events = session_events, .data = .{ .u64 = tag_session | s.id } };
        posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_ADD, fd, &event) catch |err| {
            log.err("session {d}: epoll_ctl failed: {s}", .{ s.id, @errorName(err) });
            posix.close(fd);
            r.sessions.release(r.allocator, s);
            if (r.attach) |a| _ = @atomicRmw(u32, a.connection_total, .Sub, 1, .monotonic);
            return;
        };
        r.tally(listener_index, "accept_count", 1);
        r.tally(listener_index, "connection_num", 1);
        if (r.deliver_session_events) {
            // Nothing of the session is read before its connect record is in the ring.
            s.connect_pending = !r.pushOrQueue(.connect, 0, s.lane, s.id, listener_index);
        }
        // Data may have arrived with the connection.
        r.markReady(s);
    }

    // --- dispatch -----------------------------------------------------------------------

    /// The lane a session's connect and close (and in the sticky modes its data) go to.
    fn homeLane(r: *Reactor, s: *const Session) u16 {
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
    fn receiveLane(r: *Reactor, s: *const Session) ?*Lane {
        const n: u32 = @intCast(r.lanes.len);
        const lane: *Lane = switch (r.dispatch_mode) {
            .fd_modulo, .ip_hash => &r.lanes[s.lane],
            .uid => blk: {
                const uid = @atomicLoad(u32, &s.uid, .acquire);
                break :blk &r.lanes[if (uid != 0) uid % n else s.lane];
            },
            .round_robin, .idle_worker => if (r.protocolOf(s) == .worker)
                &r.lanes[s.lane]
            else if (r.dispatch_mode == .round_robin)
                return r.nextLaneWithRoom()
            else
                return r.idleWorkerLane(),
        };
        return if (lane.waiting_for_room) null else lane;
    }

    fn nextLaneWithRoom(r: *Reactor) ?*Lane {
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
    /// the last pick; null when every lane waits for room.
    fn idleWorkerLane(r: *Reactor) ?*Lane {
        const a = r.attach orelse return r.nextLaneWithRoom();
        const n: u32 = @intCast(r.lanes.len);
        var best: ?u32 = null;
        var best_key: u64 = std.math.maxInt(u64);
        for (0..n) |k| {
            const i = (r.next_lane +% @as(u32, @intCast(k))) % n;
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
        r.next_lane = i +% 1;
        return &r.lanes[i];
    }

    /// Pushes a connect or close record, or queues it behind the lane's earlier ones; true when
    /// it went into the ring.
    fn pushOrQueue(r: *Reactor, record_type: abi.RecordType, flags: u8, lane_index: u16, session_id: u32, aux: u32) bool {
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
    fn pushClose(r: *Reactor, s: *Session, flags: u8, errno: u32) void {
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
    fn countQueued(r: *Reactor, s: *Session, n: u32) bool {
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
    fn releaseHeld(r: *Reactor) void {
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

    fn markReady(r: *Reactor, s: *Session) void {
        r.ready_blocked = false;
        if (s.on_ready_list) return;
        s.on_ready_list = true;
        r.ready.appendAssumeCapacity(@intCast(r.sessions.slotIndex(s.id)));
    }

    // --- read ---------------------------------------------------------------------------

    /// The ready list holds slot indexes, each at most once (`on_ready_list` belongs to the
    /// slot): a session that closed while listed leaves its slot's entry to whichever session
    /// takes the slot next, so the list never outgrows `max_connection`.
    fn readReady(r: *Reactor) void {
        assert(r.ready_next.items.len == 0);
        var blocked = true;
        var index: usize = 0;
        while (index < r.ready.items.len) : (index += 1) {
            const slot = r.ready.items[index];
            const s = &r.sessions.slots[slot];
            assert(s.on_ready_list);
            if (s.state != .open) {
                // Closed, closing or past EOF since it was listed: nothing more to read.
                s.on_ready_list = false;
                blocked = false;
                continue;
            }
            if (s.paused or s.queue_held) {
                // Not read until resumed or let go (which lists it again).
                s.on_ready_list = false;
                continue;
            }
            const outcome: ReadOutcome = if (s.connect_pending) .blocked else r.readSession(s);
            switch (outcome) {
                .done => {
                    s.on_ready_list = false;
                    blocked = false;
                },
                .more => {
                    r.ready_next.appendAssumeCapacity(slot);
                    blocked = false;
                },
                .blocked => r.ready_next.appendAssumeCapacity(slot),
            }
        }
        r.ready.clearRetainingCapacity();
        std.mem.swap(std.ArrayList(u32), &r.ready, &r.ready_next);
        r.ready_blocked = blocked and r.ready.items.len > 0;
    }

    const ReadOutcome = enum {
        /// Read to EAGAIN, EOF or an error: off the ready list.
        done,
        /// The turn's budget ran out: read on next turn.
        more,
        /// Its worker's ring has no room: read on once the worker frees some.
        blocked,
    };

    /// Before start: settings of listener `index` alone (a port's own, over the server's).
    pub fn setPortFraming(r: *Reactor, index: u32, config: abi.FramingConfig) !void {
        if (r.started) return error.BadState;
        if (index >= r.listener_count) return error.InvalidArgument;
        const l = &r.listeners[index];
        l.settings = try Settings.parse(config);
        l.own_settings = true;
    }

    fn settingsOf(r: *const Reactor, listener: u16) *const Settings {
        const l = &r.listeners[listener];
        return if (l.own_settings) &l.settings else &r.defaults;
    }

    fn protocolOf(r: *const Reactor, s: *const Session) framing.Protocol {
        return r.settingsOf(s.listener).framing;
    }

    fn maxLengthOf(r: *const Reactor, s: *const Session) u32 {
        return r.settingsOf(s.listener).max_length;
    }

    /// Before start: the heartbeat (0 interval: off).
    pub fn setHeartbeat(r: *Reactor, interval_ms: u32, idle_ms: u32) !void {
        if (r.started) return error.BadState;
        r.heartbeat_interval_ns = @as(i64, interval_ms) * std.time.ns_per_ms;
        r.heartbeat_idle_ns = @as(i64, if (idle_ms == 0) 2 * interval_ms else idle_ms) * std.time.ns_per_ms;
        r.heartbeat_next_ns = monoNs() + r.heartbeat_interval_ns;
    }

    /// Closes the sessions idle for the heartbeat's idle time, unless protected.
    fn heartbeat(r: *Reactor) void {
        if (r.heartbeat_interval_ns == 0 or r.phase != .running) return;
        const now = monoNs();
        if (now < r.heartbeat_next_ns) return;
        r.heartbeat_next_ns = now + r.heartbeat_interval_ns;
        for (r.sessions.slots) |*s| {
            const port_idle = r.settingsOf(s.listener).heartbeat_idle_ns;
            const idle_ns = if (port_idle > 0) port_idle else r.heartbeat_idle_ns;
            switch (s.state) {
                .open => {
                    if (@atomicLoad(u8, &s.protected, .acquire) != 0) continue;
                    const last = @max(s.last_recv_time_ns, s.connect_time_ns);
                    if (r.now_ns - last < idle_ns) continue;
                    log.info("session {d}: nothing received for {d} ms; closed by the heartbeat", .{ s.id, @divFloor(r.now_ns - last, std.time.ns_per_ms) });
                    r.tally(s.listener, "heartbeat_close_count", 1);
                    r.closeAfterOutput(s, abi.close_flag_server, @intFromEnum(posix.E.TIMEDOUT));
                },
                // A graceful close whose peer takes none of its output: nothing else would end
                // it, so the heartbeat resets it once its output made no progress for as long.
                .closing => {
                    const last = @max(s.last_send_time_ns, s.connect_time_ns);
                    if (r.now_ns - last < idle_ns) continue;
                    log.info("session {d}: closing, and none of its output was taken for {d} ms; reset by the heartbeat", .{ s.id, @divFloor(r.now_ns - last, std.time.ns_per_ms) });
                    // (Counted once: the heartbeat may have started this close itself.)
                    if (s.close_errno != @intFromEnum(posix.E.TIMEDOUT)) r.tally(s.listener, "heartbeat_close_count", 1);
                    r.closeSession(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.TIMEDOUT), true);
                },
                .free, .peer_closed => {},
            }
        }
    }

    /// Before start: the server's settings (framing, limits, watermarks, socket options) and
    /// `max_queued_bytes`.
    pub fn setFraming(r: *Reactor, config: abi.FramingConfig) !void {
        if (r.started) return error.BadState;
        r.defaults = try Settings.parse(config);
        // The server's own idle time comes with `setHeartbeat`; a port's may differ.
        r.defaults.heartbeat_idle_ns = 0;
        if (config.max_queued_bytes > 0 and r.attach != null and r.held.capacity == 0) {
            r.held = try std.ArrayList(u32).initCapacity(r.allocator, r.sessions.slots.len);
        }
        r.max_queued = if (r.attach != null) config.max_queued_bytes else 0;
    }

    /// Reads until EAGAIN, EOF, an error, the turn's budget, or a full ring.
    fn readSession(r: *Reactor, s: *Session) ReadOutcome {
        assert(s.state == .open);
        switch (r.protocolOf(s)) {
            .none, .worker => {},
            else => return r.readFramed(s),
        }
        var reads: u32 = 0;
        while (reads < reads_per_turn) : (reads += 1) {
            const lane = r.receiveLane(s) orelse return .blocked;
            const room = lane.inbound.reserve(read_chunk) orelse {
                // Room appeared meanwhile: retry. Otherwise round-robin and idle dispatch try
                // another worker (`receiveLane` skips the waiting ones); the sticky modes wait.
                if (!r.noRoom(lane, read_chunk)) continue;
                switch (r.dispatch_mode) {
                    .round_robin, .idle_worker => if (r.lanes.len > 1 and r.protocolOf(s) != .worker) continue,
                    else => {},
                }
                return .blocked;
            };
            // Raw syscalls on the per-message path: libc's wrappers add cancellation-point
            // bookkeeping that showed in profiles (about 1% of the server's CPU).
            const rc = rawResult(linux.read(s.fd, room.ptr, room.len));
            if (rc > 0) {
                const n: u32 = @intCast(rc);
                lane.inbound.commit(.receive, 0, r.reactorId(), s.id, s.listener, n);
                s.recv_bytes += n;
                s.last_recv_time_ns = r.now_ns;
                s.last_dispatch_time_ns = r.now_ns;
                r.tally(s.listener, "total_recv_bytes", n);
                r.tally(s.listener, "dispatch_count", 1);
                if (r.max_queued > 0 and r.countQueued(s, n)) return .done;
                if (n < room.len and !s.peer_hup) return .done;
                continue;
            }
            if (r.readFailed(s, rc)) |outcome| return outcome;
        }
        return .more;
    }

    /// What a read that returned no bytes means: EOF (the peer closed; what a framed session
    /// buffered of an unfinished message goes with it, as in Swoole) or an error ends the
    /// reading; EINTR (null) means read again.
    fn readFailed(r: *Reactor, s: *Session, rc: isize) ?ReadOutcome {
        if (rc == 0) {
            r.peerClosed(s);
            return .done;
        }
        switch (rawErrno(rc)) {
            .AGAIN => return .done,
            .INTR => return null,
            else => |e| {
                r.closeSession(s, abi.close_flag_error, @intFromEnum(e), true);
                return .done;
            },
        }
    }

    /// Framed protocols: reads into the session's input buffer and delivers each whole message
    /// as it completes (messages already buffered go first, so a full ring holds them, not
    /// the socket's data).
    fn readFramed(r: *Reactor, s: *Session) ReadOutcome {
        var reads: u32 = 0;
        while (true) {
            switch (r.deliverMessages(s)) {
                .blocked => return .blocked,
                .closed => return .done,
                .ok => {},
            }
            if (s.queue_held) return .done;
            if (reads == reads_per_turn) return .more;
            reads += 1;
            s.in.ensureUnusedCapacity(r.allocator, read_chunk) catch {
                log.err("session {d}: out of memory for its input; closing it", .{s.id});
                r.closeSession(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.NOMEM), true);
                return .done;
            };
            const room = s.in.unusedCapacitySlice();
            const rc = rawResult(linux.read(s.fd, room.ptr, room.len));
            if (rc > 0) {
                const n: usize = @intCast(rc);
                s.in.items.len += n;
                s.recv_bytes += n;
                s.last_recv_time_ns = r.now_ns;
                r.tally(s.listener, "total_recv_bytes", n);
                if (n < room.len and !s.peer_hup) {
                    return switch (r.deliverMessages(s)) {
                        .blocked => .blocked,
                        .closed, .ok => .done,
                    };
                }
                continue;
            }
            if (r.readFailed(s, rc)) |outcome| return outcome;
        }
    }

    const Delivery = enum { ok, blocked, closed };

    /// Hands every whole message in the session's input buffer to its worker.
    fn deliverMessages(r: *Reactor, s: *Session) Delivery {
        while (true) {
            const data = s.in.items[s.in_start..];
            const outcome = framing.next(r.protocolOf(s), data, r.maxLengthOf(s));
            switch (outcome) {
                .need_more => break,
                .message => |n| {
                    if (!r.pushMessage(s, data[0..n])) return .blocked;
                    s.in_start += n;
                    s.last_dispatch_time_ns = r.now_ns;
                },
                .too_long, .negative_length => {
                    const why = if (outcome == .too_long) "longer than package_max_length" else "with a negative length";
                    log.warn("session {d}: a message {s} ({d} bytes max); closing the session", .{ s.id, why, r.maxLengthOf(s) });
                    r.tally(s.listener, "protocol_error_count", 1);
                    r.closeAfterOutput(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.PROTO));
                    return .closed;
                },
            }
        }
        // Keep the partial message at the front; let a big buffer go once it is empty.
        const left = s.in.items.len - s.in_start;
        if (s.in_start > 0) {
            std.mem.copyForwards(u8, s.in.items[0..left], s.in.items[s.in_start..]);
            s.in.shrinkRetainingCapacity(left);
            s.in_start = 0;
        }
        if (left == 0 and s.in.capacity > out_keep_bytes) s.in.clearAndFree(r.allocator);
        return .ok;
    }

    /// Pushes one message into a worker's ring: one record, or pieces of half a ring with
    /// `receive_flag_more` on all but the last (all to the same worker). False when the ring is
    /// full; the pieces sent so far are remembered and it goes on from there.
    fn pushMessage(r: *Reactor, s: *Session, message: []const u8) bool {
        while (true) {
            const lane: *Lane = if (s.frame_sent > 0) &r.lanes[s.frame_lane] else r.receiveLane(s) orelse return false;
            const rest = message[s.frame_sent..];
            const piece = @min(rest.len, lane.inbound.maxPayload());
            const room = lane.inbound.reserve(@intCast(piece)) orelse {
                if (r.noRoom(lane, @intCast(piece))) return false;
                continue;
            };
            @memcpy(room[0..piece], rest[0..piece]);
            const more = piece < rest.len;
            const flags = (if (more) abi.receive_flag_more else 0) | (if (s.frame_sent > 0) abi.receive_flag_continued else 0);
            lane.inbound.commit(.receive, flags, r.reactorId(), s.id, s.listener, @intCast(piece));
            r.tally(s.listener, "dispatch_count", 1);
            if (r.max_queued > 0) _ = r.countQueued(s, @intCast(piece));
            if (!more) {
                s.frame_sent = 0;
                return true;
            }
            if (s.frame_sent == 0) s.frame_lane = @intCast(lane - r.lanes.ptr);
            s.frame_sent += piece;
        }
    }

    /// EOF from the peer: tell the worker, keep the socket for the output it still queues.
    /// Where workers get no close records (dispatch modes 1, 3, 5), close it here once the
    /// queued output is written.
    fn peerClosed(r: *Reactor, s: *Session) void {
        @atomicStore(session_table.State, &s.state, .peer_closed, .release);
        s.close_notified = true;
        if (!r.deliver_session_events) return r.closeRequested(s.id, 0);
        r.pushClose(s, abi.close_flag_peer_eof, 0);
    }

    /// Where a session's close record goes: its home lane, or its uid's worker once bound.
    fn closeLane(r: *const Reactor, s: *const Session) u16 {
        if (r.dispatch_mode == .uid and r.lanes.len > 1) {
            const uid = @atomicLoad(u32, &s.uid, .acquire);
            if (uid != 0) return @intCast(uid % r.lanes.len);
        }
        return s.lane;
    }

    /// Swoole reports -1 as the reactor of a close the server started.
    fn closeReactorId(r: *const Reactor, flags: u8) i16 {
        return if (flags & abi.close_flag_server != 0) -1 else r.reactorId();
    }

    fn dropPending(r: *Reactor, session_id: u32) void {
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
    fn flushPending(r: *Reactor) void {
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

    // --- outbound records -----------------------------------------------------------------

    fn consumeOutbound(r: *Reactor) void {
        for (r.lanes) |*lane| {
            while (lane.outbound.peek()) |record| {
                const header = record.header;
                switch (@as(abi.RecordType, @enumFromInt(header.type))) {
                    .send => r.sendTo(header.session_id, record.payload),
                    .close_request => r.closeRequested(header.session_id, header.aux),
                    .pause_request => r.pauseRequested(header.session_id, header.aux == 1),
                    .sendfile_request => r.sendfileRequested(header.session_id, record.payload),
                    .drain_request => r.drainRequested(header.session_id, @intCast(lane - r.lanes.ptr)),
                    .sendto => r.sendDatagram(header.aux, record.payload),
                    .shutdown_ack => lane.shutdown_acked = true,
                    else => std.debug.panic("unexpected outbound record type {d}", .{header.type}),
                }
                lane.outbound.advance(record);
            }
            // Room freed: wake the worker if it waits to send more.
            if (lane.outbound.release()) kick(lane.wake_fd);
        }
    }

    fn sendTo(r: *Reactor, session_id: u32, data: []const u8) void {
        const s = r.sessions.get(session_id) orelse {
            r.count("send_dropped_count", 1);
            return;
        };
        if (s.state == .closing) {
            r.count("send_dropped_count", 1);
            return;
        }
        var written: usize = 0;
        if (!s.hasOutput()) {
            written = r.writeSome(s, data) orelse return;
        }
        if (written < data.len) {
            const rest = data[written..];
            s.out.appendSlice(r.allocator, rest) catch {
                log.err("session {d}: out of memory queueing {d} bytes; closing it", .{ s.id, rest.len });
                r.closeSession(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.NOMEM), true);
                return;
            };
            const queued = @atomicRmw(u64, &s.out_queued, .Add, rest.len, .monotonic) + rest.len;
            r.count("send_queued_bytes", rest.len);
            if (!s.want_write) r.armWrite(s, true);
            const high = r.settingsOf(s.listener).high_watermark;
            if (high > 0 and !s.buffer_full and queued >= high) {
                s.buffer_full = true;
                r.bufferEvent(s, .buffer_full);
            }
        }
    }

    /// `bufferFull` / `bufferEmpty` go where the session's connect and close go (not at all in
    /// the dispatch modes that deliver no connect and close).
    fn bufferEvent(r: *Reactor, s: *Session, record_type: abi.RecordType) void {
        if (!r.deliver_session_events) return;
        _ = r.pushOrQueue(record_type, 0, r.closeLane(s), s.id, 0);
    }

    /// One send(2); the bytes written, or null when the session was closed by an error.
    fn writeSome(r: *Reactor, s: *Session, data: []const u8) ?usize {
        while (true) {
            const rc = rawResult(linux.sendto(s.fd, data.ptr, data.len, linux.MSG.NOSIGNAL | linux.MSG.DONTWAIT, null, 0));
            if (rc >= 0) {
                const n: usize = @intCast(rc);
                s.send_bytes += n;
                s.last_send_time_ns = r.now_ns;
                r.tally(s.listener, "total_send_bytes", n);
                return n;
            }
            switch (rawErrno(rc)) {
                .AGAIN => return 0,
                .INTR => continue,
                else => |e| {
                    r.closeSession(s, abi.close_flag_error, @intFromEnum(e), true);
                    return null;
                },
            }
        }
    }

    /// `sendfile`: queues the file after what is queued already, and starts writing if
    /// nothing is. The file is opened here (in the process that owns the socket).
    fn sendfileRequested(r: *Reactor, session_id: u32, payload: []const u8) void {
        const s = r.sessions.get(session_id) orelse return r.count("send_dropped_count", 1);
        if (s.state == .closing or payload.len <= 16) return r.count("send_dropped_count", 1);
        const offset = std.mem.readInt(u64, payload[0..8], .little);
        var length = std.mem.readInt(u64, payload[8..16], .little);
        const path = payload[16..];
        var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
        if (path.len >= path_buffer.len) return r.count("send_dropped_count", 1);
        @memcpy(path_buffer[0..path.len], path);
        path_buffer[path.len] = 0;
        const fd = posix.openZ(@ptrCast(&path_buffer), .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0) catch |err| {
            log.warn("session {d}: sendfile cannot open {s}: {s}", .{ s.id, path, @errorName(err) });
            return r.count("send_dropped_count", 1);
        };
        if (length == 0) {
            const stat = posix.fstat(fd) catch {
                posix.close(fd);
                return r.count("send_dropped_count", 1);
            };
            const size: u64 = @intCast(stat.size);
            length = if (size > offset) size - offset else 0;
        }
        if (length == 0) return posix.close(fd);
        s.files.append(r.allocator, .{ .at = s.out.items.len, .fd = fd, .offset = offset, .left = length }) catch {
            posix.close(fd);
            return r.count("send_dropped_count", 1);
        };
        const queued = @atomicRmw(u64, &s.out_queued, .Add, length, .monotonic) + length;
        r.count("send_queued_bytes", length);
        const high = r.settingsOf(s.listener).high_watermark;
        if (high > 0 and !s.buffer_full and queued >= high) {
            s.buffer_full = true;
            r.bufferEvent(s, .buffer_full);
        }
        r.flushSession(s);
        if (s.isLive() and s.hasOutput() and !s.want_write) r.armWrite(s, true);
    }

    /// `sendwait`: the worker on `lane` hears once the session's output is written.
    fn drainRequested(r: *Reactor, session_id: u32, lane: u16) void {
        const s = r.sessions.get(session_id) orelse {
            _ = r.pushOrQueue(.drained, 0, lane, session_id, 0);
            return;
        };
        if (!s.hasOutput()) {
            _ = r.pushOrQueue(.drained, 0, lane, session_id, 1);
            return;
        }
        s.drain_waiters |= @as(u64, 1) << @intCast(lane % 64);
    }

    /// Tells the lanes waiting on a session's output (`aux` 1: written, 0: the session ended).
    fn answerDrain(r: *Reactor, s: *Session, written: bool) void {
        var waiters = s.drain_waiters;
        s.drain_waiters = 0;
        while (waiters != 0) {
            const lane: u16 = @intCast(@ctz(waiters));
            waiters &= waiters - 1;
            if (lane < r.lanes.len) _ = r.pushOrQueue(.drained, 0, lane, s.id, @intFromBool(written));
        }
    }

    /// Output of `n` bytes went out: the counters, and `bufferEmpty` once low enough.
    fn sent(r: *Reactor, s: *Session, n: usize) void {
        const queued = @atomicRmw(u64, &s.out_queued, .Sub, n, .monotonic) - n;
        r.uncount("send_queued_bytes", n);
        if (s.buffer_full and queued <= r.settingsOf(s.listener).low_watermark) {
            s.buffer_full = false;
            r.bufferEvent(s, .buffer_empty);
        }
    }

    /// One sendfile(2) of the first queued file: true when it is done, false when the socket
    /// is full (or the session was closed by an error).
    fn sendFile(r: *Reactor, s: *Session) bool {
        const file = &s.files.items[0];
        while (file.left > 0) {
            var offset: i64 = @intCast(file.offset);
            const chunk: usize = @intCast(@min(file.left, 1 << 30));
            const rc = rawResult(linux.sendfile(s.fd, file.fd, &offset, chunk));
            if (rc > 0) {
                const n: usize = @intCast(rc);
                file.offset += n;
                file.left -= n;
                s.send_bytes += n;
                s.last_send_time_ns = r.now_ns;
                r.tally(s.listener, "total_send_bytes", n);
                r.sent(s, n);
                continue;
            }
            if (rc == 0) {
                // The file is shorter than asked for: what is missing will not come.
                log.warn("session {d}: sendfile: the file ended {d} bytes early", .{ s.id, file.left });
                r.sent(s, @intCast(file.left));
                file.left = 0;
                break;
            }
            switch (rawErrno(rc)) {
                .AGAIN => return false,
                .INTR => continue,
                else => |e| {
                    r.closeSession(s, abi.close_flag_error, @intFromEnum(e), true);
                    return false;
                },
            }
        }
        posix.close(file.fd);
        _ = s.files.orderedRemove(0);
        return true;
    }

    fn flushSession(r: *Reactor, s: *Session) void {
        while (s.hasOutput()) {
            // Bytes up to the next file (or all of them), then that file.
            const end = if (s.files.items.len > 0) s.files.items[0].at else s.out.items.len;
            if (s.out_sent < end) {
                const n = r.writeSome(s, s.out.items[s.out_sent..end]) orelse return;
                if (n == 0) return;
                s.out_sent += n;
                r.sent(s, n);
                continue;
            }
            if (s.files.items.len > 0) {
                if (!r.sendFile(s)) return;
                continue;
            }
        }
        s.out.clearRetainingCapacity();
        s.out_sent = 0;
        if (s.out.capacity > out_keep_bytes) s.out.clearAndFree(r.allocator);
        if (s.drain_waiters != 0) r.answerDrain(s, true);
        if (s.want_write) r.armWrite(s, false);
        if (s.state == .closing) r.closeSession(s, s.close_flags, @intCast(s.close_errno), false);
    }

    fn armWrite(r: *Reactor, s: *Session, on: bool) void {
        var event: linux.epoll_event = .{
            .events = session_events | (if (on) @as(u32, linux.EPOLL.OUT) else 0),
            .data = .{ .u64 = tag_session | s.id },
        };
        posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_MOD, s.fd, &event) catch |err| {
            std.debug.panic("session {d}: epoll_ctl MOD failed: {s}", .{ s.id, @errorName(err) });
        };
        s.want_write = on;
    }

    /// `pause` / `resume` / `confirm`: stop or go on reading a session (what came meanwhile
    /// waits in the kernel; TCP pushes back on the peer).
    fn pauseRequested(r: *Reactor, session_id: u32, pause: bool) void {
        const s = r.sessions.get(session_id) orelse return;
        if (s.paused == pause) return;
        s.paused = pause;
        // Edge-triggered: data that came while paused signals nothing more; read it now.
        if (!pause and s.state == .open) r.markReady(s);
    }

    /// A worker's `close`: `how` is 0 (after the queued output), 1 (reset) or 2 (a protocol
    /// error the worker found: counted, and reset like the core's own framing errors).
    /// A reset also ends a session that is closing already (its output is dropped); a graceful
    /// close of one is nothing more.
    fn closeRequested(r: *Reactor, session_id: u32, how: u32) void {
        const s = r.sessions.get(session_id) orelse return;
        switch (how) {
            0 => if (s.state != .closing) r.closeAfterOutput(s, abi.close_flag_server, 0),
            1 => r.closeSession(s, abi.close_flag_server, 0, true),
            else => if (s.state != .closing) {
                r.tally(s.listener, "protocol_error_count", 1);
                r.closeAfterOutput(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.PROTO));
            },
        }
    }

    /// Ends a session after its queued output (then FIN, lingering: see closeSession): at
    /// once when nothing is queued, otherwise it is `closing` until the output is written (or
    /// makes no progress for a heartbeat idle time, or a reset ends it).
    fn closeAfterOutput(r: *Reactor, s: *Session, flags: u8, errno: u32) void {
        assert(s.state == .open or s.state == .peer_closed);
        if (!s.hasOutput()) return r.closeSession(s, flags, errno, false);
        s.close_flags = flags;
        s.close_errno = @intCast(errno);
        @atomicStore(session_table.State, &s.state, .closing, .release);
    }

    /// Closes the socket, frees the slot and (unless it was told already) tells the worker.
    /// `abort` resets the connection (RST) and drops queued output.
    fn closeSession(r: *Reactor, s: *Session, flags: u8, errno: u32, abort: bool) void {
        if (abort) {
            const linger = Linger{ .onoff = 1, .linger = 0 };
            _ = c.setsockopt(s.fd, linux.SOL.SOCKET, linux.SO.LINGER, @ptrCast(&linger), @sizeOf(Linger));
            r.tally(s.listener, "abort_count", 1);
        }
        if (!abort and r.phase == .running and s.state != .peer_closed and !s.peer_hup) {
            // The peer may still be sending: half close, and read it out (linger.zig).
            var event: linux.epoll_event = .{ .events = linux.EPOLL.IN | linux.EPOLL.RDHUP, .data = .{ .u64 = tag_linger | @as(u32, @intCast(s.fd)) } };
            r.lingering.add(r.epoll_fd, s.fd, &event, monoNs());
        } else {
            posix.close(s.fd);
        }
        r.tally(s.listener, "close_count", 1);
        r.untally(s.listener, "connection_num", 1);
        if (r.attach) |a| _ = @atomicRmw(u32, a.connection_total, .Sub, 1, .monotonic);
        const queued = @atomicLoad(u64, &s.out_queued, .monotonic);
        if (queued > 0) r.uncount("send_queued_bytes", queued);
        if (s.connect_pending) {
            // The worker never heard of it: take back its connect record, send no close.
            r.dropPending(s.id);
        } else if (!s.close_notified and r.deliver_session_events) {
            r.pushClose(s, flags, errno);
        }
        if (s.drain_waiters != 0) r.answerDrain(s, false);
        s.close_errno = @intCast(errno);
        r.sessions.release(r.allocator, s);
        // A freed fd ends an accept pause early: the next accept can succeed.
        if (r.accept_resume_ns != 0) r.resumeAccept();
    }

    // --- shutdown -----------------------------------------------------------------------

    fn beginShutdown(r: *Reactor) void {
        assert(r.phase == .running);
        for (r.listeners[0..r.listener_count]) |*l| {
            posix.close(l.fd);
            l.fd = -1;
        }
        for (r.ready.items) |slot| r.sessions.slots[slot].on_ready_list = false;
        r.ready.clearRetainingCapacity();
        r.phase = .draining;
        r.phase_deadline_ns = monoNs() + @as(i64, r.config.max_wait_time_ms) * std.time.ns_per_ms;
    }

    fn flushDone(r: *Reactor) bool {
        if (monoNs() >= r.phase_deadline_ns) {
            log.warn("shutdown: output still queued after max_wait_time; closing anyway", .{});
            return true;
        }
        for (r.sessions.slots) |*s| {
            if (s.isLive() and s.hasOutput()) return false;
        }
        return true;
    }

    /// Closes every session; their close records go out (waiting for room if need be) before
    /// `stopped`.
    fn closeAll(r: *Reactor) void {
        for (r.sessions.slots) |*s| {
            if (s.state == .closing) {
                r.closeSession(s, s.close_flags, @intCast(s.close_errno), false);
            } else if (s.isLive()) {
                r.closeSession(s, abi.close_flag_server, 0, false);
            }
        }
        r.phase = .closing;
        r.phase_deadline_ns = monoNs() + @as(i64, r.config.max_wait_time_ms) * std.time.ns_per_ms;
    }
};

/// struct linger from <sys/socket.h>.
const Linger = extern struct { onoff: c_int, linger: c_int };

pub fn kick(fd: i32) void {
    const one: u64 = 1;
    _ = c.write(fd, @ptrCast(&one), 8);
}

/// A raw syscall's result as a signed count: negative is -errno.
fn rawResult(rc: usize) isize {
    return @bitCast(rc);
}

fn rawErrno(rc: isize) posix.E {
    assert(rc < 0);
    return @enumFromInt(-rc);
}

/// The peer of an accepted socket. `initPosix` knows IP families only: a Unix socket's peer
/// (unnamed, for a client) keeps just its family.
fn remoteAddress(address: *const posix.sockaddr) std.net.Address {
    if (address.family == posix.AF.INET or address.family == posix.AF.INET6) {
        return std.net.Address.initPosix(@alignCast(address));
    }
    var other: std.net.Address = undefined;
    other.any = std.mem.zeroes(posix.sockaddr);
    other.any.family = address.family;
    return other;
}

/// A hash of the client's address (not its port), for dispatch mode 4.
fn ipHash(address: std.net.Address) u32 {
    return switch (address.any.family) {
        posix.AF.INET => @truncate(std.hash.Wyhash.hash(0, std.mem.asBytes(&address.in.sa.addr))),
        posix.AF.INET6 => @truncate(std.hash.Wyhash.hash(0, &address.in6.sa.addr)),
        else => 0,
    };
}

/// Wall-clock time, for the times `getClientInfo` reports.
fn nowNs() i64 {
    return clockNs(.REALTIME);
}

/// Monotonic time, for deadlines.
fn monoNs() i64 {
    return clockNs(.MONOTONIC);
}

fn clockNs(clock: c.clockid_t) i64 {
    var ts: c.timespec = undefined;
    _ = c.clock_gettime(clock, &ts);
    return @as(i64, ts.sec) * std.time.ns_per_s + ts.nsec;
}

fn setIntOption(fd: i32, level: i32, name: u32, value: c_int) void {
    _ = c.setsockopt(fd, level, name, @ptrCast(&value), @sizeOf(c_int));
}

// --- tests -----------------------------------------------------------------------------------

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
            .wake_fds = wakes,
            .slots = shm.Region.tableSlots(created.memory, 0),
            .stats = shm.Region.reactorStats(created.memory, 0),
            .workers = shm.Region.workerSlots(created.memory),
            .connection_total = &header.connection_total,
            .reactor_num = 1,
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
