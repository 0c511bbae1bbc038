//! Listen sockets: parse the host, create, set options, bind, listen.
const std = @import("std");
const abi = @import("abi.zig");
const errno_names = @import("errno.zig");
const posix = std.posix;
const linux = std.os.linux;

pub const Error = error{ InvalidArgument, AddrInUse, AddrNotAvailable, PermissionDenied, OsError };

pub const Bound = struct { fd: i32, port: u16 };

/// A non-blocking listening TCP socket on `host:port` (port 0 picks a free one).
/// On failure `errno_out` holds the errno of the failing call.
pub fn tcp(host: []const u8, port: u16, backlog: u31, flags: u32, errno_out: *i32) Error!Bound {
    if (flags & abi.listen_flag_unix != 0) return unix(host, backlog, flags & abi.listen_flag_udp != 0, errno_out);
    const address = std.net.Address.parseIp(host, port) catch return error.InvalidArgument;
    const family: u32 = address.any.family;
    const kind: u32 = if (flags & abi.listen_flag_udp != 0) linux.SOCK.DGRAM else linux.SOCK.STREAM;
    const fd = posix.socket(family, kind | linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC, 0) catch |err| {
        errno_out.* = @intFromEnum(errnoOf(err));
        return error.OsError;
    };
    errdefer posix.close(fd);
    setOption(fd, linux.SOL.SOCKET, linux.SO.REUSEADDR, 1);
    if (flags & abi.listen_flag_reuse_port != 0) setOption(fd, linux.SOL.SOCKET, linux.SO.REUSEPORT, 1);
    if (family == linux.AF.INET6) {
        setOption(fd, linux.IPPROTO.IPV6, linux.IPV6.V6ONLY, @intFromBool(flags & abi.listen_flag_ipv6_only != 0));
    }
    posix.bind(fd, &address.any, address.getOsSockLen()) catch |err| {
        errno_out.* = @intFromEnum(errnoOf(err));
        return switch (err) {
            error.AddressInUse => error.AddrInUse,
            error.AddressNotAvailable => error.AddrNotAvailable,
            error.AccessDenied => error.PermissionDenied,
            else => error.OsError,
        };
    };
    // Bound but not listening: holds the port (for SO_REUSEPORT workers) and takes no
    // connections.
    if (flags & abi.listen_flag_bind_only != 0) return boundOf(fd);
    // A datagram socket is ready once bound.
    if (flags & abi.listen_flag_udp != 0) return boundOf(fd);
    posix.listen(fd, backlog) catch |err| {
        errno_out.* = @intFromEnum(errnoOf(err));
        return if (err == error.AddressInUse) error.AddrInUse else error.OsError;
    };
    return boundOf(fd);
}

/// A non-blocking listening Unix stream socket at `path`, or a bound Unix datagram socket; a
/// socket file left there by a server that is gone is removed first. A socket a server still
/// listens on (or is bound to) is refused as in use, and any other file is never removed.
pub fn unix(path: []const u8, backlog: u31, datagram: bool, errno_out: *i32) Error!Bound {
    const address = std.net.Address.initUnix(path) catch return error.InvalidArgument;
    var path_z: [std.fs.max_path_bytes]u8 = undefined;
    @memcpy(path_z[0..path.len], path);
    path_z[path.len] = 0;
    const kind: u32 = if (datagram) linux.SOCK.DGRAM else linux.SOCK.STREAM;
    if (posix.fstatatZ(posix.AT.FDCWD, @ptrCast(&path_z), posix.AT.SYMLINK_NOFOLLOW)) |stat| {
        if (posix.S.ISSOCK(stat.mode)) {
            if (!stale(&address, kind)) {
                errno_out.* = @intFromEnum(posix.E.ADDRINUSE);
                return error.AddrInUse;
            }
            posix.unlinkZ(@ptrCast(&path_z)) catch {};
        }
    } else |_| {}
    const fd = posix.socket(linux.AF.UNIX, kind | linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC, 0) catch |err| {
        errno_out.* = @intFromEnum(errnoOf(err));
        return error.OsError;
    };
    errdefer posix.close(fd);
    posix.bind(fd, &address.any, address.getOsSockLen()) catch |err| {
        errno_out.* = @intFromEnum(errnoOf(err));
        return switch (err) {
            error.AddressInUse => error.AddrInUse,
            error.AccessDenied => error.PermissionDenied,
            else => error.OsError,
        };
    };
    if (!datagram) posix.listen(fd, backlog) catch |err| {
        errno_out.* = @intFromEnum(errnoOf(err));
        return error.OsError;
    };
    return .{ .fd = fd, .port = 0 };
}

/// Whether the socket file at `address` is left over (nobody listens on it or is bound to it):
/// a connect to it is refused. Anything else (accepted, a full backlog, no permission) means
/// it may belong to a running server.
fn stale(address: *const std.net.Address, kind: u32) bool {
    const fd = posix.socket(linux.AF.UNIX, kind | linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC, 0) catch return false;
    defer posix.close(fd);
    const rc = linux.connect(fd, &address.any, address.getOsSockLen());
    return linux.E.init(rc) == .CONNREFUSED;
}

fn boundOf(fd: i32) Error!Bound {
    var bound: std.net.Address = undefined;
    var len: posix.socklen_t = @sizeOf(std.net.Address);
    posix.getsockname(fd, &bound.any, &len) catch return error.OsError;
    return .{ .fd = fd, .port = bound.getPort() };
}

/// The port of an inherited listening socket; makes it non-blocking and close-on-exec.
pub fn adopt(fd: i32, errno_out: *i32) Error!Bound {
    var bound: std.net.Address = undefined;
    var len: posix.socklen_t = @sizeOf(std.net.Address);
    posix.getsockname(fd, &bound.any, &len) catch {
        errno_out.* = @intFromEnum(posix.E.BADF);
        return error.InvalidArgument;
    };
    const flags = posix.fcntl(fd, posix.F.GETFL, 0) catch return error.OsError;
    _ = posix.fcntl(fd, posix.F.SETFL, flags | @as(usize, 1 << @bitOffsetOf(posix.O, "NONBLOCK"))) catch return error.OsError;
    _ = posix.fcntl(fd, posix.F.SETFD, posix.FD_CLOEXEC) catch return error.OsError;
    if (bound.any.family == linux.AF.UNIX) return .{ .fd = fd, .port = 0 };
    return .{ .fd = fd, .port = bound.getPort() };
}

fn setOption(fd: i32, level: i32, name: u32, value: c_int) void {
    posix.setsockopt(fd, level, name, std.mem.asBytes(&value)) catch {};
}

/// Zig's socket calls return error names; keep the errno for the message TypeScript builds.
fn errnoOf(err: anyerror) posix.E {
    return errno_names.of(err, .INVAL);
}

test "listen: port 0 binds a free port; a second bind to it is AddrInUse" {
    var errno: i32 = 0;
    const a = try tcp("127.0.0.1", 0, 16, 0, &errno);
    defer posix.close(a.fd);
    try std.testing.expect(a.port != 0);
    try std.testing.expectError(error.AddrInUse, tcp("127.0.0.1", a.port, 16, 0, &errno));
    try std.testing.expectEqual(@as(i32, @intFromEnum(posix.E.ADDRINUSE)), errno);
    try std.testing.expectError(error.InvalidArgument, tcp("not-an-ip", 0, 16, 0, &errno));
}

/// A path in a test's temporary directory.
fn tmpPath(dir: std.testing.TmpDir, name: []const u8, out: []u8) ![]const u8 {
    var buffer: [std.fs.max_path_bytes]u8 = undefined;
    const base = try dir.dir.realpath(".", &buffer);
    return std.fmt.bufPrint(out, "{s}/{s}", .{ base, name });
}

test "listen: a Unix socket a server still listens on is in use; its file stays" {
    var errno: i32 = 0;
    var dir = std.testing.tmpDir(.{});
    defer dir.cleanup();
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path = try tmpPath(dir, "live.sock", &path_buffer);
    for ([_]bool{ false, true }) |datagram| {
        const live = try unix(path, 16, datagram, &errno);
        try std.testing.expectError(error.AddrInUse, unix(path, 16, datagram, &errno));
        try std.testing.expectEqual(@as(i32, @intFromEnum(posix.E.ADDRINUSE)), errno);
        // Still the running server's: its file is there and it still takes connections.
        const probe = try posix.socket(linux.AF.UNIX, if (datagram) linux.SOCK.DGRAM else linux.SOCK.STREAM, 0);
        defer posix.close(probe);
        const address = try std.net.Address.initUnix(path);
        try posix.connect(probe, &address.any, address.getOsSockLen());
        posix.close(live.fd);
    }
}

test "listen: a Unix stream socket replaces a stale socket file, not another file" {
    var errno: i32 = 0;
    var dir = std.testing.tmpDir(.{});
    defer dir.cleanup();
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path = try tmpPath(dir, "s.sock", &path_buffer);
    const a = try unix(path, 16, false, &errno);
    posix.close(a.fd);
    // The file is still there (a server that died): the next one takes its place.
    const b = try unix(path, 16, false, &errno);
    posix.close(b.fd);
    var file_path: [std.fs.max_path_bytes]u8 = undefined;
    const other = try tmpPath(dir, "plain", &file_path);
    (try dir.dir.createFile("plain", .{})).close();
    try std.testing.expectError(error.AddrInUse, unix(other, 16, false, &errno));
}

test "listen: a Unix datagram socket is bound, not listening, and takes datagrams" {
    var errno: i32 = 0;
    var dir = std.testing.tmpDir(.{});
    defer dir.cleanup();
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path = try tmpPath(dir, "d.sock", &path_buffer);
    const a = try unix(path, 16, true, &errno);
    defer posix.close(a.fd);
    const client = try posix.socket(linux.AF.UNIX, linux.SOCK.DGRAM | linux.SOCK.CLOEXEC, 0);
    defer posix.close(client);
    const address = try std.net.Address.initUnix(path);
    _ = try posix.sendto(client, "hi", 0, &address.any, address.getOsSockLen());
    var got: [8]u8 = undefined;
    try std.testing.expectEqual(@as(usize, 2), try posix.recv(a.fd, &got, 0));
    try std.testing.expectEqualStrings("hi", got[0..2]);
}
