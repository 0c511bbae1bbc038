//! ws_load: a single-threaded epoll load generator for WebSocket servers (RFC 6455).
//!
//!   ws_load --host 127.0.0.1 --port N --mode echo [--connections 64] [--size 64]
//!           [--duration 5] [--warmup 1]
//!   ws_load --host 127.0.0.1 --port N --mode fanout [--subscribers 10000] [--rounds 20]
//!           [--size 64]
//!
//! echo: every connection keeps one binary message of `size` bytes in flight, reads the echo
//! back (in one frame or in fragments), checks every byte and sends the next. Messages that
//! complete in the `duration` seconds after `warmup` are counted and timed.
//!
//! fanout: `subscribers` connections open `/sub` (the server subscribes each to one topic and
//! answers "ready"), one more opens `/`. Each round that one sends a text message of `size`
//! bytes starting "pub:<round>:", which the server publishes to the topic; the round's time
//! runs from the send until the last subscriber has it. Rounds run one after the other.
//!
//! Client frames are masked with a zero key (valid, and the payload stays as it is). One JSON
//! line goes to stdout; the exit status is 1 on any failure, 2 on a usage error.
const std = @import("std");
const common = @import("common.zig");
const Histogram = @import("histogram.zig").Histogram;
const posix = std.posix;
const linux = std.os.linux;
const c = std.c;
const gpa = std.heap.c_allocator;

const events_max = 256;
const round_timeout_ns = 10 * std.time.ns_per_s;
const pattern_slack = 251;

const Mode = enum { echo, fanout };

const Config = struct {
    address: std.net.Address,
    mode: Mode,
    connections: u32,
    subscribers: u32,
    rounds: u32,
    size: usize,
    duration_ns: i64,
    warmup_ns: i64,
};

const Conn = struct {
    fd: posix.fd_t = -1,
    index: u32,
    /// Bytes read and not yet parsed into frames.
    in: std.ArrayList(u8) = .empty,
    /// echo: this connection's bytes (message `seq` is the window at `seq % pattern_slack`),
    /// the frame being written, the message being received.
    pattern: []u8 = &.{},
    out: std.ArrayList(u8) = .empty,
    out_off: usize = 0,
    seq: u64 = 0,
    got: usize = 0,
    sent_at: i64 = 0,
    /// fanout: messages received.
    received: u32 = 0,
    open: bool = false,
};

var errors: u64 = 0;

fn failed(comptime fmt: []const u8, args: anytype) void {
    common.fail(fmt, args);
    errors += 1;
}

/// A frame's header as the server sent it (unmasked), or null when incomplete.
const Frame = struct { fin: bool, opcode: u4, start: usize, len: usize };

fn parseFrame(bytes: []const u8) ?Frame {
    if (bytes.len < 2) return null;
    var len: u64 = bytes[1] & 0x7f;
    var at: usize = 2;
    if (len == 126) {
        if (bytes.len < 4) return null;
        len = std.mem.readInt(u16, bytes[2..4], .big);
        at = 4;
    } else if (len == 127) {
        if (bytes.len < 10) return null;
        len = std.mem.readInt(u64, bytes[2..10], .big);
        at = 10;
    }
    if (bytes[1] & 0x80 != 0) at += 4;
    if (bytes.len < at + len) return null;
    return .{ .fin = bytes[0] & 0x80 != 0, .opcode = @intCast(bytes[0] & 0x0f), .start = at, .len = @intCast(len) };
}

/// A masked client frame (zero key) of `payload` into `out`.
fn buildFrame(out: *std.ArrayList(u8), opcode: u8, payload: []const u8) !void {
    out.clearRetainingCapacity();
    try out.append(gpa, 0x80 | opcode);
    if (payload.len < 126) {
        try out.append(gpa, 0x80 | @as(u8, @intCast(payload.len)));
    } else if (payload.len <= 0xffff) {
        try out.append(gpa, 0x80 | 126);
        try out.appendSlice(gpa, &std.mem.toBytes(std.mem.nativeToBig(u16, @intCast(payload.len))));
    } else {
        try out.append(gpa, 0x80 | 127);
        try out.appendSlice(gpa, &std.mem.toBytes(std.mem.nativeToBig(u64, payload.len)));
    }
    try out.appendSlice(gpa, &.{ 0, 0, 0, 0 });
    try out.appendSlice(gpa, payload);
}

/// Connects (blocking), upgrades on `path` and, with `ready`, waits for the server's "ready".
fn open(config: Config, conn: *Conn, path: []const u8, ready: bool) !void {
    const fd = try posix.socket(config.address.any.family, linux.SOCK.STREAM | linux.SOCK.CLOEXEC, 0);
    errdefer posix.close(fd);
    try posix.connect(fd, &config.address.any, config.address.getOsSockLen());
    common.setNoDelay(fd);
    var request: [256]u8 = undefined;
    const text = try std.fmt.bufPrint(&request, "GET {s} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" ++
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", .{path});
    var sent: usize = 0;
    while (sent < text.len) sent += try posix.write(fd, text[sent..]);
    var buffer: [4096]u8 = undefined;
    var have: usize = 0;
    const head_end = while (true) {
        if (have == buffer.len) return error.HeadTooLong;
        const n = try posix.read(fd, buffer[have..]);
        if (n == 0) return error.ClosedInHandshake;
        have += n;
        if (std.mem.indexOf(u8, buffer[0..have], "\r\n\r\n")) |end| break end + 4;
    };
    if (!std.mem.startsWith(u8, &buffer, "HTTP/1.1 101")) return error.NotUpgraded;
    try conn.in.appendSlice(gpa, buffer[head_end..have]);
    if (ready) {
        while (true) {
            if (parseFrame(conn.in.items)) |f| {
                if (!std.mem.eql(u8, conn.in.items[f.start..][0..f.len], "ready")) return error.NotReady;
                conn.in.replaceRangeAssumeCapacity(0, f.start + f.len, &.{});
                break;
            }
            const n = try posix.read(fd, &buffer);
            if (n == 0) return error.ClosedBeforeReady;
            try conn.in.appendSlice(gpa, buffer[0..n]);
        }
    }
    const flags = try posix.fcntl(fd, linux.F.GETFL, 0);
    _ = try posix.fcntl(fd, linux.F.SETFL, flags | @as(u32, @bitCast(linux.O{ .NONBLOCK = true })));
    conn.fd = fd;
    conn.open = true;
}

const Load = struct {
    config: Config,
    epoll_fd: posix.fd_t,
    conns: []Conn,
    scratch: []u8,
    latency: Histogram = .{},
    messages: u64 = 0,
    measure_start: i64 = 0,
    measure_end: i64 = 0,
    /// fanout: the round in flight and how many subscribers have it.
    round: u32 = 0,
    round_got: u32 = 0,

    fn watch(load: *Load, conn: *Conn, out: bool) void {
        var event: linux.epoll_event = .{ .events = linux.EPOLL.IN | (if (out) @as(u32, linux.EPOLL.OUT) else 0), .data = .{ .u64 = conn.index } };
        posix.epoll_ctl(load.epoll_fd, linux.EPOLL.CTL_MOD, conn.fd, &event) catch |err| load.fail(conn, "epoll_ctl: {s}", .{@errorName(err)});
    }

    fn fail(load: *Load, conn: *Conn, comptime fmt: []const u8, args: anytype) void {
        _ = load;
        if (!conn.open) return;
        failed("connection {d}: " ++ fmt, .{conn.index} ++ args);
        conn.open = false;
        posix.close(conn.fd);
    }

    /// Writes what is left of the connection's frame; true when it is all written.
    fn flush(load: *Load, conn: *Conn) bool {
        while (conn.out_off < conn.out.items.len) {
            const rest = conn.out.items[conn.out_off..];
            const rc = c.send(conn.fd, rest.ptr, rest.len, linux.MSG.NOSIGNAL | linux.MSG.DONTWAIT);
            if (rc < 0) switch (posix.errno(rc)) {
                .AGAIN => {
                    load.watch(conn, true);
                    return false;
                },
                .INTR => continue,
                else => |e| {
                    load.fail(conn, "send: {s}", .{@tagName(e)});
                    return false;
                },
            };
            conn.out_off += @intCast(rc);
        }
        return true;
    }

    fn sendMessage(load: *Load, conn: *Conn, opcode: u8, payload: []const u8) void {
        buildFrame(&conn.out, opcode, payload) catch return load.fail(conn, "out of memory", .{});
        conn.out_off = 0;
        conn.sent_at = common.nowNs();
        if (load.flush(conn)) load.watch(conn, false);
    }

    fn echoPayload(load: *const Load, conn: *const Conn) []const u8 {
        return conn.pattern[@intCast(conn.seq % pattern_slack)..][0..load.config.size];
    }

    fn onReadable(load: *Load, conn: *Conn) void {
        const rc = c.recv(conn.fd, load.scratch.ptr, load.scratch.len, linux.MSG.DONTWAIT);
        if (rc < 0) switch (posix.errno(rc)) {
            .AGAIN, .INTR => return,
            else => |e| return load.fail(conn, "recv: {s}", .{@tagName(e)}),
        };
        if (rc == 0) return load.fail(conn, "the server closed the connection", .{});
        conn.in.appendSlice(gpa, load.scratch[0..@intCast(rc)]) catch return load.fail(conn, "out of memory", .{});
        var at: usize = 0;
        while (parseFrame(conn.in.items[at..])) |f| {
            const payload = conn.in.items[at + f.start ..][0..f.len];
            at += f.start + f.len;
            if (f.opcode == 9 or f.opcode == 10) continue;
            if (f.opcode == 8) return load.fail(conn, "the server sent a Close", .{});
            switch (load.config.mode) {
                .echo => load.echoFrame(conn, f, payload),
                .fanout => load.fanoutFrame(conn, f, payload),
            }
            if (!conn.open) return;
        }
        conn.in.replaceRangeAssumeCapacity(0, at, &.{});
    }

    fn echoFrame(load: *Load, conn: *Conn, f: Frame, payload: []const u8) void {
        const want = load.echoPayload(conn);
        if (conn.got + payload.len > want.len or !std.mem.eql(u8, payload, want[conn.got..][0..payload.len])) {
            return load.fail(conn, "message {d}: the echo differs from what was sent", .{conn.seq});
        }
        conn.got += payload.len;
        if (!f.fin) return;
        if (conn.got != want.len) return load.fail(conn, "message {d}: {d} bytes back of {d}", .{ conn.seq, conn.got, want.len });
        const now = common.nowNs();
        if (now >= load.measure_start and now < load.measure_end) {
            load.latency.record(@intCast(@max(now - conn.sent_at, 0)));
            load.messages += 1;
        }
        conn.got = 0;
        conn.seq += 1;
        load.sendMessage(conn, 2, load.echoPayload(conn));
    }

    fn fanoutFrame(load: *Load, conn: *Conn, f: Frame, payload: []const u8) void {
        if (conn.index == load.config.subscribers) return; // (The publisher hears nothing.)
        var marker: [32]u8 = undefined;
        const prefix = std.fmt.bufPrint(&marker, "pub:{d}:", .{load.round}) catch unreachable;
        if (!f.fin or payload.len != load.config.size or !std.mem.startsWith(u8, payload, prefix)) {
            return load.fail(conn, "round {d}: an unexpected message of {d} bytes", .{ load.round, payload.len });
        }
        conn.received += 1;
        if (conn.received != load.round + 1) return load.fail(conn, "round {d}: a message twice", .{load.round});
        load.round_got += 1;
    }

    fn poll(load: *Load, timeout_ms: i32) bool {
        var events: [events_max]linux.epoll_event = undefined;
        const rc = c.epoll_wait(load.epoll_fd, &events, events_max, timeout_ms);
        if (rc < 0) {
            if (posix.errno(rc) == .INTR) return true;
            failed("epoll_wait: {s}", .{@tagName(posix.errno(rc))});
            return false;
        }
        for (events[0..@intCast(rc)]) |event| {
            const conn = &load.conns[@intCast(event.data.u64)];
            if (!conn.open) continue;
            if (event.events & (linux.EPOLL.IN | linux.EPOLL.ERR | linux.EPOLL.HUP) != 0) load.onReadable(conn);
            if (conn.open and event.events & linux.EPOLL.OUT != 0 and load.flush(conn)) load.watch(conn, false);
        }
        return true;
    }

    fn runEcho(load: *Load) void {
        const start = common.nowNs();
        load.measure_start = start + load.config.warmup_ns;
        load.measure_end = load.measure_start + load.config.duration_ns;
        for (load.conns) |*conn| if (conn.open) load.sendMessage(conn, 2, load.echoPayload(conn));
        while (errors == 0) {
            const now = common.nowNs();
            if (now >= load.measure_end) break;
            const left: i32 = @intCast(@divFloor(load.measure_end - now + std.time.ns_per_ms - 1, std.time.ns_per_ms));
            if (!load.poll(left)) break;
        }
    }

    fn runFanout(load: *Load) void {
        const publisher = &load.conns[load.config.subscribers];
        const message = gpa.alloc(u8, load.config.size) catch return failed("out of memory", .{});
        defer gpa.free(message);
        while (load.round < load.config.rounds and errors == 0) : (load.round += 1) {
            @memset(message, 'x');
            const prefix = std.fmt.bufPrint(message, "pub:{d}:", .{load.round}) catch return failed("--size is too small for the round marker", .{});
            _ = prefix;
            load.round_got = 0;
            const started = common.nowNs();
            load.sendMessage(publisher, 1, message);
            while (load.round_got < load.config.subscribers and errors == 0) {
                if (common.nowNs() - started > round_timeout_ns) {
                    return failed("round {d}: {d} of {d} subscribers had it after 10 s", .{ load.round, load.round_got, load.config.subscribers });
                }
                if (!load.poll(100)) return;
            }
            load.latency.record(@intCast(common.nowNs() - started));
            load.messages += load.round_got;
        }
    }
};

fn parseConfig(args: []const [:0]const u8) error{Usage}!Config {
    const options = try common.Options.parse(args);
    try options.only(&.{ "host", "port", "mode", "connections", "subscribers", "rounds", "size", "duration", "warmup" });
    const address = try options.serverAddress();
    const mode = std.meta.stringToEnum(Mode, options.string("mode", "echo")) orelse {
        common.fail("--mode is echo or fanout", .{});
        return error.Usage;
    };
    const config: Config = .{
        .address = address,
        .mode = mode,
        .connections = try options.int(u32, "connections", 64),
        .subscribers = try options.int(u32, "subscribers", 10000),
        .rounds = try options.int(u32, "rounds", 20),
        .size = try options.int(usize, "size", 64),
        .duration_ns = @intFromFloat(try options.float("duration", 5) * std.time.ns_per_s),
        .warmup_ns = @intFromFloat(try options.float("warmup", 1) * std.time.ns_per_s),
    };
    if (config.connections == 0 or config.subscribers == 0 or config.size < 16 or config.rounds == 0) {
        common.fail("--connections, --subscribers and --rounds must be positive, --size at least 16", .{});
        return error.Usage;
    }
    return config;
}

pub fn main() u8 {
    const args = std.process.argsAlloc(gpa) catch return 2;
    defer std.process.argsFree(gpa, args);
    const config = parseConfig(args) catch return 2;
    // Ten thousand subscribers need more descriptors than the usual soft limit.
    if (posix.getrlimit(.NOFILE)) |limit| {
        posix.setrlimit(.NOFILE, .{ .cur = limit.max, .max = limit.max }) catch {};
    } else |_| {}

    const n: usize = if (config.mode == .echo) config.connections else config.subscribers + 1;
    const conns = gpa.alloc(Conn, n) catch return 1;
    defer gpa.free(conns);
    const scratch = gpa.alloc(u8, 256 * 1024) catch return 1;
    defer gpa.free(scratch);
    const load = gpa.create(Load) catch return 1;
    defer gpa.destroy(load);
    const epoll_fd = posix.epoll_create1(linux.EPOLL.CLOEXEC) catch return 1;
    defer posix.close(epoll_fd);
    load.* = .{ .config = config, .epoll_fd = epoll_fd, .conns = conns, .scratch = scratch };

    for (conns, 0..) |*conn, i| {
        conn.* = .{ .index = @intCast(i) };
        if (config.mode == .echo) {
            conn.pattern = gpa.alloc(u8, config.size + pattern_slack) catch return 1;
            var prng = std.Random.DefaultPrng.init(0x5eed_0000 + i);
            prng.random().bytes(conn.pattern);
        }
        const subscriber = config.mode == .fanout and i < config.subscribers;
        open(config, conn, if (subscriber) "/sub" else "/", subscriber) catch |err| {
            failed("connection {d}: {s}", .{ i, @errorName(err) });
            break;
        };
        var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = conn.index } };
        posix.epoll_ctl(epoll_fd, linux.EPOLL.CTL_ADD, conn.fd, &event) catch {
            failed("connection {d}: epoll_ctl", .{i});
            break;
        };
    }
    if (errors == 0) switch (config.mode) {
        .echo => load.runEcho(),
        .fanout => load.runFanout(),
    };
    for (conns) |*conn| {
        if (conn.open) posix.close(conn.fd);
        conn.in.deinit(gpa);
        conn.out.deinit(gpa);
        if (conn.pattern.len > 0) gpa.free(conn.pattern);
    }

    const us = struct {
        fn of(ns: u64) f64 {
            return @as(f64, @floatFromInt(ns)) / 1000;
        }
    }.of;
    switch (config.mode) {
        .echo => {
            const seconds = @as(f64, @floatFromInt(@max(load.measure_end - load.measure_start, 1))) / std.time.ns_per_s;
            common.printLine("{{\"messages\":{d},\"seconds\":{d:.3},\"msgs_per_sec\":{d:.1},\"p50_us\":{d:.2},\"p99_us\":{d:.2},\"errors\":{d}}}", .{
                load.messages,                     seconds,                           @as(f64, @floatFromInt(load.messages)) / seconds,
                us(load.latency.percentile(0.50)), us(load.latency.percentile(0.99)), errors,
            }) catch return 1;
        },
        .fanout => {
            common.printLine("{{\"subscribers\":{d},\"rounds\":{d},\"delivered\":{d},\"p50_ms\":{d:.3},\"max_ms\":{d:.3},\"errors\":{d}}}", .{
                config.subscribers,                       load.round,                              load.messages,
                us(load.latency.percentile(0.50)) / 1000, us(load.latency.percentile(1.0)) / 1000, errors,
            }) catch return 1;
        },
    }
    return if (errors == 0) 0 else 1;
}
