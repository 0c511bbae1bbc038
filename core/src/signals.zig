//! Signals the master takes over from Deno: SIGUSR1 and SIGUSR2 (Swoole's reload signals) and
//! SIGRTMIN (reopen the log file). Deno's own `addSignalListener` cannot serve here: since Deno
//! 2.9.2 SIGUSR1 also starts the V8 inspector on 127.0.0.1:9229 (a debugger port opened on every
//! reload), and SIGRTMIN is not among the signals it accepts. The handler only counts the signal
//! and writes an eventfd (both async-signal-safe); JavaScript compares the counts when that fd
//! wakes it.
const std = @import("std");
const linux = std.os.linux;
const posix = std.posix;

const signals_max = 65;
var counts: [signals_max]std.atomic.Value(u32) = @splat(.init(0));
var doorbells: [signals_max]std.atomic.Value(i32) = @splat(.init(-1));

fn handler(signo: c_int) callconv(.c) void {
    const index: usize = @intCast(signo);
    if (index >= signals_max) return;
    _ = counts[index].fetchAdd(1, .monotonic);
    const fd = doorbells[index].load(.monotonic);
    if (fd >= 0) {
        const saved = std.c._errno().*;
        const one: u64 = 1;
        _ = linux.write(fd, @ptrCast(&one), 8);
        std.c._errno().* = saved;
    }
}

/// Handles `signo` here from now on (replacing whatever handled it, Deno's included), waking
/// `doorbell_fd` (an eventfd, or -1) on each delivery. Idempotent: call it again after something
/// may have installed another handler.
pub fn take(signo: u8, doorbell_fd: i32) !void {
    if (signo == 0 or signo >= signals_max) return error.InvalidArgument;
    doorbells[signo].store(doorbell_fd, .monotonic);
    var action: posix.Sigaction = .{
        .handler = .{ .handler = handler },
        .mask = posix.sigemptyset(),
        .flags = posix.SA.RESTART,
    };
    posix.sigaction(signo, &action, null);
}

/// Whether our handler is the one installed for `signo`.
pub fn isOurs(signo: u8) bool {
    var current: posix.Sigaction = undefined;
    posix.sigaction(signo, null, &current);
    return current.handler.handler == handler;
}

pub fn count(signo: u8) u32 {
    if (signo >= signals_max) return 0;
    return counts[signo].load(.monotonic);
}

test "signals: a taken signal is counted and wakes its fd" {
    const fd = try posix.eventfd(0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK);
    defer posix.close(fd);
    const signo: u8 = @intCast(linux.SIG.USR2);
    try take(signo, fd);
    try std.testing.expect(isOurs(signo));
    const before = count(signo);
    _ = linux.kill(linux.getpid(), signo);
    try std.testing.expectEqual(before + 1, count(signo));
    var value: u64 = 0;
    try std.testing.expectEqual(@as(usize, 8), try posix.read(fd, std.mem.asBytes(&value)));
    try std.testing.expectEqual(@as(u64, 1), value);
}
