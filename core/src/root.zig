//! libziggurat: the C ABI that src/_ffi/symbols.ts declares. Every function returns an
//! `abi.Status` (or a plain value where it cannot fail); errno of a failed OS call is kept per
//! thread for `zg_last_errno`. The work happens in the modules named below.
const std = @import("std");
const abi = @import("abi.zig");
const reactor = @import("reactor.zig");
const listen = @import("listen.zig");
const spawn = @import("spawn.zig");
const shm = @import("shm.zig");
const process = @import("process.zig");
const signals = @import("signals.zig");
const session_table = @import("session_table.zig");
const files = @import("files.zig");
const users = @import("users.zig");
const errno_names = @import("errno.zig");
const SessionTable = session_table.SessionTable;
const Reactor = reactor.Reactor;
const Status = abi.Status;

const allocator = std.heap.c_allocator;
threadlocal var last_errno: i32 = 0;

/// The core logs through std.log to stderr, filtered by the least severe level any server of
/// this process asked for (`ServerConfig.log_level`: 0 debug, 1 info, 2 warning, 3 error).
pub const std_options: std.Options = .{ .log_level = .debug, .logFn = logFn };
var log_level_min = std.atomic.Value(u8).init(1);

fn logFn(comptime level: std.log.Level, comptime scope: @Type(.enum_literal), comptime format: []const u8, args: anytype) void {
    const rank: u8 = switch (level) {
        .debug => 0,
        .info => 1,
        .warn => 2,
        .err => 3,
    };
    if (rank < log_level_min.load(.monotonic)) return;
    std.log.defaultLog(level, scope, format, args);
}

pub const version: u32 = 1;

export fn zg_version() u32 {
    return version;
}

export fn zg_last_errno() i32 {
    return last_errno;
}

export fn zg_layout(out: *[abi.layout_len]u32) Status {
    out.* = abi.layout();
    return .ok;
}

/// `abi.describe`'s table into `out`; its length, or 0 when `cap` is too small.
export fn zg_describe(out: [*]u8, cap: usize) usize {
    var w: std.Io.Writer = .fixed(out[0..cap]);
    abi.describe(&w) catch return 0;
    return w.buffered().len;
}

export fn zg_server_create(config: *const abi.ServerConfig, out_handle: *?*Reactor) Status {
    last_errno = 0;
    var cfg = config.*;
    if (cfg.log_level > 3) return .invalid_argument;
    log_level_min.store(@intCast(cfg.log_level), .monotonic);
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
    const status = zg_listen(host_ptr, host_len, port, backlog, flags, &fd, out_port);
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
    var value: u64 = 0;
    while (true) {
        const rc = std.c.read(r.wake_fd, @ptrCast(&value), 8);
        if (rc == 8) return .ok;
        if (std.posix.errno(rc) != .INTR) {
            last_errno = @intFromEnum(std.posix.errno(rc));
            return .os_error;
        }
    }
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
/// inline mode (its epoll set holds it), the worker's wake fd with a reactor thread.
export fn zg_server_wake_fd(r: *Reactor, inline_mode: u32) i32 {
    return if (inline_mode == 1) r.kick_fd else r.wake_fd;
}

/// Before start: how the server's sessions' bytes become messages.
export fn zg_server_framing(r: *Reactor, config: *const abi.FramingConfig) Status {
    r.setFraming(config.*) catch |err| return switch (err) {
        error.BadState => .bad_state,
        else => .invalid_argument,
    };
    return .ok;
}

/// Options of a listening socket: `tcp_defer_accept` (seconds; accept only once data came) and
/// `tcp_fastopen` (the SYN-data queue length). 0 leaves one alone.
export fn zg_listen_options(fd: i32, defer_accept_s: u32, fastopen_queue: u32) Status {
    last_errno = 0;
    const tcp = std.os.linux.IPPROTO.TCP;
    if (defer_accept_s > 0) std.posix.setsockopt(fd, tcp, std.os.linux.TCP.DEFER_ACCEPT, std.mem.asBytes(&@as(c_int, @intCast(defer_accept_s)))) catch |err| return statusOf(err);
    if (fastopen_queue > 0) std.posix.setsockopt(fd, tcp, std.os.linux.TCP.FASTOPEN, std.mem.asBytes(&@as(c_int, @intCast(fastopen_queue)))) catch |err| return statusOf(err);
    return .ok;
}

/// The fd of listening socket `index` of a server (for `zg_listen_options`), or -1.
export fn zg_server_listen_fd(r: *Reactor, index: u32) i32 {
    if (index >= r.listener_count) return -1;
    return r.listeners[index].fd;
}

/// Before start: the heartbeat (`interval_ms` 0: off; `idle_ms` 0: twice the interval).
export fn zg_server_heartbeat(r: *Reactor, interval_ms: u32, idle_ms: u32) Status {
    r.setHeartbeat(interval_ms, idle_ms) catch return .bad_state;
    return .ok;
}

export fn zg_process_heartbeat(p: *process.Process, interval_ms: u32, idle_ms: u32) Status {
    for (p.reactors) |r| r.setHeartbeat(interval_ms, idle_ms) catch return .bad_state;
    return .ok;
}

/// `protect(sessionId, on)`: the heartbeat leaves the session alone. From a one-worker
/// server's reactor, or any process of a tree through the region.
export fn zg_session_protect(r: ?*Reactor, region: ?[*]u8, session_id: u32, on: u32) Status {
    var table: SessionTable = undefined;
    if (region) |ptr| {
        const found = regionTable(ptr, session_id) orelse return .not_found;
        table = found.table;
    } else if (r) |reactor_| {
        table = reactor_.sessions;
    } else return .invalid_argument;
    if (table.stateOf(session_id) == .free) return .not_found;
    const s = &table.slots[table.slotIndex(session_id)];
    @atomicStore(u8, &s.protected, @intFromBool(on != 0), .release);
    if (@atomicLoad(u32, &s.id, .acquire) != session_id) return .not_found;
    return .ok;
}

/// Before start: framing of listener `index` alone (a port with settings of its own).
export fn zg_server_port_framing(r: *Reactor, index: u32, config: *const abi.FramingConfig) Status {
    r.setPortFraming(index, config.*) catch |err| return switch (err) {
        error.BadState => .bad_state,
        else => .invalid_argument,
    };
    return .ok;
}

export fn zg_process_port_framing(p: *process.Process, index: u32, config: *const abi.FramingConfig) Status {
    for (p.reactors) |r| {
        r.setPortFraming(index, config.*) catch |err| return switch (err) {
            error.BadState => .bad_state,
            else => .invalid_argument,
        };
    }
    return .ok;
}

/// PROCESS mode, before start: one more port (the caller keeps `listen_fd`).
export fn zg_process_add_listener(p: *process.Process, listen_fd: i32, port: u32, flags: u32) Status {
    last_errno = 0;
    if (port > 65535) return .invalid_argument;
    p.addListener(listen_fd, @intCast(port), flags & abi.listen_flag_tcp_nodelay != 0) catch |err| return statusOf(err);
    return .ok;
}

/// PROCESS mode, before start: the same for every reactor thread.
export fn zg_process_framing(p: *process.Process, config: *const abi.FramingConfig) Status {
    for (p.reactors) |r| {
        r.setFraming(config.*) catch |err| return switch (err) {
            error.BadState => .bad_state,
            else => .invalid_argument,
        };
    }
    return .ok;
}

/// Wakes the reactor thread (it sleeps, or waits for ring room).
export fn zg_server_kick(r: *Reactor) Status {
    reactor.kick(r.kick_fd);
    return .ok;
}

/// Joins the reactor thread and frees the server. The caller has seen the `stopped` record
/// (or never started the server).
export fn zg_server_destroy(r: *Reactor) Status {
    r.deinit();
    return .ok;
}

/// A listening TCP socket for the manager to hand to its workers (close-on-exec; passed on
/// explicitly by `zg_supervisor_spawn`).
export fn zg_listen(host_ptr: [*]const u8, host_len: usize, port: u32, backlog: u32, flags: u32, out_fd: *i32, out_port: *u32) Status {
    last_errno = 0;
    if (port > 65535 or backlog == 0) return .invalid_argument;
    const bound = listen.tcp(host_ptr[0..host_len], @intCast(port), @intCast(@min(backlog, 65535)), flags, &last_errno) catch |err| return statusOf(err);
    out_fd.* = bound.fd;
    out_port.* = bound.port;
    return .ok;
}

export fn zg_close_fd(fd: i32) Status {
    std.posix.close(fd);
    return .ok;
}

/// Creates the tree's shared region (manager). It stays mapped for the life of the process.
/// `reactor_num` > 0 makes a PROCESS-mode region (rings and session tables for the master's
/// reactor threads); 0 a BASE-mode one (a session table per worker). Both have the worker table
/// and the mailboxes.
export fn zg_region_create(shape: *const abi.RegionShape, manager_pid: i32, out_fd: *i32, out_ptr: *[*]u8, out_len: *usize) Status {
    last_errno = 0;
    const region = shm.Region.create(manager_pid, shape.*) catch |err| return statusOf(err);
    out_fd.* = region.fd;
    out_ptr.* = region.memory.ptr;
    out_len.* = region.memory.len;
    return .ok;
}

/// Maps the region a worker inherited. It stays mapped for the life of the process.
export fn zg_region_map(fd: i32, out_ptr: *[*]u8, out_len: *usize) Status {
    last_errno = 0;
    const memory = shm.Region.map(fd) catch |err| return statusOf(err);
    out_ptr.* = memory.ptr;
    out_len.* = memory.len;
    return .ok;
}

/// Before start: count into worker `worker_id`'s slot of the region at `region`.
export fn zg_server_use_region(r: *Reactor, region: [*]u8, worker_id: u32) Status {
    if (r.started) return .bad_state;
    const memory = regionMemory(region) orelse return .invalid_argument;
    const slot = shm.Region.slot(memory, worker_id) orelse return .invalid_argument;
    const header = shm.Region.headerOf(memory);
    if (header.reactor_num != 0 or header.max_connection != r.sessions.slots.len) return .invalid_argument;
    r.stats_block = &slot.stats;
    // The sessions move into the region, where every worker of the tree can look them up. A
    // respawned worker finds its predecessor's table: those sockets died with it, so the slots
    // are cleared, and ids go on from the last one it handed out (never reused).
    const slots = shm.Region.tableSlots(memory, worker_id);
    SessionTable.clearShared(slots);
    // (None handed out yet: from `start_session_id`, as the table was set up.)
    const last: u32 = @truncate(@atomicLoad(u64, &slot.stats.session_round, .monotonic));
    const round = if (last != 0) last else r.sessions.round;
    r.sessions.deinit(allocator);
    r.sessions = SessionTable.initIn(slots, round, header.worker_num, worker_id);
    return .ok;
}

/// Copies this process's command line (`/proc/self/cmdline`: NUL-terminated arguments) into
/// `out`; `out_len` gets its length. `limit_reached` when `out` is too small. (Deno asks for
/// --allow-all to read /proc/self; the FFI permission is already that strong.)
export fn zg_own_cmdline(out: [*]u8, out_cap: usize, out_len: *usize) Status {
    last_errno = 0;
    const file = std.fs.openFileAbsolute("/proc/self/cmdline", .{}) catch return .os_error;
    defer file.close();
    const n = file.readAll(out[0..out_cap]) catch return .os_error;
    if (n == out_cap) return .limit_reached;
    out_len.* = n;
    return .ok;
}

/// A worker takes over a listening socket its manager passed down.
export fn zg_server_adopt(r: *Reactor, fd: i32, flags: u32, out_port: *u32) Status {
    last_errno = 0;
    const bound = listen.adopt(fd, &last_errno) catch |err| return statusOf(err);
    r.addListener(.{ .fd = fd, .port = bound.port, .tcp_nodelay = flags & abi.listen_flag_tcp_nodelay != 0, .shared = true }) catch |err| return statusOf(err);
    out_port.* = bound.port;
    return .ok;
}

export fn zg_supervisor_create(out_handle: *?*spawn.Supervisor) Status {
    out_handle.* = spawn.Supervisor.create(allocator) catch |err| return statusOf(err);
    return .ok;
}

export fn zg_supervisor_destroy(s: *spawn.Supervisor) Status {
    s.destroy(allocator);
    return .ok;
}

/// Spawns a child under `slot`. `argv` and `env` are NUL-terminated strings back to back
/// (argv[0] is the executable's path); the child gets `fds[i]` as fd 3 + i and no other fd
/// beyond stdin, stdout and stderr.
export fn zg_supervisor_spawn(s: *spawn.Supervisor, slot: u32, argv_ptr: [*]const u8, argv_len: usize, env_ptr: [*]const u8, env_len: usize, fds_ptr: [*]const i32, fds_len: u32, out_pid: *i32) Status {
    last_errno = 0;
    const command = Command.parse(argv_ptr[0..argv_len], env_ptr[0..env_len]) orelse return .invalid_argument;
    defer command.free();
    out_pid.* = s.spawn(slot, command.argv.ptr, command.env.ptr, fds_ptr[0..fds_len], &last_errno) catch |err| switch (err) {
        error.BadState => return .bad_state,
        error.InvalidArgument => return .invalid_argument,
        error.OutOfMemory => return .out_of_memory,
        error.SpawnFailed => return .os_error,
    };
    return .ok;
}

/// argv and envp for posix_spawn, from NUL-terminated strings back to back.
const Command = struct {
    argv: [:null]?[*:0]const u8,
    env: [:null]?[*:0]const u8,

    /// Null when out of memory or `argv` is empty.
    fn parse(argv_bytes: []const u8, env_bytes: []const u8) ?Command {
        const argv = splitStrings(argv_bytes) catch return null;
        const env = splitStrings(env_bytes) catch {
            allocator.free(argv);
            return null;
        };
        const command: Command = .{ .argv = argv, .env = env };
        if (argv.len == 0) {
            command.free();
            return null;
        }
        return command;
    }

    fn free(command: Command) void {
        allocator.free(command.argv);
        allocator.free(command.env);
    }
};

/// Pointers to each NUL-terminated string in `bytes`, null-terminated, for argv/envp.
fn splitStrings(bytes: []const u8) ![:null]?[*:0]const u8 {
    var count: usize = 0;
    for (bytes) |b| count += @intFromBool(b == 0);
    const list = try allocator.allocSentinel(?[*:0]const u8, count, null);
    var start: usize = 0;
    var i: usize = 0;
    for (bytes, 0..) |b, at| {
        if (b != 0) continue;
        list[i] = @ptrCast(bytes[start..at :0].ptr);
        i += 1;
        start = at + 1;
    }
    return list;
}

/// Blocks (TypeScript: `nonblocking`) until a child exits, a kick, or `timeout_ms`; writes
/// `spawn.Exit` records to `out` (room for `max`). Returns how many (not a status).
export fn zg_supervisor_wait(s: *spawn.Supervisor, out: [*]spawn.Exit, max: u32, timeout_ms: i32) u32 {
    return @intCast(s.wait(out[0..max], timeout_ms));
}

export fn zg_supervisor_kill(s: *spawn.Supervisor, slot: u32, signal: u32) Status {
    if (signal > 64) return .invalid_argument;
    s.kill(slot, @intCast(signal));
    return .ok;
}

export fn zg_supervisor_kick(s: *spawn.Supervisor) Status {
    s.kick();
    return .ok;
}

/// In a child: get `signal` when the parent exits; `bad_state` when the parent is not
/// `expected_parent` any more (it exited already).
export fn zg_die_with_parent(signal: u32, expected_parent: i32) Status {
    if (signal == 0 or signal > 64) return .invalid_argument;
    return if (spawn.dieWithParent(@intCast(signal), expected_parent)) .ok else .bad_state;
}

/// 0 gone, 1 open, 2 peer closed (EOF seen), 3 closing; plus 0x100 when the session's output
/// buffer holds `socket_buffer_size` bytes or more.
export fn zg_session_state(r: *Reactor, session_id: u32, unsent: u32) u32 {
    return sessionState(&r.sessions, session_id, r.config.socket_buffer_size, unsent);
}

export fn zg_client_info(r: *Reactor, session_id: u32, out: *abi.ClientInfo) Status {
    return clientInfo(&r.sessions, session_id, r.config.reactor_id, out);
}

/// From any process of a tree: `zg_session_state` of any session, read from the session
/// tables in the region (the master's reactor threads' in PROCESS mode, the workers' in BASE).
export fn zg_region_session_state(region: [*]u8, session_id: u32, unsent: u32) u32 {
    const found = regionTable(region, session_id) orelse return 0;
    return sessionState(&found.table, session_id, found.socket_buffer_size, unsent);
}

export fn zg_region_client_info(region: [*]u8, session_id: u32, out: *abi.ClientInfo) Status {
    const found = regionTable(region, session_id) orelse return .not_found;
    return clientInfo(&found.table, session_id, found.reactor, out);
}

/// Swoole's `bind(fd, uid)`: sets the session's uid once. `bad_state` when it has one already,
/// `not_found` when the session is gone.
export fn zg_region_bind(region: [*]u8, session_id: u32, uid: u32) Status {
    if (uid == 0) return .invalid_argument;
    const found = regionTable(region, session_id) orelse return .not_found;
    if (found.table.stateOf(session_id) == .free) return .not_found;
    const s = &found.table.slots[found.table.slotIndex(session_id)];
    if (@cmpxchgStrong(u32, &s.uid, 0, uid, .acq_rel, .acquire) != null) return .bad_state;
    // The slot may have been recycled meanwhile: then the uid belongs to nobody; undo it.
    if (@atomicLoad(u32, &s.id, .acquire) != session_id) {
        _ = @cmpxchgStrong(u32, &s.uid, uid, 0, .acq_rel, .acquire);
        return .not_found;
    }
    return .ok;
}

/// PROCESS mode, `max_queued_bytes`: a worker handled `bytes` of the session's input (the
/// reactor counted them when it dispatched them). Not a status: a gone session is no error.
export fn zg_region_handled(region: [*]u8, session_id: u32, bytes: u32) void {
    const found = regionTable(region, session_id) orelse return;
    const s = &found.table.slots[found.table.slotIndex(session_id)];
    if (@atomicLoad(u32, &s.id, .acquire) != session_id) return;
    // (The slot may be taken by a new session between the check and the subtraction: then
    // that session may read up to `bytes` more before it is held. Rare, and bounded.)
    _ = @atomicRmw(i64, &s.recv_queued, .Sub, bytes, .monotonic);
}

const RegionTable = struct { table: SessionTable, reactor: u32, socket_buffer_size: u32 };

/// The table that holds `session_id`: number `(id - 1) % tables`, a reactor thread's (PROCESS)
/// or a worker's (BASE).
fn regionTable(region: [*]u8, session_id: u32) ?RegionTable {
    const memory = regionMemory(region) orelse return null;
    const header = shm.Region.headerOf(memory);
    if (session_id == 0) return null;
    const tables = shm.Region.tableCount(header);
    const reactor_id = (session_id - 1) % tables;
    return .{
        .table = SessionTable.initIn(shm.Region.tableSlots(memory, reactor_id), 0, tables, reactor_id),
        .reactor = reactor_id,
        .socket_buffer_size = header.socket_buffer_size,
    };
}

fn regionMemory(region: [*]u8) ?[]u8 {
    const header: *const abi.RegionHeader = @ptrCast(@alignCast(region));
    if (header.magic != abi.region_magic) return null;
    return region[0..shm.Region.size(header)];
}

/// `unsent`: bytes the caller sent to the session that its reactor has not taken yet; they count
/// against the limit with the session's queued output.
fn sessionState(table: *const SessionTable, session_id: u32, socket_buffer_size: u32, unsent: u32) u32 {
    const state = table.stateOf(session_id);
    if (state == .free) return 0;
    const slot = &table.slots[table.slotIndex(session_id)];
    const full = @atomicLoad(u64, &slot.out_queued, .monotonic) + unsent >= socket_buffer_size;
    return @intFromEnum(state) | (if (full) @as(u32, 0x100) else 0);
}

fn clientInfo(table: *const SessionTable, session_id: u32, reactor_id: u32, out: *abi.ClientInfo) Status {
    if (table.stateOf(session_id) == .free) return .not_found;
    const s = &table.slots[table.slotIndex(session_id)];
    const info = s.info(reactor_id);
    // The reactor thread may have recycled the slot while we copied: then the session is gone.
    if (@atomicLoad(u32, &s.id, .acquire) != session_id) return .not_found;
    out.* = info;
    return .ok;
}

/// Swoole's `getClientList`: the ids of open sessions greater than `start`, ascending, at most
/// `max` of them, into `out`; returns how many (not a status). From a one-worker server's
/// reactor (`r`) or, when `region` is given, from every table of the tree.
export fn zg_client_list(r: ?*Reactor, region: ?[*]u8, start: u32, max: u32, out: [*]u32) u32 {
    var list = IdList{ .out = out[0..max] };
    if (region) |ptr| {
        const memory = regionMemory(ptr) orelse return 0;
        const header = shm.Region.headerOf(memory);
        for (0..shm.Region.tableCount(header)) |t| list.collect(shm.Region.tableSlots(memory, @intCast(t)), start);
    } else if (r) |reactor_| {
        list.collect(reactor_.sessions.slots, start);
    }
    return list.len;
}

/// Swoole's `min_fd` and `max_fd`: the lowest and highest fd of an open session (0, 0 when
/// none), from a one-worker server's reactor or every table of the tree's region.
export fn zg_fd_range(r: ?*Reactor, region: ?[*]u8, out: *[2]i32) void {
    var low: i32 = std.math.maxInt(i32);
    var high: i32 = 0;
    const scan = struct {
        fn slots(list: []const session_table.Session, lo: *i32, hi: *i32) void {
            for (list) |*s| {
                if (@atomicLoad(session_table.State, &s.state, .acquire) == .free) continue;
                const fd = s.fd;
                if (fd < 0) continue;
                lo.* = @min(lo.*, fd);
                hi.* = @max(hi.*, fd);
            }
        }
    };
    if (region) |ptr| {
        if (regionMemory(ptr)) |memory| {
            const header = shm.Region.headerOf(memory);
            for (0..shm.Region.tableCount(header)) |t| scan.slots(shm.Region.tableSlots(memory, @intCast(t)), &low, &high);
        }
    } else if (r) |reactor_| scan.slots(reactor_.sessions.slots, &low, &high);
    out.* = if (high == 0) .{ 0, 0 } else .{ low, high };
}

/// Maps the region of another process of the same user (the CLI's `stats`): `path` is its
/// `/proc/<pid>/fd/<n>`. It stays mapped for the life of this process.
export fn zg_region_open(path_ptr: [*]const u8, path_len: usize, out_ptr: *[*]u8, out_len: *usize) Status {
    last_errno = 0;
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path_z = pathZ(&path_buffer, path_ptr[0..path_len]) orelse return .invalid_argument;
    const fd = std.posix.openZ(path_z, .{ .ACCMODE = .RDWR, .CLOEXEC = true }, 0) catch |err| return statusOf(err);
    defer std.posix.close(fd);
    const memory = shm.Region.map(fd) catch |err| return statusOf(err);
    out_ptr.* = memory.ptr;
    out_len.* = memory.len;
    return .ok;
}

/// The smallest ids above a start, kept sorted in a caller's buffer.
const IdList = struct {
    out: []u32,
    len: u32 = 0,

    fn collect(list: *IdList, slots: []const session_table.Session, start: u32) void {
        for (slots) |*s| {
            const id = @atomicLoad(u32, &s.id, .acquire);
            if (id <= start or @atomicLoad(session_table.State, &s.state, .acquire) != .open) continue;
            list.insert(id);
        }
    }

    fn insert(list: *IdList, id: u32) void {
        const cap: u32 = @intCast(list.out.len);
        if (cap == 0) return;
        if (list.len == cap and id >= list.out[cap - 1]) return;
        var i: u32 = if (list.len < cap) list.len else cap - 1;
        while (i > 0 and list.out[i - 1] > id) : (i -= 1) list.out[i] = list.out[i - 1];
        list.out[i] = id;
        if (list.len < cap) list.len += 1;
    }
};

// --- PROCESS mode: the master's reactor threads ------------------------------------------

/// Creates (not yet starts) the reactor threads over a PROCESS-mode region, polling
/// duplicates of `listen_fd` (the caller keeps it).
/// `doorbells` are the event workers' (worker_num of them), kept by the caller.
export fn zg_process_create(config: *const abi.ServerConfig, region: [*]u8, listen_fd: i32, port: u32, flags: u32, doorbells: [*]const i32, out_handle: *?*process.Process) Status {
    last_errno = 0;
    if (config.log_level > 3 or port > 65535) return .invalid_argument;
    log_level_min.store(@intCast(config.log_level), .monotonic);
    var cfg = config.*;
    if (cfg.max_wait_time_ms == 0) cfg.max_wait_time_ms = 3000;
    const memory = regionMemory(region) orelse return .invalid_argument;
    const header = shm.Region.headerOf(memory);
    out_handle.* = process.Process.create(allocator, cfg, memory, listen_fd, @intCast(port), flags & abi.listen_flag_tcp_nodelay != 0, doorbells[0..header.worker_num]) catch |err| return statusOf(err);
    return .ok;
}

/// The fds workers need to kick each reactor thread (reactor_num of them).
export fn zg_process_kick_fds(p: *process.Process, kick_out: [*]i32) Status {
    for (p.reactors, 0..) |r, i| kick_out[i] = r.kick_fd;
    return .ok;
}

export fn zg_process_start(p: *process.Process) Status {
    p.start() catch |err| return statusOf(err);
    return .ok;
}

/// An event worker exited: the reactor threads close the sessions that waited for its answer.
export fn zg_process_worker_exited(p: *process.Process, worker: u32) Status {
    if (worker >= p.reactors[0].lanes.len) return .invalid_argument;
    p.workerExited(@intCast(worker));
    return .ok;
}

/// BASE mode: an event worker exited and its sockets with it; its sessions are gone from the
/// shared table at once (its successor would clear them too, later).
export fn zg_region_clear_table(region: [*]u8, worker_id: u32) Status {
    const memory = regionMemory(region) orelse return .invalid_argument;
    const header = shm.Region.headerOf(memory);
    if (header.reactor_num != 0 or worker_id >= header.worker_num) return .invalid_argument;
    SessionTable.clearShared(shm.Region.tableSlots(memory, worker_id));
    return .ok;
}

export fn zg_process_shutdown(p: *process.Process) Status {
    p.requestShutdown();
    return .ok;
}

/// Blocks (TypeScript: `nonblocking`) until every reactor thread has stopped.
export fn zg_process_join(p: *process.Process) Status {
    p.join();
    return .ok;
}

export fn zg_process_destroy(p: *process.Process) Status {
    p.destroy();
    return .ok;
}

/// Blocks (TypeScript: `nonblocking`) until eventfd `fd` is written: a PROCESS worker's doorbell.
export fn zg_fd_wait(fd: i32) Status {
    var value: u64 = 0;
    while (true) {
        const rc = std.c.read(fd, @ptrCast(&value), 8);
        if (rc == 8) return .ok;
        if (std.posix.errno(rc) != .INTR) {
            last_errno = @intFromEnum(std.posix.errno(rc));
            return .os_error;
        }
    }
}

/// Waits on the calling thread, at most `timeout_us`, for eventfd `fd` to be written; 1 when it
/// was (and is now reset), 0 on timeout. A PROCESS worker under load parks here, briefly,
/// instead of in `zg_fd_wait` on Deno's blocking pool: the doorbell then wakes the JS thread
/// itself, one context switch instead of two. Its writers are reactor threads of another
/// process that never call into JavaScript, so this cannot deadlock.
export fn zg_fd_wait_for(fd: i32, timeout_us: u32) u32 {
    var pfd = [1]std.posix.pollfd{.{ .fd = fd, .events = std.posix.POLL.IN, .revents = 0 }};
    const ts: std.posix.timespec = .{ .sec = @intCast(timeout_us / 1_000_000), .nsec = @intCast((timeout_us % 1_000_000) * 1000) };
    const rc = std.c.ppoll(&pfd, 1, &ts, null);
    if (rc <= 0) return 0;
    var value: u64 = 0;
    _ = std.c.read(fd, @ptrCast(&value), 8);
    return 1;
}

/// Handles `signo` natively from now on (see signals.zig), writing `wake_fd` on each delivery.
/// Call again whenever something else may have taken the signal over: it is idempotent.
export fn zg_signal_take(signo: u32, wake_fd: i32) Status {
    if (signo == 0 or signo > 64) return .invalid_argument;
    signals.take(@intCast(signo), wake_fd) catch return .invalid_argument;
    return .ok;
}

/// 1 when `signo` is still handled by `zg_signal_take`'s handler.
export fn zg_signal_is_taken(signo: u32) u32 {
    if (signo == 0 or signo > 64) return 0;
    return @intFromBool(signals.isOurs(@intCast(signo)));
}

/// How many times `signo` arrived since the process started (not a status).
export fn zg_signal_count(signo: u32) u32 {
    if (signo > 64) return 0;
    return signals.count(@intCast(signo));
}

/// The supervisor's kick eventfd (a signal handler may write it to wake the manager).
export fn zg_supervisor_kick_fd(s: *spawn.Supervisor) i32 {
    return s.kick_fd;
}

/// Opens (appending, creating; never through a symbolic link: ELOOP) the file at `path` and
/// puts it in place of stderr, so that the core's logs and JavaScript's `console.error` both go
/// there; with `also_stdout`, of stdout too. With a `user` or `group` (the master, as root, for
/// workers that give up root), the file is handed to them by its descriptor. Called again after
/// the file was renamed, it starts a new one (log rotation).
export fn zg_log_open(path_ptr: [*]const u8, path_len: usize, also_stdout: u32, user_ptr: [*]const u8, user_len: usize, group_ptr: [*]const u8, group_len: usize) Status {
    last_errno = 0;
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path_z = pathZ(&path_buffer, path_ptr[0..path_len]) orelse return .invalid_argument;
    var owner: ?users.Owner = null;
    if (user_len > 0 or group_len > 0) {
        const ids = users.Ids.lookup(user_ptr[0..user_len], group_ptr[0..group_len]) orelse return .not_found;
        owner = ids.owner();
    }
    const fd = files.openLog(path_z, owner, &last_errno) catch return errnoOf(last_errno);
    defer std.posix.close(fd);
    std.posix.dup2(fd, 2) catch |err| return statusOf(err);
    if (also_stdout == 1) std.posix.dup2(fd, 1) catch |err| return statusOf(err);
    return .ok;
}

/// Takes the pid file for this process (see `files.acquirePidFile`): `out_fd` is the locked
/// descriptor to keep while the server runs. A file a running server holds: `bad_state`, errno
/// EAGAIN, its pid in `out_holder`; a symbolic link: errno ELOOP.
export fn zg_pid_file_acquire(path_ptr: [*]const u8, path_len: usize, out_fd: *i32, out_holder: *i32) Status {
    last_errno = 0;
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path_z = pathZ(&path_buffer, path_ptr[0..path_len]) orelse return .invalid_argument;
    out_fd.* = files.acquirePidFile(path_z, std.c.getpid(), out_holder, &last_errno) catch {
        return if (last_errno == @intFromEnum(std.posix.E.AGAIN)) .bad_state else errnoOf(last_errno);
    };
    return .ok;
}

/// The server stops: its pid file goes (if still its own) and the lock with it.
export fn zg_pid_file_release(fd: i32, path_ptr: [*]const u8, path_len: usize) Status {
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path_z = pathZ(&path_buffer, path_ptr[0..path_len]) orelse {
        std.posix.close(fd);
        return .invalid_argument;
    };
    files.releasePidFile(fd, path_z);
    return .ok;
}

/// The CLI: the pid of the running server whose pid file this is (checked, see
/// `files.pidFileOwner`). errno ESRCH: no server holds it.
export fn zg_pid_file_owner(path_ptr: [*]const u8, path_len: usize, out_pid: *i32) Status {
    last_errno = 0;
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path_z = pathZ(&path_buffer, path_ptr[0..path_len]) orelse return .invalid_argument;
    out_pid.* = files.pidFileOwner(path_z, &last_errno) catch return errnoOf(last_errno);
    return .ok;
}

/// Daemon mode: starts this program again detached (see `spawn.spawnDetached`); `output` is
/// the log file or empty for /dev/null. Strings as in `zg_supervisor_spawn`.
export fn zg_spawn_detached(argv_ptr: [*]const u8, argv_len: usize, env_ptr: [*]const u8, env_len: usize, output_ptr: [*]const u8, output_len: usize, ready_fd: i32, out_pid: *i32) Status {
    last_errno = 0;
    const command = Command.parse(argv_ptr[0..argv_len], env_ptr[0..env_len]) orelse return .invalid_argument;
    defer command.free();
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const output = pathZ(&path_buffer, if (output_len == 0) "/dev/null" else output_ptr[0..output_len]) orelse return .invalid_argument;
    out_pid.* = spawn.spawnDetached(command.argv.ptr, command.env.ptr, output, ready_fd, &last_errno) catch |err| switch (err) {
        error.OutOfMemory => return .out_of_memory,
        error.InvalidArgument => return .invalid_argument,
        error.SpawnFailed => return .os_error,
    };
    return .ok;
}

/// A pipe (both ends close-on-exec): `out[0]` to read, `out[1]` to write.
export fn zg_pipe(out: *[2]i32) Status {
    last_errno = 0;
    out.* = std.posix.pipe2(.{ .CLOEXEC = true }) catch |err| return statusOf(err);
    return .ok;
}

/// Reads what is there (blocking until something is, or EOF): TypeScript calls it
/// `nonblocking`. Returns the byte count, 0 at EOF, -1 on an error (not a status).
export fn zg_read(fd: i32, buffer: [*]u8, len: usize) isize {
    while (true) {
        const rc = std.c.read(fd, buffer, len);
        if (rc >= 0) return rc;
        if (std.posix.errno(rc) != .INTR) return -1;
    }
}

/// Writes all of `bytes` to `fd` (blocking).
export fn zg_write_all(fd: i32, bytes: [*]const u8, len: usize) Status {
    var done: usize = 0;
    while (done < len) {
        const rc = std.c.write(fd, bytes + done, len - done);
        if (rc < 0) {
            if (std.posix.errno(rc) == .INTR) continue;
            last_errno = @intFromEnum(std.posix.errno(rc));
            return .os_error;
        }
        done += @intCast(rc);
    }
    return .ok;
}

/// `user` / `group`: a worker gives up root (users.zig). `not_found` for an unknown name,
/// `permission_denied` when this process may not change ids.
export fn zg_drop_privileges(user_ptr: [*]const u8, user_len: usize, group_ptr: [*]const u8, group_len: usize) Status {
    last_errno = 0;
    const ids = users.Ids.lookup(user_ptr[0..user_len], group_ptr[0..group_len]) orelse return .not_found;
    ids.drop(&last_errno) catch return errnoOf(last_errno);
    return .ok;
}

/// Before anything listens: can this process run its workers as `user` / `group`? `not_found`
/// with `out_which` 1 (the user) or 2 (the group) for an unknown name; `permission_denied` when
/// the ids differ from this process's own and it is not root.
export fn zg_check_ids(user_ptr: [*]const u8, user_len: usize, group_ptr: [*]const u8, group_len: usize, out_which: *u32) Status {
    last_errno = 0;
    out_which.* = 0;
    switch (users.check(user_ptr[0..user_len], group_ptr[0..group_len])) {
        .ok => return .ok,
        .no_user => out_which.* = 1,
        .no_group => out_which.* = 2,
        .not_root => return .permission_denied,
    }
    return .not_found;
}

/// The status of a failure whose errno is `errno` (already in `last_errno`).
fn errnoOf(errno: i32) Status {
    return switch (@as(std.posix.E, @enumFromInt(@as(u16, @intCast(errno))))) {
        .NOENT => .not_found,
        .ACCES, .PERM => .permission_denied,
        else => .os_error,
    };
}

/// Marks an inherited fd close-on-exec (doorbells, kick fds): this process's own children, a
/// `Deno.Command` say, must not inherit it.
export fn zg_set_cloexec(fd: i32) Status {
    abi.setCloexec(fd);
    return .ok;
}

/// A doorbell: a new eventfd (close-on-exec; the manager passes it on explicitly).
export fn zg_eventfd(out_fd: *i32) Status {
    last_errno = 0;
    out_fd.* = std.posix.eventfd(0, std.os.linux.EFD.CLOEXEC) catch |err| return statusOf(err);
    return .ok;
}

/// Before start, in a tree: the worker's doorbell becomes the reactor's way to wake it, and its
/// mailbox peers ring it too (the inline reactor polls it with the sockets).
export fn zg_server_use_doorbell(r: *Reactor, fd: i32) Status {
    if (r.started) return .bad_state;
    r.useDoorbell(fd);
    return .ok;
}

/// Writes eventfd `fd`: a PROCESS worker kicks a reactor thread of the master.
export fn zg_fd_kick(fd: i32) Status {
    reactor.kick(fd);
    return .ok;
}

/// `path` with a NUL after it, in `buffer`; null when empty or too long.
fn pathZ(buffer: *[std.fs.max_path_bytes]u8, path: []const u8) ?[*:0]const u8 {
    if (path.len == 0 or path.len >= buffer.len) return null;
    @memcpy(buffer[0..path.len], path);
    buffer[path.len] = 0;
    return @ptrCast(buffer);
}

fn statusOf(err: anyerror) Status {
    return switch (err) {
        error.InvalidArgument => .invalid_argument,
        error.AddrInUse => .addr_in_use,
        error.AddrNotAvailable => .addr_not_available,
        error.PermissionDenied, error.AccessDenied => .permission_denied,
        error.OutOfMemory => .out_of_memory,
        error.LimitReached, error.ProcessFdQuotaExceeded, error.SystemFdQuotaExceeded => .limit_reached,
        else => blk: {
            // The errno the error name stands for; EIO (not EINVAL) for one that has none.
            if (last_errno == 0) last_errno = @intFromEnum(errno_names.of(err, .IO));
            break :blk .os_error;
        },
    };
}

test {
    std.testing.refAllDecls(@This());
    _ = @import("ring.zig");
    _ = @import("session_table.zig");
    _ = @import("shm.zig");
    _ = @import("listen.zig");
    _ = @import("reactor.zig");
    _ = @import("spawn.zig");
    _ = @import("process.zig");
    _ = @import("signals.zig");
    _ = @import("framing.zig");
    _ = @import("files.zig");
    _ = @import("linger.zig");
    _ = @import("orphans.zig");
    _ = @import("users.zig");
    _ = @import("errno.zig");
    _ = @import("handoff.zig");
}
