//! The files a server writes: its log file and its pid file. Both are opened without following
//! a symbolic link (one planted where the file should be could point at any file root may
//! write), and what is handed to the service user is the descriptor that was opened, never a
//! path. A pid file is written whole under another name and renamed into place, and the server
//! keeps it open and locked (`flock`) while it runs: a second server and the CLI tell a live
//! server's pid file from a stale one by the lock, and the CLI signals a pid only when that
//! process holds the file open.
const std = @import("std");
const c = std.c;
const posix = std.posix;
const Owner = @import("users.zig").Owner;

/// Every failure carries its errno in `*errno_out`.
pub const Error = error{Os};

fn fail(errno_out: *i32) Error {
    errno_out.* = @intFromEnum(posix.errno(@as(c_int, -1)));
    return error.Os;
}

fn failWith(errno_out: *i32, e: posix.E) Error {
    errno_out.* = @intFromEnum(e);
    return error.Os;
}

fn lstat(path: [*:0]const u8, st: *c.Stat) c_int {
    return c.fstatat(c.AT.FDCWD, path, st, c.AT.SYMLINK_NOFOLLOW);
}

const nofollow_read: c.O = .{ .ACCMODE = .RDONLY, .NOFOLLOW = true, .CLOEXEC = true, .NOCTTY = true };

/// `path` is a symbolic link: ELOOP, as open(2) with O_NOFOLLOW says.
fn refuseLink(path: [*:0]const u8, errno_out: *i32) Error!void {
    var st: c.Stat = undefined;
    if (lstat(path, &st) != 0) return; // absent: it will be created
    if (c.S.ISLNK(st.mode)) return failWith(errno_out, .LOOP);
}

/// Opens the log file to append (creating it 0644). With `owner`, the file is handed to that
/// user and group through the descriptor (the master, as root, creates it for workers that
/// give up root).
pub fn openLog(path: [*:0]const u8, owner: ?Owner, errno_out: *i32) Error!posix.fd_t {
    const flags: c.O = .{ .ACCMODE = .WRONLY, .APPEND = true, .CREAT = true, .CLOEXEC = true, .NOFOLLOW = true, .NOCTTY = true };
    const fd = c.open(path, flags, @as(c.mode_t, 0o644));
    if (fd < 0) return fail(errno_out);
    errdefer _ = c.close(fd);
    if (owner) |o| {
        if (c.fchown(fd, o.uid, o.gid) != 0) return fail(errno_out);
    }
    return fd;
}

/// Takes the pid file at `path` for process `pid`: refuses a symbolic link (ELOOP) and a file
/// that a running server holds locked (EAGAIN, its pid in `holder`); writes "<pid>\n" to a new
/// file beside it (mode 0644, created exclusively) and renames that into place. Returns the
/// descriptor, locked: keep it open while the server runs, and give it to `releasePidFile`.
pub fn acquirePidFile(path: [*:0]const u8, pid: i32, holder: *i32, errno_out: *i32) Error!posix.fd_t {
    holder.* = 0;
    try refuseLink(path, errno_out);
    const existing = c.open(path, nofollow_read);
    if (existing >= 0) {
        defer _ = c.close(existing);
        if (c.flock(existing, posix.LOCK.EX | posix.LOCK.NB) != 0) {
            if (posix.errno(@as(c_int, -1)) != .AGAIN) return fail(errno_out);
            holder.* = readPid(existing) orelse 0;
            return failWith(errno_out, .AGAIN);
        }
        // Nobody holds it: a stale file of a server that is gone. Ours replaces it.
    }
    var temp_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path_slice = std.mem.span(path);
    const temp = std.fmt.bufPrintZ(&temp_buffer, "{s}.{d}.tmp", .{ path_slice, pid }) catch return failWith(errno_out, .NAMETOOLONG);
    const flags: c.O = .{ .ACCMODE = .RDWR, .CREAT = true, .EXCL = true, .NOFOLLOW = true, .CLOEXEC = true, .NOCTTY = true };
    const fd = c.open(temp.ptr, flags, @as(c.mode_t, 0o644));
    if (fd < 0) return fail(errno_out);
    var placed = false;
    errdefer {
        _ = c.close(fd);
        if (!placed) _ = c.unlink(temp.ptr);
    }
    // 0644 whatever the umask: tools read a pid file as any user.
    if (c.fchmod(fd, 0o644) != 0) return fail(errno_out);
    if (c.flock(fd, posix.LOCK.EX | posix.LOCK.NB) != 0) return fail(errno_out);
    var text: [16]u8 = undefined;
    const line = std.fmt.bufPrint(&text, "{d}\n", .{pid}) catch unreachable;
    var done: usize = 0;
    while (done < line.len) {
        const rc = c.write(fd, line[done..].ptr, line.len - done);
        if (rc < 0) {
            if (posix.errno(rc) == .INTR) continue;
            return fail(errno_out);
        }
        done += @intCast(rc);
    }
    if (c.rename(temp.ptr, path) != 0) return fail(errno_out);
    placed = true;
    // Two servers that started at once both renamed: the file is the later one's.
    if (!sameFile(fd, path)) return failWith(errno_out, .AGAIN);
    return fd;
}

/// Removes the pid file if it is still the one `fd` holds (another server may have taken the
/// path over since), then closes `fd`, which releases the lock.
pub fn releasePidFile(fd: posix.fd_t, path: [*:0]const u8) void {
    if (sameFile(fd, path)) _ = c.unlink(path);
    _ = c.close(fd);
}

/// The pid a running server's pid file names, checked: the file is locked and that process
/// holds it open. ESRCH when no process holds the lock (stale) or the pid is not the holder;
/// ELOOP for a symbolic link; the open's errno when there is no such file.
pub fn pidFileOwner(path: [*:0]const u8, errno_out: *i32) Error!i32 {
    const fd = c.open(path, nofollow_read);
    if (fd < 0) return fail(errno_out);
    defer _ = c.close(fd);
    const pid = readPid(fd) orelse return failWith(errno_out, .INVAL);
    if (c.flock(fd, posix.LOCK.SH | posix.LOCK.NB) == 0) return failWith(errno_out, .SRCH);
    if (posix.errno(@as(c_int, -1)) != .AGAIN) return fail(errno_out);
    if (!holdsOpen(pid, fd)) return failWith(errno_out, .SRCH);
    return pid;
}

/// The number at the start of the file, if it is a positive pid.
fn readPid(fd: posix.fd_t) ?i32 {
    var buffer: [32]u8 = undefined;
    const rc = c.pread(fd, &buffer, buffer.len, 0);
    if (rc <= 0) return null;
    const text = std.mem.trim(u8, buffer[0..@intCast(rc)], " \t\r\n");
    const pid = std.fmt.parseInt(i32, text, 10) catch return null;
    return if (pid > 0) pid else null;
}

fn sameFile(fd: posix.fd_t, path: [*:0]const u8) bool {
    var a: c.Stat = undefined;
    var b: c.Stat = undefined;
    if (c.fstat(fd, &a) != 0 or lstat(path, &b) != 0) return false;
    return a.dev == b.dev and a.ino == b.ino;
}

/// Whether process `pid` has the file of `fd` open (one of /proc/<pid>/fd names it).
fn holdsOpen(pid: i32, fd: posix.fd_t) bool {
    var want: c.Stat = undefined;
    if (c.fstat(fd, &want) != 0) return false;
    var dir_buffer: [32]u8 = undefined;
    const dir_path = std.fmt.bufPrint(&dir_buffer, "/proc/{d}/fd", .{pid}) catch return false;
    var dir = std.fs.openDirAbsolute(dir_path, .{ .iterate = true }) catch return false;
    defer dir.close();
    var it = dir.iterate();
    while (it.next() catch return false) |entry| {
        var name: [32]u8 = undefined;
        const name_z = std.fmt.bufPrintZ(&name, "{s}", .{entry.name}) catch continue;
        var st: c.Stat = undefined;
        if (c.fstatat(dir.fd, name_z.ptr, &st, 0) != 0) continue;
        if (st.dev == want.dev and st.ino == want.ino) return true;
    }
    return false;
}

const testing = std.testing;

fn tempPath(buffer: []u8, name: []const u8) [:0]const u8 {
    return std.fmt.bufPrintZ(buffer, "/tmp/zg-files-test-{d}-{s}", .{ c.getpid(), name }) catch unreachable;
}

test "pid file: written whole, locked, refused to a second taker, released" {
    var buffer: [128]u8 = undefined;
    const path = tempPath(&buffer, "pid");
    _ = c.unlink(path.ptr);
    var errno: i32 = 0;
    var holder: i32 = 0;
    const fd = try acquirePidFile(path.ptr, 4242, &holder, &errno);
    var st: c.Stat = undefined;
    try testing.expectEqual(@as(c_int, 0), lstat(path.ptr, &st));
    try testing.expectEqual(@as(c.mode_t, 0o644), st.mode & 0o777);
    try testing.expectError(error.Os, acquirePidFile(path.ptr, 4343, &holder, &errno));
    try testing.expectEqual(@as(i32, @intFromEnum(posix.E.AGAIN)), errno);
    try testing.expectEqual(@as(i32, 4242), holder);
    // This process holds it, but the file names another pid: not its server.
    try testing.expectError(error.Os, pidFileOwner(path.ptr, &errno));
    try testing.expectEqual(@as(i32, @intFromEnum(posix.E.SRCH)), errno);
    releasePidFile(fd, path.ptr);
    try testing.expect(lstat(path.ptr, &st) != 0);
}

test "pid file: this process's own is found; a stale one is replaced" {
    var buffer: [128]u8 = undefined;
    const path = tempPath(&buffer, "own");
    var errno: i32 = 0;
    var holder: i32 = 0;
    // A stale file: nobody holds it.
    const stale = c.open(path.ptr, .{ .ACCMODE = .WRONLY, .CREAT = true, .TRUNC = true }, @as(c.mode_t, 0o600));
    try testing.expect(stale >= 0);
    _ = c.write(stale, "1\n", 2);
    _ = c.close(stale);
    try testing.expectError(error.Os, pidFileOwner(path.ptr, &errno));
    try testing.expectEqual(@as(i32, @intFromEnum(posix.E.SRCH)), errno);
    const fd = try acquirePidFile(path.ptr, c.getpid(), &holder, &errno);
    try testing.expectEqual(c.getpid(), try pidFileOwner(path.ptr, &errno));
    releasePidFile(fd, path.ptr);
}

test "pid file and log file: a symbolic link is refused, its target untouched" {
    var buffer: [128]u8 = undefined;
    var target_buffer: [128]u8 = undefined;
    const link = tempPath(&buffer, "link");
    const target = tempPath(&target_buffer, "target");
    _ = c.unlink(link.ptr);
    const t = c.open(target.ptr, .{ .ACCMODE = .WRONLY, .CREAT = true, .TRUNC = true }, @as(c.mode_t, 0o600));
    try testing.expect(t >= 0);
    _ = c.close(t);
    defer _ = c.unlink(target.ptr);
    try testing.expectEqual(@as(c_int, 0), c.symlink(target.ptr, link.ptr));
    defer _ = c.unlink(link.ptr);
    var errno: i32 = 0;
    var holder: i32 = 0;
    try testing.expectError(error.Os, acquirePidFile(link.ptr, 1, &holder, &errno));
    try testing.expectEqual(@as(i32, @intFromEnum(posix.E.LOOP)), errno);
    try testing.expectError(error.Os, openLog(link.ptr, null, &errno));
    try testing.expectEqual(@as(i32, @intFromEnum(posix.E.LOOP)), errno);
    var st: c.Stat = undefined;
    try testing.expectEqual(@as(c_int, 0), lstat(target.ptr, &st));
    try testing.expectEqual(@as(i64, 0), st.size);
}
