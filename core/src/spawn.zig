//! Child processes: the manager spawns workers with posix_spawn (never a fork of a running
//! Deno), passes them chosen fds, and learns of their exit through pidfds, so it reaps only
//! its own children (a `Deno.Command` child of the same process is left to Deno).
const std = @import("std");
const abi = @import("abi.zig");
const posix = std.posix;
const linux = std.os.linux;
const c = std.c;
const assert = std.debug.assert;

/// glibc's posix_spawn_file_actions_t (80 bytes on x86_64), opaque to us.
const FileActions = extern struct { opaque_bytes: [80]u8 align(8) = undefined };
extern "c" fn posix_spawn(pid: *c.pid_t, path: [*:0]const u8, actions: ?*const FileActions, attributes: ?*const anyopaque, argv: [*:null]const ?[*:0]const u8, envp: [*:null]const ?[*:0]const u8) c_int;
extern "c" fn posix_spawn_file_actions_init(actions: *FileActions) c_int;
extern "c" fn posix_spawn_file_actions_destroy(actions: *FileActions) c_int;
extern "c" fn posix_spawn_file_actions_adddup2(actions: *FileActions, fd: c_int, new_fd: c_int) c_int;
extern "c" fn posix_spawn_file_actions_addclosefrom_np(actions: *FileActions, from: c_int) c_int;
extern "c" fn posix_spawn_file_actions_addopen(actions: *FileActions, fd: c_int, path: [*:0]const u8, flags: c_int, mode: c.mode_t) c_int;
/// posix_spawnattr_t from <spawn.h> (336 bytes on x86-64 glibc), opaque here.
const SpawnAttributes = extern struct { opaque_bytes: [336]u8 align(8) = undefined };
extern "c" fn posix_spawnattr_init(attributes: *SpawnAttributes) c_int;
extern "c" fn posix_spawnattr_destroy(attributes: *SpawnAttributes) c_int;
extern "c" fn posix_spawnattr_setflags(attributes: *SpawnAttributes, flags: c_short) c_int;
/// POSIX_SPAWN_SETSID (glibc 2.26+): the child starts a new session.
const spawn_setsid: c_short = 0x80;

/// Daemon mode: starts `argv` detached, in a new session, with stdin from /dev/null, stdout and
/// stderr appended to `output` (or /dev/null), `ready_fd` as fd 3 and no other fd. Not
/// supervised: the caller exits once the child says it listens.
pub fn spawnDetached(argv: [*:null]const ?[*:0]const u8, envp: [*:null]const ?[*:0]const u8, output: [*:0]const u8, ready_fd: i32, errno_out: *i32) !i32 {
    var actions: FileActions = .{};
    if (posix_spawn_file_actions_init(&actions) != 0) return error.OutOfMemory;
    defer _ = posix_spawn_file_actions_destroy(&actions);
    var attributes: SpawnAttributes = .{};
    if (posix_spawnattr_init(&attributes) != 0) return error.OutOfMemory;
    defer _ = posix_spawnattr_destroy(&attributes);
    if (posix_spawnattr_setflags(&attributes, spawn_setsid) != 0) return error.InvalidArgument;
    const append: c_int = @bitCast(@as(u32, @bitCast(posix.O{ .ACCMODE = .WRONLY, .APPEND = true, .CREAT = true })));
    const read_only: c_int = @bitCast(@as(u32, @bitCast(posix.O{ .ACCMODE = .RDONLY })));
    // The ready pipe first to a high fd, so that opening 0-2 cannot clobber it.
    if (posix_spawn_file_actions_adddup2(&actions, ready_fd, 1000) != 0) return error.OutOfMemory;
    if (posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", read_only, 0) != 0) return error.OutOfMemory;
    if (posix_spawn_file_actions_addopen(&actions, 1, output, append, 0o644) != 0) return error.OutOfMemory;
    if (posix_spawn_file_actions_adddup2(&actions, 1, 2) != 0) return error.OutOfMemory;
    if (posix_spawn_file_actions_adddup2(&actions, 1000, 3) != 0) return error.OutOfMemory;
    if (posix_spawn_file_actions_addclosefrom_np(&actions, 4) != 0) return error.OutOfMemory;
    var pid: c.pid_t = 0;
    const rc = posix_spawn(&pid, argv[0].?, &actions, @ptrCast(&attributes), argv, envp);
    if (rc != 0) {
        errno_out.* = rc;
        return error.SpawnFailed;
    }
    return pid;
}
comptime {
    // glibc's posix_spawn_file_actions_t on 64-bit Linux; other targets are not built.
    assert(@sizeOf(usize) == 8);
}

pub const children_max = 1024;

pub const Exit = abi.ChildExit;

const Child = struct { pid: i32 = 0, pidfd: i32 = -1 };

/// The manager's children, by slot. The JS thread spawns and kills; `wait` runs on a thread of
/// Deno's blocking pool while the JS thread is parked, and only polls and reaps.
pub const Supervisor = struct {
    children: [children_max]Child = [_]Child{.{}} ** children_max,
    /// Guards `children`: `wait` reaps on a pool thread while the JS thread spawns and kills.
    mutex: std.Thread.Mutex = .{},
    /// Written to wake `wait` (a respawn or shutdown changed what to watch).
    kick_fd: i32,

    pub fn create(allocator: std.mem.Allocator) !*Supervisor {
        const s = try allocator.create(Supervisor);
        errdefer allocator.destroy(s);
        s.* = .{ .kick_fd = try posix.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK) };
        return s;
    }

    pub fn destroy(s: *Supervisor, allocator: std.mem.Allocator) void {
        for (&s.children) |*child| if (child.pidfd >= 0) posix.close(child.pidfd);
        posix.close(s.kick_fd);
        allocator.destroy(s);
    }

    /// Spawns `argv` with `envp` under `slot`. The child gets stdin, stdout and stderr, and
    /// `keep_fds[i]` as fd `3 + i`; every other fd is closed in it, inherited or not.
    /// On `error.SpawnFailed`, `errno_out` holds the reason.
    pub fn spawn(s: *Supervisor, slot: u32, argv: [*:null]const ?[*:0]const u8, envp: [*:null]const ?[*:0]const u8, keep_fds: []const i32, errno_out: *i32) !i32 {
        if (slot >= children_max or keep_fds.len > 4096) return error.InvalidArgument;
        s.mutex.lock();
        defer s.mutex.unlock();
        if (s.children[slot].pid != 0) return error.BadState;
        var actions: FileActions = .{};
        if (posix_spawn_file_actions_init(&actions) != 0) return error.OutOfMemory;
        defer _ = posix_spawn_file_actions_destroy(&actions);
        // Move the kept fds above all of them first, then down to 3, 4, …: no move clobbers
        // a kept fd that has not moved yet. Then close everything from 3 + n up.
        var top: i32 = 2;
        for (keep_fds) |fd| top = @max(top, fd);
        for (keep_fds, 0..) |fd, i| {
            if (posix_spawn_file_actions_adddup2(&actions, fd, top + 1 + @as(i32, @intCast(i))) != 0) return error.OutOfMemory;
        }
        for (keep_fds, 0..) |_, i| {
            const at: i32 = @intCast(i);
            if (posix_spawn_file_actions_adddup2(&actions, top + 1 + at, 3 + at) != 0) return error.OutOfMemory;
        }
        if (posix_spawn_file_actions_addclosefrom_np(&actions, 3 + @as(i32, @intCast(keep_fds.len))) != 0) return error.OutOfMemory;
        var pid: c.pid_t = 0;
        const rc = posix_spawn(&pid, argv[0].?, &actions, null, argv, envp);
        if (rc != 0) {
            errno_out.* = rc;
            return error.SpawnFailed;
        }
        const pidfd_rc: isize = @bitCast(linux.pidfd_open(pid, 0));
        if (pidfd_rc < 0) {
            errno_out.* = @intCast(-pidfd_rc);
            _ = c.kill(pid, posix.SIG.KILL);
            _ = c.waitpid(pid, null, 0);
            return error.SpawnFailed;
        }
        s.children[slot] = .{ .pid = pid, .pidfd = @intCast(pidfd_rc) };
        return pid;
    }

    /// Sends `signal` to the child in `slot`, if there is one.
    pub fn kill(s: *Supervisor, slot: u32, signal: u8) void {
        if (slot >= children_max) return;
        s.mutex.lock();
        defer s.mutex.unlock();
        if (s.children[slot].pidfd < 0) return;
        // Through the pidfd: never a recycled pid.
        _ = linux.pidfd_send_signal(s.children[slot].pidfd, signal, null, 0);
    }

    pub fn kick(s: *Supervisor) void {
        const one: u64 = 1;
        _ = c.write(s.kick_fd, @ptrCast(&one), 8);
    }

    /// Blocks until a child exits, `kick`, or `timeout_ms` (-1: no limit); reaps the children
    /// that exited and writes them to `out`. Returns how many.
    pub fn wait(s: *Supervisor, out: []Exit, timeout_ms: i32) usize {
        var fds: [children_max + 1]posix.pollfd = undefined;
        var slots: [children_max]u32 = undefined;
        var n: usize = 0;
        s.mutex.lock();
        for (&s.children, 0..) |*child, slot| {
            if (child.pidfd < 0) continue;
            fds[n] = .{ .fd = child.pidfd, .events = posix.POLL.IN, .revents = 0 };
            slots[n] = @intCast(slot);
            n += 1;
        }
        s.mutex.unlock();
        fds[n] = .{ .fd = s.kick_fd, .events = posix.POLL.IN, .revents = 0 };
        _ = posix.poll(fds[0 .. n + 1], timeout_ms) catch return 0;
        s.mutex.lock();
        defer s.mutex.unlock();
        if (fds[n].revents != 0) {
            var value: u64 = 0;
            _ = c.read(s.kick_fd, @ptrCast(&value), 8);
        }
        var count: usize = 0;
        for (fds[0..n], slots[0..n]) |pfd, slot| {
            if (pfd.revents == 0 or count == out.len) continue;
            const child = &s.children[slot];
            var status: c_int = 0;
            const reaped = c.waitpid(child.pid, &status, posix.W.NOHANG);
            if (reaped == 0) continue; // readable but not yet reapable: the next wait takes it
            // reaped < 0 (ECHILD: someone else reaped it) frees the slot too, as "killed".
            if (reaped < 0) status = posix.SIG.KILL;
            const st: u32 = @bitCast(status);
            out[count] = .{
                .slot = slot,
                .pid = child.pid,
                .code = if (posix.W.IFEXITED(st)) @intCast(posix.W.EXITSTATUS(st)) else -1,
                .signal = if (posix.W.IFSIGNALED(st)) @intCast(posix.W.TERMSIG(st)) else 0,
            };
            count += 1;
            posix.close(child.pidfd);
            child.* = .{};
        }
        return count;
    }

    /// Children still running.
    pub fn running(s: *const Supervisor) u32 {
        var n: u32 = 0;
        for (s.children) |child| n += @intFromBool(child.pid != 0);
        return n;
    }
};

/// Asks the kernel to send `signal` to this process when its parent exits, then checks that
/// the parent is still `expected_parent` (it may have exited before the request). False when
/// it is already gone.
pub fn dieWithParent(signal: u8, expected_parent: i32) bool {
    _ = c.prctl(@intFromEnum(linux.PR.SET_PDEATHSIG), @as(c_ulong, signal));
    return c.getppid() == expected_parent;
}

test "spawn: a child's exit code and a killing signal are reported under its slot" {
    const allocator = std.testing.allocator;
    var s = try Supervisor.create(allocator);
    defer s.destroy(allocator);
    const env = [_:null]?[*:0]const u8{};
    var errno: i32 = 0;
    const exit3 = [_:null]?[*:0]const u8{ "/bin/sh", "-c", "exit 3" };
    const sleeper = [_:null]?[*:0]const u8{ "/bin/sleep", "30" };
    _ = try s.spawn(5, &exit3, &env, &.{}, &errno);
    const sleeper_pid = try s.spawn(7, &sleeper, &env, &.{}, &errno);
    try std.testing.expectError(error.BadState, s.spawn(7, &sleeper, &env, &.{}, &errno));
    var exits: [4]Exit = undefined;
    var got = s.wait(&exits, 5000);
    while (got == 0) got = s.wait(&exits, 5000);
    try std.testing.expectEqual(@as(u32, 5), exits[0].slot);
    try std.testing.expectEqual(@as(i32, 3), exits[0].code);
    s.kill(7, posix.SIG.KILL);
    got = s.wait(&exits, 5000);
    while (got == 0) got = s.wait(&exits, 5000);
    try std.testing.expectEqual(Exit{ .slot = 7, .pid = sleeper_pid, .code = -1, .signal = posix.SIG.KILL }, exits[0]);
    try std.testing.expectEqual(@as(u32, 0), s.running());
}

test "spawn: kept fds reach the child as 3, 4, …; no other fd does, inherited or not" {
    const allocator = std.testing.allocator;
    var s = try Supervisor.create(allocator);
    defer s.destroy(allocator);
    const kept_a = try posix.eventfd(0, linux.EFD.CLOEXEC);
    defer posix.close(kept_a);
    const kept_b = try posix.eventfd(0, linux.EFD.CLOEXEC);
    defer posix.close(kept_b);
    const inheritable = try posix.eventfd(0, 0); // no close-on-exec
    defer posix.close(inheritable);
    // The child lists its fds: 0, 1, 2, 3, 4 and the one ls opens itself for the listing.
    const argv = [_:null]?[*:0]const u8{ "/bin/sh", "-c", "test -e /proc/self/fd/4 && test $(ls /proc/self/fd | wc -l) -le 6 && ! test -e /proc/self/fd/5" };
    const env = [_:null]?[*:0]const u8{};
    var errno: i32 = 0;
    _ = try s.spawn(0, &argv, &env, &.{ kept_b, kept_a }, &errno);
    var exits: [1]Exit = undefined;
    while (s.wait(&exits, 5000) == 0) {}
    try std.testing.expectEqual(@as(i32, 0), exits[0].code);
}
