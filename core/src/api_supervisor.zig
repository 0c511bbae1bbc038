//! The C API of the manager's supervisor (`*spawn.Supervisor`): spawning workers, waiting
//! for their exits, signalling them; and a background server's own start.
const std = @import("std");
const abi = @import("abi.zig");
const api = @import("api.zig");
const spawn = @import("spawn.zig");
const reactor_threads = @import("reactor_threads.zig");
const Status = abi.Status;
const allocator = api.allocator;
const statusOf = api.statusOf;
const pathZ = api.pathZ;

/// Copies this process's command line (`/proc/self/cmdline`: NUL-terminated arguments) into
/// `out`; `out_len` gets its length. `limit_reached` when `out` is too small. (Deno asks for
/// --allow-all to read /proc/self; the FFI permission is already that strong.)
export fn zg_own_cmdline(out: [*]u8, out_cap: usize, out_len: *usize) Status {
    api.last_errno = 0;
    const file = std.fs.openFileAbsolute("/proc/self/cmdline", .{}) catch return .os_error;
    defer file.close();
    const n = file.readAll(out[0..out_cap]) catch return .os_error;
    if (n == out_cap) return .limit_reached;
    out_len.* = n;
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
    api.last_errno = 0;
    const command = Command.parse(argv_ptr[0..argv_len], env_ptr[0..env_len]) orelse return .invalid_argument;
    defer command.free();
    out_pid.* = s.spawn(slot, command.argv.ptr, command.env.ptr, fds_ptr[0..fds_len], &api.last_errno) catch |err| switch (err) {
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

/// The supervisor's kick eventfd (a signal handler may write it to wake the manager).
export fn zg_supervisor_kick_fd(s: *spawn.Supervisor) i32 {
    return s.kick_fd;
}

/// Daemon mode: starts this program again detached (see `spawn.spawnDetached`); `output` is
/// the log file or empty for /dev/null. Strings as in `zg_supervisor_spawn`.
export fn zg_spawn_detached(argv_ptr: [*]const u8, argv_len: usize, env_ptr: [*]const u8, env_len: usize, output_ptr: [*]const u8, output_len: usize, ready_fd: i32, out_pid: *i32) Status {
    api.last_errno = 0;
    const command = Command.parse(argv_ptr[0..argv_len], env_ptr[0..env_len]) orelse return .invalid_argument;
    defer command.free();
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const output = pathZ(&path_buffer, if (output_len == 0) "/dev/null" else output_ptr[0..output_len]) orelse return .invalid_argument;
    out_pid.* = spawn.spawnDetached(command.argv.ptr, command.env.ptr, output, ready_fd, &api.last_errno) catch |err| switch (err) {
        error.OutOfMemory => return .out_of_memory,
        error.InvalidArgument => return .invalid_argument,
        error.SpawnFailed => return .os_error,
    };
    return .ok;
}
