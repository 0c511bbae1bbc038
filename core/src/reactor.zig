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
const accept_mod = @import("accept.zig");
const datagram_mod = @import("datagram.zig");
const dispatch_mod = @import("dispatch.zig");
const read_mod = @import("read.zig");
const write_mod = @import("write.zig");
const closing_mod = @import("closing.zig");
const settings_mod = @import("settings.zig");
const http_session = @import("http_session.zig");
const http_static = @import("http_static.zig");
const heartbeat_mod = @import("heartbeat.zig");
const proxy_session = @import("proxy_session.zig");
const shutdown_mod = @import("shutdown.zig");
const worker_exit_mod = @import("worker_exit.zig");
const pubsub = @import("pubsub.zig");
const topic_counts = @import("topic_counts.zig");
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
pub const unix_datagram_max = 256 * 1024;
/// Reads of one session per loop turn before the others get theirs.
pub const reads_per_turn = 4;
/// Connections accepted per listener per loop turn.
pub const accepts_per_turn = 64;
pub const listeners_max = abi.ports_max;
pub const events_max = 256;
pub const accept_pause_ms = 1000;
/// An output buffer larger than this is freed once drained, not kept for the next burst.
pub const out_keep_bytes = 64 * 1024;

pub const poll_more: u32 = 1;

pub const tag_session: u64 = 0;
pub const session_events: u32 = linux.EPOLL.IN | linux.EPOLL.RDHUP | linux.EPOLL.ET;
pub const tag_listener: u64 = 1 << 32;
pub const tag_kick: u64 = 2 << 32;
pub const tag_doorbell: u64 = 3 << 32;
pub const tag_linger: u64 = 4 << 32;

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

pub const Settings = settings_mod.Settings;

pub const Phase = enum(u32) {
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
pub const PendingRecord = struct {
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
    doorbell_fd: i32,
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
    /// A publish that comes in several records, as far as it came (pubsub.zig).
    publish: pubsub.Assembly = .{},
};

pub const DispatchMode = enum(u8) { round_robin = 1, fd_modulo = 2, idle_worker = 3, ip_hash = 4, uid = 5 };

/// PROCESS mode: what a reactor thread of the master works with, all in the tree's region.
pub const Attach = struct {
    /// The channel memory of each worker's lane.
    channels: []const []u8,
    doorbells: []const i32,
    /// This reactor's session table slots.
    slots: []Session,
    stats: *abi.Stats,
    /// The worker table (the idle-worker dispatch reads statuses).
    workers: []abi.WorkerSlot,
    /// Sessions open across every reactor thread, against `max_connection`.
    connection_total: *u32,
    reactor_num: u32,
    /// The tree's topic counts (this reactor's row: its id).
    topic_counts: topic_counts.Counts,
};

pub const Reactor = struct {
    allocator: std.mem.Allocator,
    config: abi.ServerConfig,
    /// BASE mode: the channel of the one lane, owned here.
    channel: ?shm.Channel,
    epoll_fd: i32,
    /// Written by workers (and `requestShutdown`) to wake the reactor from epoll_wait.
    kick_fd: i32,
    /// BASE mode: the worker's doorbell, written by the reactor to wake the worker parked in
    /// `zg_server_wait`. -1 in PROCESS mode (each lane has its worker's).
    doorbell_fd: i32,
    /// Created here; not in a tree, where the doorbell is the worker's (`useDoorbell`), which
    /// its mailbox peers ring too: the inline reactor then polls it so that `waitIo` returns
    /// for mail.
    owns_doorbell: bool = true,
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
    /// Dispatch mode 3: where the search for an idle worker starts (after the last one picked;
    /// apart from `next_lane`, which accepts move on too).
    next_idle: u32 = 0,
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
    /// HTTP's timers (http_session.zig): when they are next looked at (0: no HTTP listener).
    http_check_ns: i64 = 0,
    /// Sessions waiting for their PROXY protocol header (proxy_session.zig).
    proxy: proxy_session.State = .{},
    /// `enableStaticHandler`: the document root and its rules (http_static.zig), or null.
    static_files: ?*http_static.Config = null,
    /// Publish/subscribe: this reactor's topics and subscriber counts (pubsub.zig).
    pubsub: pubsub.State = .{},
    /// The input buffer a session with nothing buffered reads into (read.zig), handed back
    /// when empty again: one buffer for all the sessions that keep no partial message.
    spare_in: std.ArrayList(u8) = .empty,
    /// BASE worker of a tree: the socket pair end its WebSockets go out on when it leaves
    /// (carry.zig; -1: none), whether `carryIn` ran, and the region's header (`stopping`).
    carry_out: i32 = -1,
    carry_done: bool = false,
    region_header: ?*abi.RegionHeader = null,
    /// Inline mode: events `waitIo` collected for the next `poll`.
    stash: [events_max]linux.epoll_event = undefined,
    stash_len: u32 = 0,
    /// This reactor as a set of one (api_reactors.zig): `set` is `own[0..1]`.
    own: [1]*Reactor = undefined,
    set: []*Reactor = &.{},

    /// A BASE-mode reactor: one lane, over a channel of its own.
    pub fn init(allocator: std.mem.Allocator, config: abi.ServerConfig) !*Reactor {
        return create(allocator, config, null);
    }

    /// A PROCESS-mode reactor thread of the master: one lane per worker, in the region.
    pub fn initAttached(allocator: std.mem.Allocator, config: abi.ServerConfig, attach: Attach) !*Reactor {
        return create(allocator, config, attach);
    }

    pub fn create(allocator: std.mem.Allocator, config: abi.ServerConfig, attach: ?Attach) !*Reactor {
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
        const doorbell_fd = if (attach == null) try posix.eventfd(0, linux.EFD.CLOEXEC) else -1;
        errdefer if (doorbell_fd >= 0) posix.close(doorbell_fd);
        var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = tag_kick } };
        try posix.epoll_ctl(epoll_fd, linux.EPOLL.CTL_ADD, kick_fd, &event);
        for (lanes, 0..) |*lane, i| {
            const memory = if (attach) |a| a.channels[i] else channel.?.memory;
            const header = shm.Channel.headerOf(memory);
            lane.* = .{
                .inbound = ring.Producer.init(&header.in_ctl, shm.Channel.inDataOf(memory)),
                .outbound = ring.Consumer.init(&header.out_ctl, shm.Channel.outDataOf(memory)),
                .doorbell_fd = if (attach) |a| a.doorbells[i] else doorbell_fd,
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
            .doorbell_fd = doorbell_fd,
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
        r.pubsub = if (attach) |a| .{ .counts = a.topic_counts, .row = config.reactor_id } else try pubsub.State.initOwn(config.max_connection);
        r.own = .{r};
        r.set = &r.own;
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
        if (r.carry_out >= 0) posix.close(r.carry_out);
        r.spare_in.deinit(r.allocator);
        r.sessions.deinit(r.allocator);
        r.ready.deinit(r.allocator);
        r.ready_next.deinit(r.allocator);
        r.held.deinit(r.allocator);
        r.lingering.deinit(r.allocator);
        r.handoff.deinit(r.allocator);
        for (r.pending.items) |p| if (p.info) |info| r.allocator.destroy(info);
        r.pending.deinit(r.allocator);
        if (r.static_files) |cfg| cfg.destroy(r.allocator);
        r.pubsub.deinit(r.allocator);
        for (r.lanes) |*lane| lane.publish.deinit(r.allocator);
        r.allocator.free(r.lanes);
        posix.close(r.epoll_fd);
        posix.close(r.kick_fd);
        if (r.doorbell_fd >= 0 and r.owns_doorbell) posix.close(r.doorbell_fd);
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
        if (r.owns_doorbell) posix.close(r.doorbell_fd);
        r.doorbell_fd = fd;
        r.owns_doorbell = false;
        r.lanes[0].doorbell_fd = fd;
    }

    pub fn start(r: *Reactor, inline_mode: bool) !void {
        assert(!r.started);
        if (inline_mode and !r.owns_doorbell) {
            var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = tag_doorbell } };
            try posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_ADD, r.doorbell_fd, &event);
        }
        try r.lingering.init(r.allocator, r.sessions.slots.len);
        for (0..r.listener_count) |i| {
            if (r.settingsOf(@intCast(i)).framing == .http) r.http_check_ns = monoNs() + http_session.check_every_ns;
        }
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

    pub fn stats(r: *Reactor) *abi.Stats {
        return r.stats_block orelse &r.channel.?.header.stats;
    }

    pub fn count(r: *Reactor, comptime field: []const u8, delta: u64) void {
        _ = @atomicRmw(u64, &@field(r.stats(), field), .Add, delta, .monotonic);
    }

    pub fn uncount(r: *Reactor, comptime field: []const u8, delta: u64) void {
        _ = @atomicRmw(u64, &@field(r.stats(), field), .Sub, delta, .monotonic);
    }

    /// Counts server-wide and for listener `listener`'s port. This reactor is the port
    /// counters' only writer, so they take a plain atomic store.
    pub fn tally(r: *Reactor, listener: u16, comptime field: []const u8, delta: u64) void {
        r.count(field, delta);
        const p = &@field(r.stats().ports[listener], field);
        @atomicStore(u64, p, @atomicLoad(u64, p, .monotonic) +% delta, .monotonic);
    }

    pub fn untally(r: *Reactor, listener: u16, comptime field: []const u8, delta: u64) void {
        r.uncount(field, delta);
        const p = &@field(r.stats().ports[listener], field);
        @atomicStore(u64, p, @atomicLoad(u64, p, .monotonic) -% delta, .monotonic);
    }

    /// The reactor thread: work, then sleep in epoll_wait until a socket, the worker's kick
    /// or a timeout wakes it.
    pub fn run(r: *Reactor) void {
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
    pub fn prepareParking(r: *Reactor) bool {
        for (r.lanes) |*lane| {
            if (!lane.outbound.prepareParking()) {
                r.unpark();
                return false;
            }
        }
        return true;
    }

    pub fn unpark(r: *Reactor) void {
        for (r.lanes) |*lane| lane.outbound.unpark();
    }

    pub fn gather(r: *Reactor, timeout: i32) void {
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
    pub fn work(r: *Reactor) void {
        r.now_ns = nowNs();
        r.consumeOutbound();
        if (r.phase == .running and @atomicLoad(u32, &r.shutdown_requested, .acquire) == 1) r.beginShutdown();
        r.flushPending();
        r.closeOrphans();
        r.heartbeat();
        if (r.http_check_ns != 0 and r.phase == .running and monoNs() >= r.http_check_ns) r.httpTimers();
        if (r.proxy.check_ns != 0 and r.phase == .running and monoNs() >= r.proxy.check_ns) proxy_session.timers(r);
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

    pub fn reactorId(r: *const Reactor) i16 {
        return @intCast(r.config.reactor_id);
    }

    /// Work that needs no event to go on: epoll must not block while there is some.
    pub fn hasWork(r: *Reactor) bool {
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
        for ([_]i64{ r.http_check_ns, r.proxy.check_ns }) |check_ns| {
            if (check_ns == 0 or r.phase != .running) continue;
            const left: i32 = @intCast(@max(0, @divFloor(check_ns - monoNs(), std.time.ns_per_ms) + 1));
            if (timeout < 0 or left < timeout) timeout = left;
        }
        return timeout;
    }

    pub fn onEvent(r: *Reactor, event: linux.epoll_event) void {
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

    /// Before start: settings of listener `index` alone (a port's own, over the server's).
    pub fn setPortFraming(r: *Reactor, index: u32, config: abi.FramingConfig) !void {
        if (r.started) return error.BadState;
        if (index >= r.listener_count) return error.InvalidArgument;
        const l = &r.listeners[index];
        l.settings = try Settings.parse(config);
        l.own_settings = true;
    }

    pub fn settingsOf(r: *const Reactor, listener: u16) *const Settings {
        const l = &r.listeners[listener];
        return if (l.own_settings) &l.settings else &r.defaults;
    }

    pub fn protocolOf(r: *const Reactor, s: *const Session) framing.Protocol {
        return r.settingsOf(s.listener).framing;
    }

    pub fn maxLengthOf(r: *const Reactor, s: *const Session) u32 {
        return r.settingsOf(s.listener).max_length;
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

    /// Before start: `enableStaticHandler` (see http_static.zig); lists separated by newlines.
    pub fn setStatic(r: *Reactor, root: []const u8, locations: []const u8, index_files: []const u8) !void {
        if (r.started) return error.BadState;
        const cfg = try http_static.Config.create(r.allocator, root, locations, index_files);
        if (r.static_files) |old| old.destroy(r.allocator);
        r.static_files = cfg;
    }

    // The reactor's work by concern, one file each (methods of `Reactor`).
    // accept.zig
    pub const acceptPending = accept_mod.acceptPending;
    pub const handOver = accept_mod.handOver;
    pub const takeHandedOver = accept_mod.takeHandedOver;
    pub const pauseAccept = accept_mod.pauseAccept;
    pub const acceptPauseLeftMs = accept_mod.acceptPauseLeftMs;
    pub const resumeAccept = accept_mod.resumeAccept;
    pub const addSession = accept_mod.addSession;
    // datagram.zig
    pub const readPackets = datagram_mod.readPackets;
    pub const packetAddress = datagram_mod.packetAddress;
    pub const packetLane = datagram_mod.packetLane;
    pub const sendDatagram = datagram_mod.sendDatagram;
    // dispatch.zig
    pub const homeLane = dispatch_mod.homeLane;
    pub const receiveLane = dispatch_mod.receiveLane;
    pub const nextLaneWithRoom = dispatch_mod.nextLaneWithRoom;
    pub const idleWorkerLane = dispatch_mod.idleWorkerLane;
    pub const dispatched = dispatch_mod.dispatched;
    pub const pushOrQueue = dispatch_mod.pushOrQueue;
    pub const pushClose = dispatch_mod.pushClose;
    pub const countQueued = dispatch_mod.countQueued;
    pub const releaseHeld = dispatch_mod.releaseHeld;
    pub const lanePending = dispatch_mod.lanePending;
    pub const closeLane = dispatch_mod.closeLane;
    pub const closeReactorId = dispatch_mod.closeReactorId;
    pub const dropPending = dispatch_mod.dropPending;
    pub const flushPending = dispatch_mod.flushPending;
    pub const noRoom = dispatch_mod.noRoom;
    pub const publish = dispatch_mod.publish;
    // read.zig
    pub const markReady = read_mod.markReady;
    pub const readReady = read_mod.readReady;
    pub const readSession = read_mod.readSession;
    pub const readFailed = read_mod.readFailed;
    pub const readFramed = read_mod.readFramed;
    pub const deliverMessages = read_mod.deliverMessages;
    pub const pushMessage = read_mod.pushMessage;
    pub const pushMessageParts = read_mod.pushMessageParts;
    pub const peerClosed = read_mod.peerClosed;
    // write.zig
    pub const consumeOutbound = write_mod.consumeOutbound;
    pub const sendTo = write_mod.sendTo;
    pub const bufferEvent = write_mod.bufferEvent;
    pub const writeSome = write_mod.writeSome;
    pub const sendfileRequested = write_mod.sendfileRequested;
    pub const queueFile = write_mod.queueFile;
    pub const drainRequested = write_mod.drainRequested;
    pub const answerDrain = write_mod.answerDrain;
    pub const sent = write_mod.sent;
    pub const sendFile = write_mod.sendFile;
    pub const flushSession = write_mod.flushSession;
    pub const armWrite = write_mod.armWrite;
    pub const pauseRequested = write_mod.pauseRequested;
    // closing.zig
    pub const closeRequested = closing_mod.closeRequested;
    pub const closeAfterOutput = closing_mod.closeAfterOutput;
    pub const closeSession = closing_mod.closeSession;

    pub const beginShutdown = shutdown_mod.beginShutdown;
    pub const flushDone = shutdown_mod.flushDone;
    pub const closeAll = shutdown_mod.closeAll;
    pub const sendStopped = shutdown_mod.sendStopped;
    pub const gaveUpWaiting = shutdown_mod.gaveUpWaiting;

    pub const workerExited = worker_exit_mod.workerExited;
    pub const closeOrphans = worker_exit_mod.closeOrphans;
    pub const workerGone = worker_exit_mod.workerGone;

    pub const deliverRequests = http_session.deliverRequests;
    pub const responseEnded = http_session.responseEnded;
    pub const httpTimers = http_session.timers;
    pub const responseBegun = http_session.responseBegun;
    pub const httpAnswered = http_session.answered;
    pub const httpOutputWritten = http_session.outputWritten;
    pub const httpWorkerDied = http_session.workerDied;

    pub const setHeartbeat = heartbeat_mod.setHeartbeat;
    pub const heartbeat = heartbeat_mod.heartbeat;
};

/// struct linger from <sys/socket.h>.
pub const Linger = extern struct { onoff: c_int, linger: c_int };

pub fn kick(fd: i32) void {
    const one: u64 = 1;
    _ = c.write(fd, @ptrCast(&one), 8);
}

/// A raw syscall's result as a signed count: negative is -errno.
pub fn rawResult(rc: usize) isize {
    return @bitCast(rc);
}

pub fn rawErrno(rc: isize) posix.E {
    assert(rc < 0);
    return @enumFromInt(-rc);
}

/// The peer of an accepted socket. `initPosix` knows IP families only: a Unix socket's peer
/// (unnamed, for a client) keeps just its family.
pub fn remoteAddress(address: *const posix.sockaddr) std.net.Address {
    if (address.family == posix.AF.INET or address.family == posix.AF.INET6) {
        return std.net.Address.initPosix(@alignCast(address));
    }
    var other: std.net.Address = undefined;
    other.any = std.mem.zeroes(posix.sockaddr);
    other.any.family = address.family;
    return other;
}

/// A hash of the client's address (not its port), for dispatch mode 4.
pub fn ipHash(address: std.net.Address) u32 {
    return switch (address.any.family) {
        posix.AF.INET => @truncate(std.hash.Wyhash.hash(0, std.mem.asBytes(&address.in.sa.addr))),
        posix.AF.INET6 => @truncate(std.hash.Wyhash.hash(0, &address.in6.sa.addr)),
        else => 0,
    };
}

/// Wall-clock time, for the times `getClientInfo` reports.
pub fn nowNs() i64 {
    return clockNs(.REALTIME);
}

/// Monotonic time, for deadlines.
pub fn monoNs() i64 {
    return clockNs(.MONOTONIC);
}

pub fn clockNs(clock: c.clockid_t) i64 {
    var ts: c.timespec = undefined;
    _ = c.clock_gettime(clock, &ts);
    return @as(i64, ts.sec) * std.time.ns_per_s + ts.nsec;
}

pub fn setIntOption(fd: i32, level: i32, name: u32, value: c_int) void {
    _ = c.setsockopt(fd, level, name, @ptrCast(&value), @sizeOf(c_int));
}
