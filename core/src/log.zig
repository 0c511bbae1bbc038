//! The core's log lines, in the library's one format (src/log.ts writes the same): text,
//! `[2026-12-02T18:06:54.158Z] WARNING worker#0 pid 5973: reactor: session 7: …`, or with
//! `json`, one object per line: `{"time":…,"level":…,"who":…,"pid":…,"scope":…,"session":7,
//! "message":…}`. Each line goes to stderr in one write, so the lines of the reactor threads
//! and of JavaScript never interleave. The process says who it is (`zg_log_identity`).
const std = @import("std");
const epoch = std.time.epoch;

/// Who this process is (`worker#0`, `manager`…), as the TypeScript log names it; the pid is
/// added to it.
var who_buffer: [96]u8 = undefined;
var who_len = std.atomic.Value(usize).init(0);
var json = std.atomic.Value(bool).init(false);

/// Lines longer than this are cut (and end with "…").
const line_max = 4096;

pub fn setIdentity(who: []const u8, as_json: bool) void {
    const n = @min(who.len, who_buffer.len);
    who_len.store(0, .release);
    @memcpy(who_buffer[0..n], who[0..n]);
    who_len.store(n, .release);
    json.store(as_json, .release);
}

pub fn levelName(level: std.log.Level) []const u8 {
    return switch (level) {
        .debug => "debug",
        .info => "info",
        .warn => "warning",
        .err => "error",
    };
}

/// One line for `level`, `scope` and the formatted message, written to stderr.
pub fn write(level: std.log.Level, scope: []const u8, comptime format: []const u8, args: anytype) void {
    var message_buffer: [line_max]u8 = undefined;
    const message = std.fmt.bufPrint(&message_buffer, format, args) catch blk: {
        const cut = message_buffer[0 .. line_max - 3];
        @memcpy(message_buffer[line_max - 3 ..], "\xe2\x80\xa6");
        break :blk message_buffer[0 .. cut.len + 3];
    };
    var line_buffer: [line_max * 2 + 256]u8 = undefined;
    var w: std.Io.Writer = .fixed(&line_buffer);
    format_line(&w, level, scope, message) catch {};
    const line = w.buffered();
    var done: usize = 0;
    while (done < line.len) {
        const n = std.posix.write(2, line[done..]) catch return;
        done += n;
    }
}

fn format_line(w: *std.Io.Writer, level: std.log.Level, scope: []const u8, message: []const u8) !void {
    var time_buffer: [24]u8 = undefined;
    const time = isoNow(&time_buffer);
    const who = who_buffer[0..who_len.load(.acquire)];
    const pid = std.os.linux.getpid();
    if (json.load(.acquire)) {
        try w.print("{{\"time\":\"{s}\",\"level\":\"{s}\",\"who\":", .{ time, levelName(level) });
        try jsonString(w, if (who.len > 0) who else "core");
        try w.print(",\"pid\":{d},\"scope\":\"{s}\"", .{ pid, scope });
        if (sessionOf(message)) |id| try w.print(",\"session\":{d}", .{id});
        try w.writeAll(",\"message\":");
        try jsonString(w, message);
        try w.writeAll("}\n");
        return;
    }
    var upper: [8]u8 = undefined;
    const name = levelName(level);
    for (name, 0..) |ch, i| upper[i] = std.ascii.toUpper(ch);
    const space = if (who.len > 0) " " else "";
    try w.print("[{s}] {s} {s}{s}pid {d}: {s}: {s}\n", .{ time, upper[0..name.len], who, space, pid, scope, message });
}

/// The session a message is about: it begins "session N".
pub fn sessionOf(message: []const u8) ?u32 {
    const prefix = "session ";
    if (!std.mem.startsWith(u8, message, prefix)) return null;
    var end = prefix.len;
    while (end < message.len and std.ascii.isDigit(message[end])) end += 1;
    if (end == prefix.len) return null;
    return std.fmt.parseInt(u32, message[prefix.len..end], 10) catch null;
}

fn jsonString(w: *std.Io.Writer, text: []const u8) !void {
    try w.writeByte('"');
    for (text) |ch| {
        switch (ch) {
            '"' => try w.writeAll("\\\""),
            '\\' => try w.writeAll("\\\\"),
            '\n' => try w.writeAll("\\n"),
            '\r' => try w.writeAll("\\r"),
            '\t' => try w.writeAll("\\t"),
            0...8, 11, 12, 14...0x1f, 0x7f => try w.print("\\u{x:0>4}", .{ch}),
            else => try w.writeByte(ch),
        }
    }
    try w.writeByte('"');
}

/// Now as `2026-12-02T18:06:54.158Z` (UTC, milliseconds), as JavaScript's `toISOString`.
fn isoNow(out: *[24]u8) []const u8 {
    const ms = std.time.milliTimestamp();
    return iso(ms, out);
}

pub fn iso(ms: i64, out: *[24]u8) []const u8 {
    const total: u64 = @intCast(@max(ms, 0));
    const es: epoch.EpochSeconds = .{ .secs = total / 1000 };
    const yd = es.getEpochDay().calculateYearDay();
    const md = yd.calculateMonthDay();
    const ds = es.getDaySeconds();
    return std.fmt.bufPrint(out, "{d:0>4}-{d:0>2}-{d:0>2}T{d:0>2}:{d:0>2}:{d:0>2}.{d:0>3}Z", .{
        yd.year,
        md.month.numeric(),
        md.day_index + 1,
        ds.getHoursIntoDay(),
        ds.getMinutesIntoHour(),
        ds.getSecondsIntoMinute(),
        total % 1000,
    }) catch unreachable;
}

const testing = std.testing;

test "log: ISO times as JavaScript writes them, the session a message names" {
    var buffer: [24]u8 = undefined;
    try testing.expectEqualStrings("2026-12-02T18:06:54.158Z", iso(1796234814158, &buffer));
    try testing.expectEqualStrings("1970-01-01T00:00:00.000Z", iso(0, &buffer));
    try testing.expectEqual(@as(?u32, 7), sessionOf("session 7: closing with 1002"));
    try testing.expectEqual(@as(?u32, null), sessionOf("shutdown: output still queued"));
}

test "log: a JSON line escapes what JSON must and names its session" {
    var out: [512]u8 = undefined;
    var w: std.Io.Writer = .fixed(&out);
    setIdentity("worker#1", true);
    defer setIdentity("", false);
    try format_line(&w, .warn, "websocket", "session 3: a \"bad\"\tframe\x01");
    const line = w.buffered();
    try testing.expect(std.mem.indexOf(u8, line, "\"level\":\"warning\"") != null);
    try testing.expect(std.mem.indexOf(u8, line, "\"session\":3") != null);
    try testing.expect(std.mem.indexOf(u8, line, "a \\\"bad\\\"\\tframe\\u0001") != null);
    try testing.expect(std.mem.endsWith(u8, line, "}\n"));
}
