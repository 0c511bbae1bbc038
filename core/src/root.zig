//! libziggurat: the C ABI that src/_ffi/symbols.ts declares. Every function returns an
//! `abi.Status` (or a plain value where it cannot fail); errno of a failed OS call is kept per
//! thread for `zg_last_errno`. The exports are grouped by the handle they work on, one file
//! each: api_server.zig (a reactor), api_reactor_threads.zig (PROCESS mode's master),
//! api_reactors.zig (either as a set of reactors configured alike), api_region.zig (the tree's
//! region and its session tables), api_supervisor.zig (the manager's children), api_os.zig (sockets, fds, signals, files, privileges), api_http.zig (content types), api_pubsub.zig (topic counts); api.zig
//! is what they share.
const std = @import("std");
const abi = @import("abi.zig");
const api = @import("api.zig");
const log = @import("log.zig");
const Status = abi.Status;

comptime {
    _ = @import("api_server.zig");
    _ = @import("api_reactor_threads.zig");
    _ = @import("api_reactors.zig");
    _ = @import("api_region.zig");
    _ = @import("api_supervisor.zig");
    _ = @import("api_os.zig");
    _ = @import("api_http.zig");
    _ = @import("api_pubsub.zig");
}

/// The core logs through std.log to stderr, filtered by the least severe level any server of
/// this process asked for (`ServerConfig.log_level`: 0 debug, 1 info, 2 warning, 3 error).
pub const std_options: std.Options = .{ .log_level = .debug, .logFn = logFn };

fn logFn(comptime level: std.log.Level, comptime scope: @Type(.enum_literal), comptime format: []const u8, args: anytype) void {
    const rank: u8 = switch (level) {
        .debug => 0,
        .info => 1,
        .warn => 2,
        .err => 3,
    };
    if (rank < api.log_level_min.load(.monotonic)) return;
    log.write(level, @tagName(scope), format, args);
}

/// The C API's version: bumped whenever an export or its meaning changes; src/_ffi/library.ts
/// refuses a library of another version.
pub const version: u32 = 5;

export fn zg_version() u32 {
    return version;
}

export fn zg_last_errno() i32 {
    return api.last_errno;
}

export fn zg_layout(out: *[abi.layout_len]u32) Status {
    out.* = abi.layout();
    return .ok;
}

/// `abi.describe`'s table into `out`; its length, or 0 when `cap` is too small.
export fn zg_describe(out: [*]u8, cap: usize) usize {
    var w: std.Io.Writer = .fixed(out[0..cap]);
    abi.describe(&w) catch return 0;
    return w.buffered().len;
}

test {
    std.testing.refAllDecls(@This());
    _ = @import("ring.zig");
    _ = @import("session_table.zig");
    _ = @import("shm.zig");
    _ = @import("listen.zig");
    _ = @import("reactor.zig");
    _ = @import("reactor_test.zig");
    _ = @import("spawn.zig");
    _ = @import("reactor_threads.zig");
    _ = @import("signals.zig");
    _ = @import("framing.zig");
    _ = @import("proxy_protocol.zig");
    _ = @import("http.zig");
    _ = @import("http_session.zig");
    _ = @import("http_static.zig");
    _ = @import("http_date.zig");
    _ = @import("websocket.zig");
    _ = @import("websocket_session.zig");
    _ = @import("mime.zig");
    _ = @import("settings.zig");
    _ = @import("files.zig");
    _ = @import("linger.zig");
    _ = @import("orphans.zig");
    _ = @import("users.zig");
    _ = @import("errno.zig");
    _ = @import("handoff.zig");
    _ = @import("carry.zig");
    _ = @import("log.zig");
    _ = @import("api_server.zig");
    _ = @import("api_reactor_threads.zig");
    _ = @import("api_reactors.zig");
    _ = @import("api_region.zig");
    _ = @import("api_supervisor.zig");
    _ = @import("api_os.zig");
    _ = @import("api_http.zig");
    _ = @import("api_pubsub.zig");
}
