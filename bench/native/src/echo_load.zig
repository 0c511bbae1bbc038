//! echo_load: a single-threaded epoll load generator for TCP echo servers.
//!
//!   echo_load --host 127.0.0.1 --port N [--connections 64] [--size 64] [--pipeline 1]
//!             [--duration 5] [--warmup 1] [--reconnect M]
//!
//! Every connection keeps `pipeline` messages of `size` bytes in flight: it sends, reads the
//! echo back, checks every byte against what it sent and sends the next message. Messages that
//! complete during the warm-up are verified but not counted; those that complete during the
//! following `duration` seconds are counted and their round-trip time goes into a histogram.
//! SIGTERM or SIGINT ends the run early, as the duration would (the counts so far are printed).
//! With `--reconnect M`, a connection that has had M messages echoed closes and a new one takes
//! its place (short connections, as behind a load balancer whose servers come and go). One JSON
//! line goes to stdout at the end, with the connections opened; the exit status is 1 if any
//! connection failed (a refused connect, a close before every echo came back) or any byte came
//! back wrong, 2 on a usage error.
//!
//! Message contents: each connection owns `size + pattern_slack` random bytes drawn from a
//! generator seeded with the connection's index, and message `seq` is the `size`-byte window
//! starting at `seq % pattern_slack`. Bytes routed to the wrong connection, dropped, duplicated
//! or reordered therefore fail the comparison (barring a vanishingly unlikely coincidence),
//! while sending stays zero-copy and checking is a `memcmp`.
const std = @import("std");
const common = @import("common.zig");
const Histogram = @import("histogram.zig").Histogram;
const posix = std.posix;
const linux = std.os.linux;
const c = std.c;

/// Prime, so that neighbouring messages (and a message and one `k` later, for small `k`) never
/// share a window offset.
const pattern_slack = 251;
/// One read takes at most this much; a single scratch buffer serves every connection.
const read_chunk = 256 * 1024;
const events_max = 256;

/// Set by SIGTERM or SIGINT: the run ends as if its time were up.
var stop_requested = std.atomic.Value(bool).init(false);

fn onStopSignal(_: c_int) callconv(.c) void {
    stop_requested.store(true, .release);
}

const Config = struct {
    address: std.net.Address,
    connections: u32,
    size: usize,
    pipeline: u32,
    duration_ns: i64,
    warmup_ns: i64,
    /// Messages per connection before it is replaced by a new one (0: never).
    reconnect: u64,
};

const Conn = struct {
    fd: posix.fd_t,
    index: u32,
    /// `size + pattern_slack` bytes unique to this connection (see the file comment).
    pattern: []const u8,
    /// Start time of each message in flight, indexed by `seq % pipeline`.
    sent_at: []i64,
    /// Next message to (start to) send, and how much of it is already written.
    send_seq: u64 = 0,
    send_off: usize = 0,
    /// Message being received, and how much of it already came back.
    recv_seq: u64 = 0,
    recv_off: usize = 0,
    /// EPOLLOUT is registered (only while a write is blocked).
    want_out: bool = false,
    open: bool = true,
};

const Stats = struct {
    /// Messages/bytes completed inside the measured window.
    messages: u64 = 0,
    bytes: u64 = 0,
    /// Every byte compared, warm-up included.
    verified_bytes: u64 = 0,
    errors: u64 = 0,
    /// Connections opened (more than `connections` with `--reconnect`).
    opened: u64 = 0,
    latency: Histogram = .{},
};

const Load = struct {
    config: Config,
    epoll_fd: posix.fd_t,
    conns: []Conn,
    open_count: u32 = 0,
    scratch: []u8,
    stats: Stats = .{},
    /// The measured window is [measure_start, measure_end) in CLOCK_MONOTONIC nanoseconds.
    measure_start: i64 = 0,
    measure_end: i64 = 0,

    fn message(load: *const Load, conn: *const Conn, seq: u64) []const u8 {
        const start: usize = @intCast(seq % pattern_slack);
        return conn.pattern[start..][0..load.config.size];
    }

    /// Sends until `pipeline` messages are in flight or the socket is full.
    fn fill(load: *Load, conn: *Conn, now: i64) void {
        const size = load.config.size;
        const quota = load.config.reconnect;
        while (conn.send_seq - conn.recv_seq < load.config.pipeline and (quota == 0 or conn.send_seq < quota)) {
            if (conn.send_off == 0) conn.sent_at[conn.send_seq % load.config.pipeline] = now;
            const rest = load.message(conn, conn.send_seq)[conn.send_off..];
            const rc = c.send(conn.fd, rest.ptr, rest.len, linux.MSG.NOSIGNAL | linux.MSG.DONTWAIT);
            if (rc < 0) {
                switch (posix.errno(rc)) {
                    .AGAIN => return load.setWantOut(conn, true),
                    .INTR => continue,
                    else => |e| return load.failConn(conn, "send failed: {s}", .{@tagName(e)}),
                }
            }
            conn.send_off += @intCast(rc);
            if (conn.send_off < size) return load.setWantOut(conn, true);
            conn.send_off = 0;
            conn.send_seq += 1;
        }
        load.setWantOut(conn, false);
    }

    fn setWantOut(load: *Load, conn: *Conn, on: bool) void {
        if (conn.want_out == on) return;
        conn.want_out = on;
        var event: linux.epoll_event = .{
            .events = linux.EPOLL.IN | (if (on) @as(u32, linux.EPOLL.OUT) else 0),
            .data = .{ .u64 = conn.index },
        };
        posix.epoll_ctl(load.epoll_fd, linux.EPOLL.CTL_MOD, conn.fd, &event) catch |err| {
            load.failConn(conn, "epoll_ctl failed: {s}", .{@errorName(err)});
        };
    }

    /// One read (the poll is level-triggered, so anything left is reported again), then verify
    /// what arrived and top the pipeline back up.
    fn onReadable(load: *Load, conn: *Conn) void {
        const rc = c.recv(conn.fd, load.scratch.ptr, load.scratch.len, linux.MSG.DONTWAIT);
        if (rc < 0) {
            switch (posix.errno(rc)) {
                .AGAIN, .INTR => return,
                else => |e| return load.failConn(conn, "recv failed: {s}", .{@tagName(e)}),
            }
        }
        if (rc == 0) return load.failConn(conn, "server closed the connection", .{});
        const now = common.nowNs();
        if (!load.verify(conn, load.scratch[0..@intCast(rc)], now)) return;
        if (load.config.reconnect > 0 and conn.recv_seq == load.config.reconnect) return load.replace(conn, now);
        load.fill(conn, now);
    }

    /// `--reconnect`: the connection had its messages; a new one starts over in its place.
    fn replace(load: *Load, conn: *Conn, now: i64) void {
        load.closeConn(conn);
        // (Asked to stop: no new connection, which the signal could interrupt.)
        if (stop_requested.load(.acquire)) return;
        conn.send_seq = 0;
        conn.send_off = 0;
        conn.recv_seq = 0;
        conn.recv_off = 0;
        conn.want_out = false;
        if (!openConn(load.config, load.epoll_fd, conn)) {
            load.stats.errors += 1;
            return;
        }
        load.open_count += 1;
        load.stats.opened += 1;
        load.fill(conn, now);
    }

    /// Checks `data` against the bytes in flight, completing messages as it goes.
    fn verify(load: *Load, conn: *Conn, data: []const u8, now: i64) bool {
        const size = load.config.size;
        const sent_total = conn.send_seq * size + conn.send_off;
        const received_total = conn.recv_seq * size + conn.recv_off;
        if (data.len > sent_total - received_total) {
            load.failConn(conn, "received {d} bytes but only {d} are in flight", .{
                data.len, sent_total - received_total,
            });
            return false;
        }
        const counted = now >= load.measure_start and now < load.measure_end;
        var rest = data;
        while (rest.len > 0) {
            const want = load.message(conn, conn.recv_seq)[conn.recv_off..];
            const n = @min(rest.len, want.len);
            // `eql` compares with vectors; `indexOfDiff` is a byte loop, so only for the report.
            if (!std.mem.eql(u8, rest[0..n], want[0..n])) {
                const at = std.mem.indexOfDiff(u8, rest[0..n], want[0..n]).?;
                load.failConn(conn, "byte mismatch in message {d} at offset {d}: got 0x{x:0>2}, want 0x{x:0>2}", .{
                    conn.recv_seq, conn.recv_off + at, rest[at], want[at],
                });
                return false;
            }
            load.stats.verified_bytes += n;
            conn.recv_off += n;
            rest = rest[n..];
            if (conn.recv_off == size) {
                if (counted) {
                    const started = conn.sent_at[conn.recv_seq % load.config.pipeline];
                    load.stats.latency.record(@intCast(@max(now - started, 0)));
                    load.stats.messages += 1;
                    load.stats.bytes += size;
                }
                conn.recv_off = 0;
                conn.recv_seq += 1;
            }
        }
        return true;
    }

    fn failConn(load: *Load, conn: *Conn, comptime fmt: []const u8, args: anytype) void {
        if (!conn.open) return;
        common.fail("connection {d}: " ++ fmt, .{conn.index} ++ args);
        load.stats.errors += 1;
        load.closeConn(conn);
    }

    fn closeConn(load: *Load, conn: *Conn) void {
        if (!conn.open) return;
        conn.open = false;
        load.open_count -= 1;
        posix.close(conn.fd); // also drops it from the epoll set
    }

    fn run(load: *Load) void {
        var events: [events_max]linux.epoll_event = undefined;
        const start = common.nowNs();
        for (load.conns) |*conn| if (conn.open) load.fill(conn, start);
        load.measure_start = start + load.config.warmup_ns;
        load.measure_end = load.measure_start + load.config.duration_ns;
        while (load.open_count > 0) {
            const now = common.nowNs();
            if (now >= load.measure_end or stop_requested.load(.acquire)) break;
            // Never sleep past the end of the window (rounded up to whole milliseconds).
            const timeout_ms: i32 = @intCast(@divFloor(load.measure_end - now + std.time.ns_per_ms - 1, std.time.ns_per_ms));
            const rc = c.epoll_wait(load.epoll_fd, &events, events_max, timeout_ms);
            if (rc < 0) {
                if (posix.errno(rc) == .INTR) continue;
                common.fail("epoll_wait failed: {s}", .{@tagName(posix.errno(rc))});
                load.stats.errors += 1;
                break;
            }
            for (events[0..@intCast(rc)]) |event| {
                const conn = &load.conns[@intCast(event.data.u64)];
                if (!conn.open) continue;
                // Errors and hang-ups surface through recv/send with their reason.
                if (event.events & (linux.EPOLL.IN | linux.EPOLL.ERR | linux.EPOLL.HUP) != 0) {
                    load.onReadable(conn);
                }
                if (conn.open and event.events & linux.EPOLL.OUT != 0) load.fill(conn, common.nowNs());
            }
        }
        // Fewer seconds than asked for only if every connection failed early.
        const end = @min(common.nowNs(), load.measure_end);
        load.measure_end = @max(end, load.measure_start);
    }
};

fn connectAll(config: Config, epoll_fd: posix.fd_t, conns: []Conn) u64 {
    var failures: u64 = 0;
    for (conns) |*conn| {
        conn.open = false;
        if (!openConn(config, epoll_fd, conn)) failures += 1;
    }
    return failures;
}

/// Connects `conn` (false, reported, on failure). A blocking connect keeps it simple; the
/// socket turns non-blocking afterwards.
fn openConn(config: Config, epoll_fd: posix.fd_t, conn: *Conn) bool {
    const fd = posix.socket(config.address.any.family, linux.SOCK.STREAM | linux.SOCK.CLOEXEC, 0) catch |err| {
        common.fail("connection {d}: socket failed: {s}", .{ conn.index, @errorName(err) });
        return false;
    };
    posix.connect(fd, &config.address.any, config.address.getOsSockLen()) catch |err| {
        common.fail("connection {d}: connect failed: {s}", .{ conn.index, @errorName(err) });
        posix.close(fd);
        return false;
    };
    common.setNoDelay(fd);
    const flags = posix.fcntl(fd, linux.F.GETFL, 0) catch unreachable;
    _ = posix.fcntl(fd, linux.F.SETFL, flags | @as(u32, @bitCast(linux.O{ .NONBLOCK = true }))) catch unreachable;
    var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = conn.index } };
    posix.epoll_ctl(epoll_fd, linux.EPOLL.CTL_ADD, fd, &event) catch |err| {
        common.fail("connection {d}: epoll_ctl failed: {s}", .{ conn.index, @errorName(err) });
        posix.close(fd);
        return false;
    };
    conn.fd = fd;
    conn.open = true;
    return true;
}

fn parseConfig(args: []const [:0]const u8) error{Usage}!Config {
    const options = try common.Options.parse(args);
    try options.only(&.{ "host", "port", "connections", "size", "duration", "warmup", "pipeline", "reconnect" });
    const address = try options.serverAddress();
    const config: Config = .{
        .address = address,
        .connections = try options.int(u32, "connections", 64),
        .size = try options.int(usize, "size", 64),
        .pipeline = try options.int(u32, "pipeline", 1),
        .duration_ns = @intFromFloat(try options.float("duration", 5) * std.time.ns_per_s),
        .warmup_ns = @intFromFloat(try options.float("warmup", 1) * std.time.ns_per_s),
        .reconnect = try options.int(u64, "reconnect", 0),
    };
    if (config.connections == 0 or config.size == 0 or config.pipeline == 0 or config.duration_ns == 0) {
        common.fail("--connections, --size, --pipeline and --duration must be positive", .{});
        return error.Usage;
    }
    return config;
}

pub fn main() u8 {
    const gpa = std.heap.c_allocator;
    const args = std.process.argsAlloc(gpa) catch return 2;
    defer std.process.argsFree(gpa, args);
    const config = parseConfig(args) catch return 2;
    // (SA_RESTART: a blocking connect the signal lands in goes on, not fails.)
    const action: posix.Sigaction = .{ .handler = .{ .handler = onStopSignal }, .mask = posix.sigemptyset(), .flags = posix.SA.RESTART };
    posix.sigaction(posix.SIG.TERM, &action, null);
    posix.sigaction(posix.SIG.INT, &action, null);

    const n = config.connections;
    const stride = config.size + pattern_slack;
    const patterns = gpa.alloc(u8, n * stride) catch return oom();
    defer gpa.free(patterns);
    const sent_at = gpa.alloc(i64, n * config.pipeline) catch return oom();
    defer gpa.free(sent_at);
    const conns = gpa.alloc(Conn, n) catch return oom();
    defer gpa.free(conns);
    const scratch = gpa.alloc(u8, read_chunk) catch return oom();
    defer gpa.free(scratch);
    const load = gpa.create(Load) catch return oom(); // the histogram is ~30 KiB: keep it off the stack
    defer gpa.destroy(load);

    for (conns, 0..) |*conn, i| {
        const pattern = patterns[i * stride ..][0..stride];
        var prng = std.Random.DefaultPrng.init(0x5eed_0000 + i);
        prng.random().bytes(pattern);
        conn.* = .{
            .fd = -1,
            .index = @intCast(i),
            .pattern = pattern,
            .sent_at = sent_at[i * config.pipeline ..][0..config.pipeline],
        };
    }

    const epoll_fd = posix.epoll_create1(linux.EPOLL.CLOEXEC) catch |err| {
        common.fail("epoll_create1 failed: {s}", .{@errorName(err)});
        return 1;
    };
    defer posix.close(epoll_fd);

    load.* = .{ .config = config, .epoll_fd = epoll_fd, .conns = conns, .scratch = scratch };
    load.stats.errors = connectAll(config, epoll_fd, conns);
    for (conns) |conn| {
        if (conn.open) load.open_count += 1;
    }
    load.stats.opened = load.open_count;
    if (load.open_count > 0) load.run();
    for (conns) |*conn| load.closeConn(conn);

    const s = &load.stats;
    const seconds = @as(f64, @floatFromInt(load.measure_end - load.measure_start)) / std.time.ns_per_s;
    const messages: f64 = @floatFromInt(s.messages);
    const per_second = if (seconds > 0) messages / seconds else 0;
    const mb_per_second = if (seconds > 0) @as(f64, @floatFromInt(s.bytes)) / seconds / 1e6 else 0;
    const p50_us = @as(f64, @floatFromInt(s.latency.percentile(0.50))) / 1000;
    const p99_us = @as(f64, @floatFromInt(s.latency.percentile(0.99))) / 1000;
    common.printLine(
        "{{\"messages\":{d},\"seconds\":{d:.3},\"msgs_per_sec\":{d:.1},\"mb_per_sec\":{d:.3}," ++
            "\"p50_us\":{d:.2},\"p99_us\":{d:.2},\"errors\":{d},\"verified_bytes\":{d},\"connections\":{d}}}",
        .{ s.messages, seconds, per_second, mb_per_second, p50_us, p99_us, s.errors, s.verified_bytes, s.opened },
    ) catch return 1;
    return if (s.errors == 0) 0 else 1;
}

fn oom() u8 {
    common.fail("out of memory", .{});
    return 1;
}
