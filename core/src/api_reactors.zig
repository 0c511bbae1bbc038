//! The C API of a set of reactors configured alike before they start: the one reactor of a
//! one-worker server or BASE worker (`zg_server_reactors`), or PROCESS mode's reactor threads
//! (`zg_reactor_threads_set`). Framing, each port's own framing and the heartbeat are set once
//! here for every reactor of the set; each reactor's kick fd is read here too.
const abi = @import("abi.zig");
const api = @import("api.zig");
const errno_names = @import("errno.zig");
const reactor_threads = @import("reactor_threads.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const Status = abi.Status;

/// What the handle of a set points at.
pub const Set = []*Reactor;

export fn zg_server_reactors(r: *Reactor) *const Set {
    return &r.set;
}

export fn zg_reactor_threads_set(p: *reactor_threads.ReactorThreads) *const Set {
    return &p.reactors;
}

/// How many reactors the set has (for `zg_reactors_kick_fds`).
export fn zg_reactors_count(set: *const Set) u32 {
    return @intCast(set.len);
}

/// The server's framing (see framing.zig), for every reactor of the set.
export fn zg_reactors_framing(set: *const Set, config: *const abi.FramingConfig) Status {
    for (set.*) |r| r.setFraming(config.*) catch |err| return api.settingsStatus(err);
    return .ok;
}

/// Framing of listener `index` alone (a port with settings of its own).
export fn zg_reactors_port_framing(set: *const Set, index: u32, config: *const abi.FramingConfig) Status {
    for (set.*) |r| r.setPortFraming(index, config.*) catch |err| return api.settingsStatus(err);
    return .ok;
}

/// The heartbeat (`interval_ms` 0: off; `idle_ms` 0: twice the interval).
export fn zg_reactors_heartbeat(set: *const Set, interval_ms: u32, idle_ms: u32) Status {
    for (set.*) |r| r.setHeartbeat(interval_ms, idle_ms) catch return .bad_state;
    return .ok;
}

/// Each reactor's kick fd (`zg_reactors_count` of them): what a worker writes to wake it.
export fn zg_reactors_kick_fds(set: *const Set, out: [*]i32) Status {
    for (set.*, 0..) |r, i| out[i] = r.kick_fd;
    return .ok;
}

/// `enableStaticHandler`: files under `root` answered by the reactors themselves, for paths
/// under one of `locations` (every path when empty), directories by their first of
/// `index_files`; both lists separated by newlines. `not_found` when the root cannot be opened.
export fn zg_reactors_static(set: *const Set, root: [*]const u8, root_len: u32, locations: [*]const u8, locations_len: u32, index_files: [*]const u8, index_len: u32) Status {
    for (set.*) |r| r.setStatic(root[0..root_len], locations[0..locations_len], index_files[0..index_len]) catch |err| {
        return switch (err) {
            error.BadState => .bad_state,
            error.InvalidArgument => .invalid_argument,
            error.OutOfMemory => .out_of_memory,
            else => blk: {
                api.last_errno = @intFromEnum(errno_names.of(err, .IO));
                break :blk api.errnoOf(api.last_errno);
            },
        };
    };
    return .ok;
}
