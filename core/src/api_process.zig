//! The C API of PROCESS mode's master (`*process.Process`): its reactor threads, their
//! listeners, framing and heartbeat, and what happens when a worker exits.
const abi = @import("abi.zig");
const api = @import("api.zig");
const api_region = @import("api_region.zig");
const reactor = @import("reactor.zig");
const shm = @import("shm.zig");
const process = @import("process.zig");
const Status = abi.Status;
const allocator = api.allocator;
const statusOf = api.statusOf;

/// PROCESS mode, before start: one more port (the caller keeps `listen_fd`).
export fn zg_process_add_listener(p: *process.Process, listen_fd: i32, port: u32, flags: u32) Status {
    api.last_errno = 0;
    if (port > 65535) return .invalid_argument;
    p.addListener(listen_fd, @intCast(port), flags & abi.listen_flag_tcp_nodelay != 0) catch |err| return statusOf(err);
    return .ok;
}

/// Creates (not yet starts) the reactor threads over a PROCESS-mode region, polling
/// duplicates of `listen_fd` (the caller keeps it).
/// `doorbells` are the event workers' (worker_num of them), kept by the caller.
export fn zg_process_create(config: *const abi.ServerConfig, region: [*]u8, listen_fd: i32, port: u32, flags: u32, doorbells: [*]const i32, out_handle: *?*process.Process) Status {
    api.last_errno = 0;
    if (config.log_level > 3 or port > 65535) return .invalid_argument;
    api.log_level_min.store(@intCast(config.log_level), .monotonic);
    var cfg = config.*;
    if (cfg.max_wait_time_ms == 0) cfg.max_wait_time_ms = 3000;
    const memory = api_region.regionMemory(region) orelse return .invalid_argument;
    const header = shm.Region.headerOf(memory);
    out_handle.* = process.Process.create(allocator, cfg, memory, listen_fd, @intCast(port), flags & abi.listen_flag_tcp_nodelay != 0, doorbells[0..header.worker_num]) catch |err| return statusOf(err);
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
