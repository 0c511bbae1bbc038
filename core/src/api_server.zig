//! The C API of a reactor handle (`*Reactor`): a one-worker server or BASE worker, its
//! listeners, framing, heartbeat, drive modes, and lookups of its own sessions.
const std = @import("std");
const abi = @import("abi.zig");
const api = @import("api.zig");
const api_os = @import("api_os.zig");
const api_region = @import("api_region.zig");
const reactor = @import("reactor.zig");
const listen = @import("listen.zig");
const shm = @import("shm.zig");
const session_table = @import("session_table.zig");
const carry = @import("carry.zig");
const SessionTable = session_table.SessionTable;
const Reactor = reactor.Reactor;
const Status = abi.Status;
const allocator = api.allocator;
const statusOf = api.statusOf;

export fn zg_server_create(config: *const abi.ServerConfig, out_handle: *?*Reactor) Status {
    api.last_errno = 0;
    var cfg = config.*;
    if (cfg.log_level > 3) return .invalid_argument;
    api.log_level_min.store(@intCast(cfg.log_level), .monotonic);
    if (cfg.max_connection == 0) cfg.max_connection = 10_000;
    if (cfg.ring_bytes == 0) cfg.ring_bytes = 4 * 1024 * 1024;
    if (cfg.socket_buffer_size == 0) cfg.socket_buffer_size = 2 * 1024 * 1024;
    if (cfg.max_wait_time_ms == 0) cfg.max_wait_time_ms = 3000;
    if (cfg.max_connection > 1 << 20) return .invalid_argument;
    if (!std.math.isPowerOfTwo(cfg.ring_bytes) or cfg.ring_bytes < 2 * reactor.read_chunk * 2) return .invalid_argument;
    out_handle.* = Reactor.init(allocator, cfg) catch |err| return statusOf(err);
    return .ok;
}

export fn zg_server_listen(r: *Reactor, host_ptr: [*]const u8, host_len: usize, port: u32, backlog: u32, flags: u32, out_port: *u32) Status {
    var fd: i32 = -1;
    const status = api_os.zg_listen(host_ptr, host_len, port, backlog, flags, &fd, out_port);
    if (status != .ok) return status;
    r.addListener(.{ .fd = fd, .port = @intCast(out_port.*), .tcp_nodelay = flags & abi.listen_flag_tcp_nodelay != 0 }) catch |err| {
        std.posix.close(fd);
        return statusOf(err);
    };
    return .ok;
}

/// The channel's shared memory, for TypeScript to view its rings and counters.
export fn zg_server_channel(r: *Reactor, out_ptr: *[*]u8, out_len: *usize) Status {
    const channel = r.channel orelse return .bad_state;
    out_ptr.* = channel.memory.ptr;
    out_len.* = channel.memory.len;
    return .ok;
}

/// Starts serving: with `inline_mode` 0 on a reactor thread; with 1 the JS thread drives the
/// reactor through `zg_server_poll` and `zg_server_wait_io`.
export fn zg_server_start(r: *Reactor, inline_mode: u32) Status {
    if (r.thread != null or r.started) return .bad_state;
    // (A successor that carries nothing lets go of what its predecessor carried to it.)
    if (r.region_header != null and !r.carry_done) {
        carry.carryIn(r, -1);
        r.carry_done = true;
    }
    r.start(inline_mode == 1) catch |err| return statusOf(err);
    return .ok;
}

export fn zg_server_shutdown(r: *Reactor) Status {
    r.requestShutdown();
    return .ok;
}

/// Blocks until the reactor rings the worker's doorbell. TypeScript calls it as a
/// `nonblocking` symbol, on a thread of Deno's blocking pool, only after parking.
export fn zg_server_wait(r: *Reactor) Status {
    return api.waitEventfd(r.doorbell_fd);
}

/// Inline mode: one reactor turn on the calling (JS) thread. Returns `reactor.poll_*` flags.
export fn zg_server_poll(r: *Reactor) u32 {
    return r.poll();
}

/// Inline mode: sleep until a socket or a kick is ready, or the reactor's next timed duty
/// (TypeScript calls it `nonblocking`, only when `zg_server_poll` found nothing to do).
export fn zg_server_wait_io(r: *Reactor) Status {
    r.waitIo();
    return .ok;
}

/// Returns at once. TypeScript calls it `nonblocking` to yield to Deno's event loop (timers,
/// I/O) for one turn while events keep coming, without the timer clamp of `setTimeout`.
export fn zg_yield() Status {
    return .ok;
}

/// The eventfd that wakes this server's JavaScript when it waits: the reactor's kick fd in
/// inline mode (its epoll set holds it), the worker's doorbell with a reactor thread.
export fn zg_server_wait_fd(r: *Reactor, inline_mode: u32) i32 {
    return if (inline_mode == 1) r.kick_fd else r.doorbell_fd;
}

/// The fd of listening socket `index` of a server (for `zg_listen_options`), or -1.
export fn zg_server_listen_fd(r: *Reactor, index: u32) i32 {
    if (index >= r.listener_count) return -1;
    return r.listeners[index].fd;
}

/// Joins the reactor thread and frees the server. The caller has seen the `stopped` record
/// (or never started the server).
export fn zg_server_destroy(r: *Reactor) Status {
    r.deinit();
    return .ok;
}

/// Before start: count into worker `worker_id`'s slot of the region at `region`.
export fn zg_server_use_region(r: *Reactor, region: [*]u8, worker_id: u32) Status {
    if (r.started) return .bad_state;
    const memory = api_region.regionMemory(region) orelse return .invalid_argument;
    const slot = shm.Region.slot(memory, worker_id) orelse return .invalid_argument;
    const header = shm.Region.headerOf(memory);
    if (header.reactor_num != 0 or header.max_connection != r.sessions.slots.len) return .invalid_argument;
    r.stats_block = &slot.stats;
    // The sessions move into the region, where every worker of the tree can look them up. A
    // respawned worker finds its predecessor's table: those sockets died with it, so the slots
    // are cleared (but those it carried over, for `zg_server_carry`), and ids go on from the
    // last one it handed out (never reused).
    const slots = shm.Region.tableSlots(memory, worker_id);
    SessionTable.clearShared(slots, true);
    // (None handed out yet: from `start_session_id`, as the table was set up.)
    const last: u32 = @truncate(@atomicLoad(u64, &slot.stats.session_round, .monotonic));
    const round = if (last != 0) last else r.sessions.round;
    r.sessions.deinit(allocator);
    r.sessions = SessionTable.initIn(slots, round, header.worker_num, worker_id);
    // The topic counts too: the tree's, this worker's row (its predecessor's subscribers are
    // gone with their sockets).
    const counts = shm.Region.topicCounts(memory);
    counts.clearRow(worker_id);
    r.pubsub.useShared(counts, worker_id);
    r.region_header = header;
    return .ok;
}

/// Before start, in a BASE worker of a tree, after `zg_server_use_region` and the framing:
/// takes up the WebSockets its predecessor sent on `inbox` (-1: none), and sends its own to
/// its successor on `outbox` when it leaves while the tree runs (-1: never). carry.zig.
export fn zg_server_carry(r: *Reactor, outbox: i32, inbox: i32) Status {
    if (r.started or r.carry_done) return .bad_state;
    carry.carryIn(r, inbox);
    r.carry_done = true;
    r.carry_out = outbox;
    return .ok;
}

/// A worker takes over a listening socket its manager passed down.
export fn zg_server_adopt(r: *Reactor, fd: i32, flags: u32, out_port: *u32) Status {
    api.last_errno = 0;
    const bound = listen.adopt(fd, &api.last_errno) catch |err| return statusOf(err);
    r.addListener(.{ .fd = fd, .port = bound.port, .tcp_nodelay = flags & abi.listen_flag_tcp_nodelay != 0, .shared = true }) catch |err| return statusOf(err);
    out_port.* = bound.port;
    return .ok;
}

/// 0 gone, 1 open, 2 peer closed (EOF seen), 3 closing; plus 0x100 when the session's output
/// buffer holds `socket_buffer_size` bytes or more.
export fn zg_session_state(r: *Reactor, session_id: u32, unsent: u32) u32 {
    return api_region.sessionState(&r.sessions, session_id, r.config.socket_buffer_size, unsent);
}

export fn zg_client_info(r: *Reactor, session_id: u32, out: *abi.ClientInfo) Status {
    return api_region.clientInfo(&r.sessions, session_id, r.config.reactor_id, out);
}

/// Before start, in a tree: the worker's doorbell becomes the reactor's way to wake it, and its
/// mailbox peers ring it too (the inline reactor polls it with the sockets).
export fn zg_server_use_doorbell(r: *Reactor, fd: i32) Status {
    if (r.started) return .bad_state;
    r.useDoorbell(fd);
    return .ok;
}
