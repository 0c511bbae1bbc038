//! The C API of process-wide things: listening sockets, fds and eventfds, signals, the log
//! and pid files, and privileges.
const std = @import("std");
const abi = @import("abi.zig");
const api = @import("api.zig");
const reactor = @import("reactor.zig");
const listen = @import("listen.zig");
const reactor_threads = @import("reactor_threads.zig");
const signals = @import("signals.zig");
const files = @import("files.zig");
const users = @import("users.zig");
const Status = abi.Status;
const statusOf = api.statusOf;
const errnoOf = api.errnoOf;
const pathZ = api.pathZ;

/// Options of a listening socket: `tcp_defer_accept` (seconds; accept only once data came) and
/// `tcp_fastopen` (the SYN-data queue length). 0 leaves one alone.
export fn zg_listen_options(fd: i32, defer_accept_s: u32, fastopen_queue: u32) Status {
    api.last_errno = 0;
    const tcp = std.os.linux.IPPROTO.TCP;
    if (defer_accept_s > 0) std.posix.setsockopt(fd, tcp, std.os.linux.TCP.DEFER_ACCEPT, std.mem.asBytes(&@as(c_int, @intCast(defer_accept_s)))) catch |err| return statusOf(err);
    if (fastopen_queue > 0) std.posix.setsockopt(fd, tcp, std.os.linux.TCP.FASTOPEN, std.mem.asBytes(&@as(c_int, @intCast(fastopen_queue)))) catch |err| return statusOf(err);
    return .ok;
}

/// A listening TCP socket for the manager to hand to its workers (close-on-exec; passed on
/// explicitly by `zg_supervisor_spawn`).
pub export fn zg_listen(host_ptr: [*]const u8, host_len: usize, port: u32, backlog: u32, flags: u32, out_fd: *i32, out_port: *u32) Status {
    api.last_errno = 0;
    if (port > 65535 or backlog == 0) return .invalid_argument;
    const bound = listen.tcp(host_ptr[0..host_len], @intCast(port), @intCast(@min(backlog, 65535)), flags, &api.last_errno) catch |err| return statusOf(err);
    out_fd.* = bound.fd;
    out_port.* = bound.port;
    return .ok;
}

export fn zg_close_fd(fd: i32) Status {
    std.posix.close(fd);
    return .ok;
}

/// Blocks (TypeScript: `nonblocking`) until eventfd `fd` is written: a PROCESS worker's doorbell.
export fn zg_fd_wait(fd: i32) Status {
    return api.waitEventfd(fd);
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

/// Handles `signo` natively from now on (see signals.zig), writing `doorbell_fd` on each delivery.
/// Call again whenever something else may have taken the signal over: it is idempotent.
export fn zg_signal_take(signo: u32, doorbell_fd: i32) Status {
    if (signo == 0 or signo > 64) return .invalid_argument;
    signals.take(@intCast(signo), doorbell_fd) catch return .invalid_argument;
    return .ok;
}

/// 1 when `signo` is still handled by `zg_signal_take`'s handler.
export fn zg_signal_is_taken(signo: u32) u32 {
    if (signo == 0 or signo > 64) return 0;
    return @intFromBool(signals.isOurs(@intCast(signo)));
}

/// Sends `signo` to process `pid`, real-time signals included (Deno's `kill` takes only named
/// ones): `ziggurat drain`'s SIGRTMIN+1 and +2. ESRCH and EPERM come back as `os_error`.
export fn zg_kill(pid: i32, signo: u32) Status {
    if (pid <= 0 or signo > 64) return .invalid_argument;
    const rc = std.c.kill(pid, @intCast(signo));
    if (rc != 0) {
        api.last_errno = @intFromEnum(std.posix.errno(rc));
        return .os_error;
    }
    return .ok;
}

/// How many times `signo` arrived since the process started (not a status).
export fn zg_signal_count(signo: u32) u32 {
    if (signo > 64) return 0;
    return signals.count(@intCast(signo));
}

/// Opens (appending, creating; never through a symbolic link: ELOOP) the file at `path` and
/// puts it in place of stderr, so that the core's logs and JavaScript's `console.error` both go
/// there; with `also_stdout`, of stdout too. With a `user` or `group` (the master, as root, for
/// workers that give up root), the file is handed to them by its descriptor. Called again after
/// the file was renamed, it starts a new one (log rotation).
export fn zg_log_open(path_ptr: [*]const u8, path_len: usize, also_stdout: u32, user_ptr: [*]const u8, user_len: usize, group_ptr: [*]const u8, group_len: usize) Status {
    api.last_errno = 0;
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path_z = pathZ(&path_buffer, path_ptr[0..path_len]) orelse return .invalid_argument;
    var owner: ?users.Owner = null;
    if (user_len > 0 or group_len > 0) {
        const ids = users.Ids.lookup(user_ptr[0..user_len], group_ptr[0..group_len]) orelse return .not_found;
        owner = ids.owner();
    }
    const fd = files.openLog(path_z, owner, &api.last_errno) catch return errnoOf(api.last_errno);
    defer std.posix.close(fd);
    std.posix.dup2(fd, 2) catch |err| return statusOf(err);
    if (also_stdout == 1) std.posix.dup2(fd, 1) catch |err| return statusOf(err);
    return .ok;
}

/// Takes the pid file for this process (see `files.acquirePidFile`): `out_fd` is the locked
/// descriptor to keep while the server runs. A file a running server holds: `bad_state`, errno
/// EAGAIN, its pid in `out_holder`; a symbolic link: errno ELOOP.
export fn zg_pid_file_acquire(path_ptr: [*]const u8, path_len: usize, out_fd: *i32, out_holder: *i32) Status {
    api.last_errno = 0;
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path_z = pathZ(&path_buffer, path_ptr[0..path_len]) orelse return .invalid_argument;
    out_fd.* = files.acquirePidFile(path_z, std.c.getpid(), out_holder, &api.last_errno) catch {
        return if (api.last_errno == @intFromEnum(std.posix.E.AGAIN)) .bad_state else errnoOf(api.last_errno);
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
    api.last_errno = 0;
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    const path_z = pathZ(&path_buffer, path_ptr[0..path_len]) orelse return .invalid_argument;
    out_pid.* = files.pidFileOwner(path_z, &api.last_errno) catch return errnoOf(api.last_errno);
    return .ok;
}

/// A pipe (both ends close-on-exec): `out[0]` to read, `out[1]` to write.
export fn zg_pipe(out: *[2]i32) Status {
    api.last_errno = 0;
    out.* = std.posix.pipe2(.{ .CLOEXEC = true }) catch |err| return statusOf(err);
    return .ok;
}

/// systemd's `sd_notify`: `message` (`READY=1`…) as one datagram to the Unix socket at `path`
/// (`NOTIFY_SOCKET`; a leading `@` names an abstract socket).
export fn zg_notify(path_ptr: [*]const u8, path_len: usize, message_ptr: [*]const u8, message_len: usize) Status {
    api.last_errno = 0;
    const linux = std.os.linux;
    var address: linux.sockaddr.un = .{ .family = linux.AF.UNIX, .path = @splat(0) };
    if (path_len == 0 or path_len >= address.path.len) return .invalid_argument;
    @memcpy(address.path[0..path_len], path_ptr[0..path_len]);
    if (address.path[0] == '@') address.path[0] = 0;
    const fd = std.posix.socket(linux.AF.UNIX, linux.SOCK.DGRAM | linux.SOCK.CLOEXEC, 0) catch |err| return statusOf(err);
    defer std.posix.close(fd);
    const len: std.posix.socklen_t = @intCast(@offsetOf(linux.sockaddr.un, "path") + path_len);
    _ = std.posix.sendto(fd, message_ptr[0..message_len], linux.MSG.NOSIGNAL, @ptrCast(&address), len) catch |err| return statusOf(err);
    return .ok;
}

/// A listening socket this process was handed (systemd's `LISTEN_FDS`), made ready to adopt:
/// non-blocking, close-on-exec; `out_port` its port (0 for a Unix socket).
export fn zg_listen_adopt(fd: i32, out_port: *u32) Status {
    api.last_errno = 0;
    const bound = @import("listen.zig").adopt(fd, &api.last_errno) catch |err| return statusOf(err);
    out_port.* = bound.port;
    return .ok;
}

/// How this process's core log lines name it (`worker#0`…; the pid is added), and whether they
/// are JSON (`json` 1) or text (log.zig).
export fn zg_log_identity(who_ptr: [*]const u8, who_len: usize, json: u32) Status {
    @import("log.zig").setIdentity(who_ptr[0..who_len], json == 1);
    return .ok;
}

/// A Unix SOCK_SEQPACKET socket pair (both ends close-on-exec): how a BASE worker's
/// WebSockets reach its successor (carry.zig); the manager keeps `out[0]` for the successor
/// and passes `out[1]` to the worker.
export fn zg_carry_pair(out: *[2]i32) Status {
    api.last_errno = 0;
    const rc: isize = @bitCast(std.os.linux.socketpair(std.os.linux.AF.UNIX, std.os.linux.SOCK.SEQPACKET | std.os.linux.SOCK.CLOEXEC, 0, out));
    if (rc < 0) {
        api.last_errno = @intCast(-rc);
        return .os_error;
    }
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
            api.last_errno = @intFromEnum(std.posix.errno(rc));
            return .os_error;
        }
        done += @intCast(rc);
    }
    return .ok;
}

/// `user` / `group`: a worker gives up root (users.zig). `not_found` for an unknown name,
/// `permission_denied` when this process may not change ids.
export fn zg_drop_privileges(user_ptr: [*]const u8, user_len: usize, group_ptr: [*]const u8, group_len: usize) Status {
    api.last_errno = 0;
    const ids = users.Ids.lookup(user_ptr[0..user_len], group_ptr[0..group_len]) orelse return .not_found;
    ids.drop(&api.last_errno) catch return errnoOf(api.last_errno);
    return .ok;
}

/// Before anything listens: can this process run its workers as `user` / `group`? `not_found`
/// with `out_which` 1 (the user) or 2 (the group) for an unknown name; `permission_denied` when
/// the ids differ from this process's own and it is not root.
export fn zg_check_ids(user_ptr: [*]const u8, user_len: usize, group_ptr: [*]const u8, group_len: usize, out_which: *u32) Status {
    api.last_errno = 0;
    out_which.* = 0;
    switch (users.check(user_ptr[0..user_len], group_ptr[0..group_len])) {
        .ok => return .ok,
        .no_user => out_which.* = 1,
        .no_group => out_which.* = 2,
        .not_root => return .permission_denied,
    }
    return .not_found;
}

/// Marks an inherited fd close-on-exec (doorbells, kick fds): this process's own children, a
/// `Deno.Command` say, must not inherit it.
export fn zg_set_cloexec(fd: i32) Status {
    abi.setCloexec(fd);
    return .ok;
}

/// A doorbell: a new eventfd (close-on-exec; the manager passes it on explicitly).
export fn zg_eventfd(out_fd: *i32) Status {
    api.last_errno = 0;
    out_fd.* = std.posix.eventfd(0, std.os.linux.EFD.CLOEXEC) catch |err| return statusOf(err);
    return .ok;
}

/// Writes eventfd `fd`: a PROCESS worker kicks a reactor thread of the master.
export fn zg_fd_kick(fd: i32) Status {
    reactor.kick(fd);
    return .ok;
}
