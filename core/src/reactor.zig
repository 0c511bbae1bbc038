//! An epoll reactor on its own native thread (BASE mode: one per worker).
//!
//! It accepts on its listen sockets, reads sessions straight into the worker's inbound ring,
//! writes what the worker queues in the outbound ring (directly from ring memory when the
//! session has no backlog, through a per-session output buffer otherwise) and closes sessions.
//! It never calls into JavaScript: the worker is woken through an eventfd doorbell only when it
//! parked, and the reactor is kicked through another eventfd only when it sleeps.
const std = @import("std");
const abi = @import("abi.zig");
const ring = @import("ring.zig");
const shm = @import("shm.zig");
const session_table = @import("session_table.zig");
const SessionTable = session_table.SessionTable;
const Session = session_table.Session;
const linux = std.os.linux;
const posix = std.posix;
const c = std.c;
const assert = std.debug.assert;
const log = std.log.scoped(.reactor);

/// The most a single read takes from a socket (one receive record).
pub const read_chunk = 64 * 1024;
/// Reads of one session per loop turn before the others get theirs.
const reads_per_turn = 4;
/// Connections accepted per listener per loop turn.
const accepts_per_turn = 64;
pub const listeners_max = 8;
const events_max = 256;
const accept_pause_ms = 1000;
/// An output buffer larger than this is freed once drained, not kept for the next burst.
pub const out_keep_bytes = 64 * 1024;

pub const poll_more: u32 = 1;

const tag_session: u64 = 0;
const session_events: u32 = linux.EPOLL.IN | linux.EPOLL.RDHUP | linux.EPOLL.ET;
const tag_listener: u64 = 1 << 32;
const tag_kick: u64 = 2 << 32;

pub const Listener = struct {
    fd: i32,
    port: u16,
    tcp_nodelay: bool,
    /// Shared with other workers' reactors (inherited from the manager): polled with
    /// EPOLLEXCLUSIVE so one connection wakes one worker.
    shared: bool = false,
    /// Edge-triggered: set when the socket signalled and has not yet been accepted to EAGAIN.
    pending: bool = false,
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

const PendingClose = struct { session_id: u32, flags: u8, errno: u32 };

pub const Reactor = struct {
    allocator: std.mem.Allocator,
    config: abi.ServerConfig,
    channel: shm.Channel,
    epoll_fd: i32,
    /// Written by the worker (and `requestShutdown`) to wake the reactor from epoll_wait.
    kick_fd: i32,
    /// Written by the reactor to wake the worker parked in `zg_server_wait`.
    wake_fd: i32,
    listeners: [listeners_max]Listener = undefined,
    listener_count: u32 = 0,
    sessions: SessionTable,
    inbound: ring.Producer,
    outbound: ring.Consumer,
    /// Sessions with unread input, in arrival order. Capacity reserved at init.
    ready: std.ArrayList(u32),
    ready_next: std.ArrayList(u32),
    /// Close records that found no room in the ring, delivered first when room returns.
    pending_closes: std.ArrayList(PendingClose),
    /// The inbound ring was full; the worker clears `producer_waiting` and kicks when it frees.
    waiting_for_room: bool = false,
    thread: ?std.Thread = null,
    started: bool = false,
    /// Where the counters go: the worker's slot in the tree's region, or (null) the channel.
    stats_block: ?*abi.Stats = null,
    shutdown_requested: u32 = 0,
    phase: Phase = .running,
    shutdown_record_sent: bool = false,
    /// Monotonic time until which accepting is paused (after EMFILE and the like), or 0.
    accept_resume_ns: i64 = 0,
    accept_pause_logged_ns: i64 = std.math.minInt(i64) / 2,
    accept_pauses: u32 = 0,
    /// Monotonic deadline of the shutdown flush.
    flush_deadline_ns: i64 = 0,
    now_ns: i64 = 0,
    /// Inline mode: events `waitIo` collected for the next `poll`.
    stash: [events_max]linux.epoll_event = undefined,
    stash_len: u32 = 0,

    pub fn init(allocator: std.mem.Allocator, config: abi.ServerConfig) !*Reactor {
        const r = try allocator.create(Reactor);
        errdefer allocator.destroy(r);
        var channel = try shm.Channel.create(config.ring_bytes);
        errdefer channel.destroy();
        var sessions = try SessionTable.initShared(allocator, config.max_connection, 0, @max(1, config.session_stride), config.reactor_id % @max(1, config.session_stride));
        errdefer sessions.deinit(allocator);
        var ready = try std.ArrayList(u32).initCapacity(allocator, config.max_connection);
        errdefer ready.deinit(allocator);
        var ready_next = try std.ArrayList(u32).initCapacity(allocator, config.max_connection);
        errdefer ready_next.deinit(allocator);
        var pending_closes = try std.ArrayList(PendingClose).initCapacity(allocator, config.max_connection);
        errdefer pending_closes.deinit(allocator);
        const epoll_fd = try posix.epoll_create1(linux.EPOLL.CLOEXEC);
        errdefer posix.close(epoll_fd);
        const kick_fd = try posix.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK);
        errdefer posix.close(kick_fd);
        const wake_fd = try posix.eventfd(0, linux.EFD.CLOEXEC);
        errdefer posix.close(wake_fd);
        var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = tag_kick } };
        try posix.epoll_ctl(epoll_fd, linux.EPOLL.CTL_ADD, kick_fd, &event);
        r.* = .{
            .allocator = allocator,
            .config = config,
            .channel = channel,
            .epoll_fd = epoll_fd,
            .kick_fd = kick_fd,
            .wake_fd = wake_fd,
            .sessions = sessions,
            .inbound = ring.Producer.init(&channel.header.in_ctl, channel.inData()),
            .outbound = ring.Consumer.init(&channel.header.out_ctl, channel.outData()),
            .ready = ready,
            .ready_next = ready_next,
            .pending_closes = pending_closes,
        };
        return r;
    }

    /// Joins the thread (if it ran) and frees everything. Sessions still open are closed.
    pub fn deinit(r: *Reactor) void {
        if (r.thread) |t| t.join();
        for (r.sessions.slots) |*s| {
            if (s.isLive()) posix.close(s.fd);
        }
        for (r.listeners[0..r.listener_count]) |l| {
            if (l.fd >= 0) posix.close(l.fd);
        }
        r.sessions.deinit(r.allocator);
        r.ready.deinit(r.allocator);
        r.ready_next.deinit(r.allocator);
        r.pending_closes.deinit(r.allocator);
        posix.close(r.epoll_fd);
        posix.close(r.kick_fd);
        posix.close(r.wake_fd);
        r.channel.destroy();
        const allocator = r.allocator;
        allocator.destroy(r);
    }

    pub fn addListener(r: *Reactor, listener: Listener) !void {
        if (r.listener_count == listeners_max) return error.LimitReached;
        const index = r.listener_count;
        const exclusive: u32 = if (listener.shared) linux.EPOLL.EXCLUSIVE else 0;
        var event: linux.epoll_event = .{ .events = linux.EPOLL.IN | linux.EPOLL.ET | exclusive, .data = .{ .u64 = tag_listener | index } };
        try posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_ADD, listener.fd, &event);
        r.listeners[index] = listener;
        r.listeners[index].pending = true;
        r.listener_count += 1;
    }

    pub fn start(r: *Reactor, inline_mode: bool) !void {
        assert(!r.started);
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
        return r.stats_block orelse &r.channel.header.stats;
    }

    fn count(r: *Reactor, comptime field: []const u8, delta: u64) void {
        _ = @atomicRmw(u64, &@field(r.stats(), field), .Add, delta, .monotonic);
    }

    fn uncount(r: *Reactor, comptime field: []const u8, delta: u64) void {
        _ = @atomicRmw(u64, &@field(r.stats(), field), .Sub, delta, .monotonic);
    }

    /// The reactor thread: work, then sleep in epoll_wait until a socket, the worker's kick
    /// or a timeout wakes it.
    fn run(r: *Reactor) void {
        while (true) {
            r.work();
            if (r.phase == .stopped) break;
            var timeout = r.sleepMs(-1);
            if (timeout != 0 and !r.outbound.prepareParking()) timeout = 0;
            r.gather(timeout);
            r.outbound.unpark();
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
        if (timeout_ms == 0 or !r.outbound.prepareParking()) return;
        const rc = c.epoll_wait(r.epoll_fd, &r.stash, events_max, timeout_ms);
        r.outbound.unpark();
        r.stash_len = if (rc > 0) @intCast(rc) else 0;
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

    /// Everything but waiting: write what the worker queued, accept, read, advance shutdown,
    /// publish.
    fn work(r: *Reactor) void {
        r.now_ns = nowNs();
        r.consumeOutbound();
        if (r.phase == .running and @atomicLoad(u32, &r.shutdown_requested, .acquire) == 1) r.beginShutdown();
        r.flushPendingCloses();
        switch (r.phase) {
            .running => {
                r.acceptPending();
                r.readReady();
            },
            .draining => if (!r.shutdown_record_sent) {
                r.shutdown_record_sent = r.inbound.push(.shutdown, 0, r.reactorId(), 0, 0, "");
                if (!r.shutdown_record_sent) r.noRoom(0);
            },
            .flushing, .closing, .stopped => {},
        }
        if (r.phase == .flushing and r.flushDone()) r.closeAll();
        if (r.phase == .closing) {
            // `stopped` goes last; without room, the worker's kick brings us back here.
            if (r.pending_closes.items.len == 0 and r.inbound.push(.stopped, 0, r.reactorId(), 0, 0, "")) {
                r.phase = .stopped;
            } else r.noRoom(0);
        }
        r.publish();
    }

    fn reactorId(r: *const Reactor) i16 {
        return @intCast(r.config.reactor_id);
    }

    /// Work that needs no event to go on: epoll must not block while there is some.
    fn hasWork(r: *Reactor) bool {
        if (r.waiting_for_room) return false;
        if (r.pending_closes.items.len > 0) return true;
        switch (r.phase) {
            .running => {
                if (r.ready.items.len > 0) return true;
                for (r.listeners[0..r.listener_count]) |l| if (l.pending and l.fd >= 0) return true;
                return false;
            },
            .draining => return !r.shutdown_record_sent,
            .closing => return true,
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
        if (r.phase == .flushing and (timeout < 0 or timeout > 10)) timeout = 10;
        return timeout;
    }

    fn onEvent(r: *Reactor, event: linux.epoll_event) void {
        const tag = event.data.u64 & ~@as(u64, 0xffff_ffff);
        const low: u32 = @truncate(event.data.u64);
        switch (tag) {
            tag_kick => {
                var value: u64 = 0;
                _ = c.read(r.kick_fd, @ptrCast(&value), 8);
                r.waiting_for_room = false;
            },
            tag_listener => r.listeners[low].pending = true,
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

    /// Publishes inbound records and rings the worker's doorbell if it parked.
    fn publish(r: *Reactor) void {
        if (r.inbound.publish()) kick(r.wake_fd);
    }

    fn noRoom(r: *Reactor, payload_max: u32) void {
        r.publish();
        if (r.inbound.prepareWait(payload_max)) r.waiting_for_room = true;
    }

    // --- accept -------------------------------------------------------------------------

    fn acceptPending(r: *Reactor) void {
        for (r.listeners[0..r.listener_count], 0..) |*l, index| {
            if (!l.pending or l.fd < 0) continue;
            var accepted: u32 = 0;
            while (accepted < accepts_per_turn) : (accepted += 1) {
                // Close records still waiting for ring room go first; this also keeps their
                // list within `max_connection` (one per session that existed).
                if (r.waiting_for_room or r.pending_closes.items.len > 0) return;
                if (r.inbound.reserve(0) == null) return r.noRoom(0);
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
                r.addSession(fd, @intCast(index), l.*, @ptrCast(&address));
            }
        }
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
        const s = r.sessions.allocate() orelse {
            r.count("refused_count", 1);
            log.warn("connection refused: max_connection ({d}) sessions are open", .{r.config.max_connection});
            posix.close(fd);
            return;
        };
        s.fd = fd;
        s.listener = listener_index;
        s.remote = std.net.Address.initPosix(@alignCast(address));
        s.connect_time_ns = r.now_ns;
        if (l.tcp_nodelay) setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.NODELAY, 1);
        var event: linux.epoll_event = .{ .events = session_events, .data = .{ .u64 = tag_session | s.id } };
        posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_ADD, fd, &event) catch |err| {
            log.err("session {d}: epoll_ctl failed: {s}", .{ s.id, @errorName(err) });
            posix.close(fd);
            r.sessions.release(r.allocator, s);
            return;
        };
        r.count("accept_count", 1);
        r.count("connection_num", 1);
        @atomicStore(u64, &r.stats().session_round, s.id, .monotonic);
        assert(r.inbound.push(.connect, 0, r.reactorId(), s.id, listener_index, ""));
        r.count("dispatch_count", 1);
        // Data may have arrived with the connection.
        r.markReady(s);
    }

    fn markReady(r: *Reactor, s: *Session) void {
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
        var index: usize = 0;
        while (index < r.ready.items.len) : (index += 1) {
            const slot = r.ready.items[index];
            const s = &r.sessions.slots[slot];
            assert(s.on_ready_list);
            if (s.state != .open) {
                // Closed, closing or past EOF since it was listed: nothing more to read.
                s.on_ready_list = false;
                continue;
            }
            if (r.waiting_for_room or !r.readSession(s)) {
                r.ready_next.appendAssumeCapacity(slot);
            } else {
                s.on_ready_list = false;
            }
        }
        r.ready.clearRetainingCapacity();
        std.mem.swap(std.ArrayList(u32), &r.ready, &r.ready_next);
    }

    /// Reads until EAGAIN, EOF, an error, or the turn's budget. True when done with the session
    /// for now; false when it must stay on the ready list.
    fn readSession(r: *Reactor, s: *Session) bool {
        assert(s.state == .open);
        var reads: u32 = 0;
        while (reads < reads_per_turn) : (reads += 1) {
            const room = r.inbound.reserve(read_chunk) orelse {
                r.noRoom(read_chunk);
                return false;
            };
            // Raw syscalls on the per-message path: libc's wrappers add cancellation-point
            // bookkeeping that showed in profiles (about 1% of the server's CPU).
            const rc = rawResult(linux.read(s.fd, room.ptr, room.len));
            if (rc > 0) {
                const n: u32 = @intCast(rc);
                r.inbound.commit(.receive, 0, r.reactorId(), s.id, 0, n);
                s.recv_bytes += n;
                s.last_recv_time_ns = r.now_ns;
                s.last_dispatch_time_ns = r.now_ns;
                r.count("total_recv_bytes", n);
                r.count("dispatch_count", 1);
                if (n < room.len and !s.peer_hup) return true;
                continue;
            }
            if (rc == 0) {
                r.peerClosed(s);
                return true;
            }
            switch (rawErrno(rc)) {
                .AGAIN => return true,
                .INTR => continue,
                else => |e| {
                    r.closeSession(s, abi.close_flag_error, @intFromEnum(e), true);
                    return true;
                },
            }
        }
        return false;
    }

    /// EOF from the peer: tell the worker, keep the socket for the output it still queues.
    fn peerClosed(r: *Reactor, s: *Session) void {
        @atomicStore(session_table.State, &s.state, .peer_closed, .release);
        r.notifyClose(s.id, abi.close_flag_peer_eof, 0);
        s.close_notified = true;
    }

    /// Swoole reports -1 as the reactor of a close the server started.
    fn closeReactorId(r: *const Reactor, flags: u8) i16 {
        return if (flags & abi.close_flag_server != 0) -1 else r.reactorId();
    }

    fn notifyClose(r: *Reactor, session_id: u32, flags: u8, errno: u32) void {
        const reactor_id = r.closeReactorId(flags);
        if (r.pending_closes.items.len == 0 and r.inbound.push(.close, flags, reactor_id, session_id, errno, "")) {
            r.count("dispatch_count", 1);
            return;
        }
        r.pending_closes.appendAssumeCapacity(.{ .session_id = session_id, .flags = flags, .errno = errno });
    }

    fn flushPendingCloses(r: *Reactor) void {
        var index: usize = 0;
        while (index < r.pending_closes.items.len) : (index += 1) {
            const p = r.pending_closes.items[index];
            const reactor_id = r.closeReactorId(p.flags);
            if (!r.inbound.push(.close, p.flags, reactor_id, p.session_id, p.errno, "")) break;
            r.count("dispatch_count", 1);
        }
        const left = r.pending_closes.items.len - index;
        std.mem.copyForwards(PendingClose, r.pending_closes.items[0..left], r.pending_closes.items[index..]);
        r.pending_closes.shrinkRetainingCapacity(left);
        if (left > 0) r.noRoom(0);
    }

    // --- outbound records -----------------------------------------------------------------

    fn consumeOutbound(r: *Reactor) void {
        while (r.outbound.peek()) |record| {
            const header = record.header;
            switch (@as(abi.RecordType, @enumFromInt(header.type))) {
                .send => r.sendTo(header.session_id, record.payload),
                .close_request => r.closeRequested(header.session_id, header.aux == 1),
                .shutdown_ack => if (r.phase == .draining) {
                    r.phase = .flushing;
                    r.flush_deadline_ns = monoNs() + @as(i64, r.config.max_wait_time_ms) * std.time.ns_per_ms;
                },
                else => std.debug.panic("unexpected outbound record type {d}", .{header.type}),
            }
            r.outbound.advance(record);
        }
        // Room freed: wake the worker if it waits to send more.
        if (r.outbound.release()) kick(r.wake_fd);
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
        if (s.out.items.len == s.out_sent) {
            written = r.writeSome(s, data) orelse return;
        }
        if (written < data.len) {
            const rest = data[written..];
            s.out.appendSlice(r.allocator, rest) catch {
                log.err("session {d}: out of memory queueing {d} bytes; closing it", .{ s.id, rest.len });
                r.closeSession(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.NOMEM), true);
                return;
            };
            _ = @atomicRmw(u64, &s.out_queued, .Add, rest.len, .monotonic);
            r.count("send_queued_bytes", rest.len);
            if (!s.want_write) r.armWrite(s, true);
        }
    }

    /// One send(2); the bytes written, or null when the session was closed by an error.
    fn writeSome(r: *Reactor, s: *Session, data: []const u8) ?usize {
        while (true) {
            const rc = rawResult(linux.sendto(s.fd, data.ptr, data.len, linux.MSG.NOSIGNAL | linux.MSG.DONTWAIT, null, 0));
            if (rc >= 0) {
                const n: usize = @intCast(rc);
                s.send_bytes += n;
                s.last_send_time_ns = r.now_ns;
                r.count("total_send_bytes", n);
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

    fn flushSession(r: *Reactor, s: *Session) void {
        while (s.out_sent < s.out.items.len) {
            const n = r.writeSome(s, s.out.items[s.out_sent..]) orelse return;
            if (n == 0) return;
            s.out_sent += n;
            _ = @atomicRmw(u64, &s.out_queued, .Sub, n, .monotonic);
            r.uncount("send_queued_bytes", n);
        }
        s.out.clearRetainingCapacity();
        s.out_sent = 0;
        if (s.out.capacity > out_keep_bytes) s.out.clearAndFree(r.allocator);
        if (s.want_write) r.armWrite(s, false);
        if (s.state == .closing) r.closeSession(s, abi.close_flag_server, 0, false);
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

    fn closeRequested(r: *Reactor, session_id: u32, reset: bool) void {
        const s = r.sessions.get(session_id) orelse return;
        if (reset) return r.closeSession(s, abi.close_flag_server, 0, true);
        if (s.out_sent < s.out.items.len) {
            @atomicStore(session_table.State, &s.state, .closing, .release);
            return;
        }
        r.closeSession(s, abi.close_flag_server, 0, false);
    }

    /// Closes the socket, frees the slot and (unless it was told already) tells the worker.
    /// `abort` resets the connection (RST) and drops queued output.
    fn closeSession(r: *Reactor, s: *Session, flags: u8, errno: u32, abort: bool) void {
        if (abort) {
            const linger = Linger{ .onoff = 1, .linger = 0 };
            _ = c.setsockopt(s.fd, linux.SOL.SOCKET, linux.SO.LINGER, @ptrCast(&linger), @sizeOf(Linger));
            r.count("abort_count", 1);
        }
        posix.close(s.fd);
        r.count("close_count", 1);
        r.uncount("connection_num", 1);
        const queued = s.out.items.len - s.out_sent;
        if (queued > 0) r.uncount("send_queued_bytes", queued);
        if (!s.close_notified) r.notifyClose(s.id, flags, errno);
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
    }

    fn flushDone(r: *Reactor) bool {
        if (monoNs() >= r.flush_deadline_ns) {
            log.warn("shutdown: output still queued after max_wait_time; closing anyway", .{});
            return true;
        }
        for (r.sessions.slots) |*s| {
            if (s.isLive() and s.out_sent < s.out.items.len) return false;
        }
        return true;
    }

    /// Closes every session; their close records go out (waiting for room if need be) before
    /// `stopped`.
    fn closeAll(r: *Reactor) void {
        for (r.sessions.slots) |*s| {
            if (s.isLive()) r.closeSession(s, abi.close_flag_server, 0, false);
        }
        r.phase = .closing;
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
