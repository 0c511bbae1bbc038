//! The C API of PROCESS mode's reactor threads in the master (`*ReactorThreads`): their
//! listeners, their lifetime, and what happens when a worker exits (api_reactors.zig sets
//! their framing and heartbeat).
const abi = @import("abi.zig");
const api = @import("api.zig");
const api_region = @import("api_region.zig");
const reactor = @import("reactor.zig");
const shm = @import("shm.zig");
const reactor_threads = @import("reactor_threads.zig");
const Status = abi.Status;
const allocator = api.allocator;
const statusOf = api.statusOf;

/// PROCESS mode, before start: one more port (the caller keeps `listen_fd`).
export fn zg_reactor_threads_add_listener(p: *reactor_threads.ReactorThreads, listen_fd: i32, port: u32, flags: u32) Status {
    api.last_errno = 0;
    if (port > 65535) return .invalid_argument;
    p.addListener(listen_fd, @intCast(port), flags & abi.listen_flag_tcp_nodelay != 0) catch |err| return statusOf(err);
    return .ok;
}

/// Creates (not yet starts) the reactor threads over a PROCESS-mode region, polling
/// duplicates of `listen_fd` (the caller keeps it).
/// `doorbells` are the event workers' (worker_num of them), kept by the caller.
export fn zg_reactor_threads_create(config: *const abi.ServerConfig, region: [*]u8, listen_fd: i32, port: u32, flags: u32, doorbells: [*]const i32, out_handle: *?*reactor_threads.ReactorThreads) Status {
    api.last_errno = 0;
    if (config.log_level > 3 or port > 65535) return .invalid_argument;
    api.log_level_min.store(@intCast(config.log_level), .monotonic);
    var cfg = config.*;
    if (cfg.max_wait_time_ms == 0) cfg.max_wait_time_ms = 3000;
    const memory = api_region.regionMemory(region) orelse return .invalid_argument;
    const header = shm.Region.headerOf(memory);
    out_handle.* = reactor_threads.ReactorThreads.create(allocator, cfg, memory, listen_fd, @intCast(port), flags & abi.listen_flag_tcp_nodelay != 0, doorbells[0..header.worker_num]) catch |err| return statusOf(err);
    return .ok;
}

export fn zg_reactor_threads_start(p: *reactor_threads.ReactorThreads) Status {
    p.start() catch |err| return statusOf(err);
    return .ok;
}

/// An event worker exited: the reactor threads close the sessions that waited for its answer.
export fn zg_reactor_threads_worker_exited(p: *reactor_threads.ReactorThreads, worker: u32) Status {
    if (worker >= p.reactors[0].lanes.len) return .invalid_argument;
    p.workerExited(@intCast(worker));
    return .ok;
}

export fn zg_reactor_threads_shutdown(p: *reactor_threads.ReactorThreads) Status {
    p.requestShutdown();
    return .ok;
}

/// Blocks (TypeScript: `nonblocking`) until every reactor thread has stopped.
export fn zg_reactor_threads_join(p: *reactor_threads.ReactorThreads) Status {
    p.join();
    return .ok;
}

export fn zg_reactor_threads_destroy(p: *reactor_threads.ReactorThreads) Status {
    p.destroy();
    return .ok;
}
