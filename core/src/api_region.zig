//! The C API of the tree's region: creating and mapping it, and looking sessions up in its
//! tables from any process (state, client info, lists, bind, protect, queued input).
const std = @import("std");
const abi = @import("abi.zig");
const api = @import("api.zig");
const reactor = @import("reactor.zig");
const shm = @import("shm.zig");
const reactor_threads = @import("reactor_threads.zig");
const session_table = @import("session_table.zig");
const SessionTable = session_table.SessionTable;
const Reactor = reactor.Reactor;
const Status = abi.Status;
const statusOf = api.statusOf;
const pathZ = api.pathZ;

/// `protect(sessionId, on)`: the heartbeat leaves the session alone. From a one-worker
/// server's reactor, or any process of a tree through the region.
export fn zg_session_protect(r: ?*Reactor, region: ?[*]u8, session_id: u32, on: u32) Status {
    const table = tableOf(r, region, session_id) catch |err| return switch (err) {
        error.NotFound => .not_found,
        error.InvalidArgument => .invalid_argument,
    };
    if (table.stateOf(session_id) == .free) return .not_found;
    const s = &table.slots[table.slotIndex(session_id)];
    @atomicStore(u8, &s.protected, @intFromBool(on != 0), .release);
    if (@atomicLoad(u32, &s.id, .acquire) != session_id) return .not_found;
    return .ok;
}

/// The session table that holds `session_id`: a one-worker server's reactor's, or the tree's
/// in the region.
fn tableOf(r: ?*Reactor, region: ?[*]u8, session_id: u32) error{ NotFound, InvalidArgument }!SessionTable {
    if (region) |ptr| return (regionTable(ptr, session_id) orelse return error.NotFound).table;
    if (r) |reactor_| return reactor_.sessions;
    return error.InvalidArgument;
}

/// Session `session_id`'s WebSocket status (`websocket_session.Status`: 0 none or gone, 2
/// handshake, 3 open, 4 closing; bit 8: permessage-deflate was negotiated), without the rest of its client info (a push checks it).
/// From a one-worker server's reactor, or any process of a tree through the region.
export fn zg_session_websocket(r: ?*Reactor, region: ?[*]u8, session_id: u32) u32 {
    const table = tableOf(r, region, session_id) catch return 0;
    if (table.stateOf(session_id) == .free) return 0;
    const s = &table.slots[table.slotIndex(session_id)];
    // (Bit 8: permessage-deflate was negotiated.)
    const status = @as(u32, s.ws.statusNow()) | (@as(u32, @intFromBool(@atomicLoad(bool, &s.ws.deflate, .monotonic))) << 8);
    if (@atomicLoad(u32, &s.id, .acquire) != session_id) return 0;
    return status;
}

/// Creates the tree's shared region (manager). It stays mapped for the life of the process.
/// `reactor_num` > 0 makes a PROCESS-mode region (rings and session tables for the master's
/// reactor threads); 0 a BASE-mode one (a session table per worker). Both have the worker table
/// and the mailboxes.
export fn zg_region_create(shape: *const abi.RegionShape, manager_pid: i32, out_fd: *i32, out_ptr: *[*]u8, out_len: *usize) Status {
    api.last_errno = 0;
    const region = shm.Region.create(manager_pid, shape.*) catch |err| return statusOf(err);
    out_fd.* = region.fd;
    out_ptr.* = region.memory.ptr;
    out_len.* = region.memory.len;
    return .ok;
}

/// Maps the region a worker inherited. It stays mapped for the life of the process.
export fn zg_region_map(fd: i32, out_ptr: *[*]u8, out_len: *usize) Status {
    api.last_errno = 0;
    const memory = shm.Region.map(fd) catch |err| return statusOf(err);
    out_ptr.* = memory.ptr;
    out_len.* = memory.len;
    return .ok;
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
pub fn regionTable(region: [*]u8, session_id: u32) ?RegionTable {
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

pub fn regionMemory(region: [*]u8) ?[]u8 {
    const header: *const abi.RegionHeader = @ptrCast(@alignCast(region));
    if (header.magic != abi.region_magic) return null;
    return region[0..shm.Region.size(header)];
}

/// `unsent`: bytes the caller sent to the session that its reactor has not taken yet; they count
/// against the limit with the session's queued output.
pub fn sessionState(table: *const SessionTable, session_id: u32, socket_buffer_size: u32, unsent: u32) u32 {
    const state = table.stateOf(session_id);
    if (state == .free) return 0;
    const slot = &table.slots[table.slotIndex(session_id)];
    const full = @atomicLoad(u64, &slot.out_queued, .monotonic) + unsent >= socket_buffer_size;
    return @intFromEnum(state) | (if (full) @as(u32, 0x100) else 0);
}

pub fn clientInfo(table: *const SessionTable, session_id: u32, reactor_id: u32, out: *abi.ClientInfo) Status {
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
    api.last_errno = 0;
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
            // (Waiting for its PROXY header: no worker has heard of it yet.)
            if (@atomicLoad(bool, &s.proxy_pending, .acquire)) continue;
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

/// BASE mode: an event worker exited and its sockets with it; its sessions are gone from the
/// shared table at once (its successor would clear them too, later), but those it carried to
/// its successor (carry.zig).
export fn zg_region_clear_table(region: [*]u8, worker_id: u32) Status {
    const memory = regionMemory(region) orelse return .invalid_argument;
    const header = shm.Region.headerOf(memory);
    if (header.reactor_num != 0 or worker_id >= header.worker_num) return .invalid_argument;
    SessionTable.clearShared(shm.Region.tableSlots(memory, worker_id), true);
    return .ok;
}

/// The tree stops (from the master, before its workers are told): a BASE worker that leaves
/// now closes its WebSockets rather than carry them to a successor.
export fn zg_region_set_stopping(region: [*]u8) Status {
    const memory = regionMemory(region) orelse return .invalid_argument;
    @atomicStore(u16, &shm.Region.headerOf(memory).stopping, 1, .release);
    return .ok;
}

/// 1 once the tree stops (`zg_region_set_stopping`), else 0.
export fn zg_region_stopping(region: [*]u8) u32 {
    const memory = regionMemory(region) orelse return 0;
    return @atomicLoad(u16, &shm.Region.headerOf(memory).stopping, .acquire);
}
