//! What every file of the C API shares: the allocator, the errno of the last failure, and
//! the mapping of errors to `abi.Status`.
const std = @import("std");
const abi = @import("abi.zig");
const errno_names = @import("errno.zig");
const Status = abi.Status;

/// The least severe level the core logs: the lowest any server of this process asked for
/// (`ServerConfig.log_level`: 0 debug, 1 info, 2 warning, 3 error). root.zig's log reads it.
pub var log_level_min = std.atomic.Value(u8).init(1);

pub const allocator = std.heap.c_allocator;

pub threadlocal var last_errno: i32 = 0;

/// The status of a failure whose errno is `errno` (already in `last_errno`).
pub fn errnoOf(errno: i32) Status {
    return switch (@as(std.posix.E, @enumFromInt(@as(u16, @intCast(errno))))) {
        .NOENT => .not_found,
        .ACCES, .PERM => .permission_denied,
        else => .os_error,
    };
}

/// `path` with a NUL after it, in `buffer`; null when empty or too long.
pub fn pathZ(buffer: *[std.fs.max_path_bytes]u8, path: []const u8) ?[*:0]const u8 {
    if (path.len == 0 or path.len >= buffer.len) return null;
    @memcpy(buffer[0..path.len], path);
    buffer[path.len] = 0;
    return @ptrCast(buffer);
}

pub fn statusOf(err: anyerror) Status {
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

/// A setting refused before start: `bad_state` once started, else `invalid_argument`.
pub fn settingsStatus(err: anyerror) Status {
    return switch (err) {
        error.BadState => .bad_state,
        else => .invalid_argument,
    };
}

/// Blocks until eventfd `fd` is written (retrying on EINTR), and resets it.
pub fn waitEventfd(fd: i32) Status {
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
