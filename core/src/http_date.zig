//! HTTP dates (RFC 9110 5.6.7, IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`): written for
//! `Date` and `Last-Modified`, read from `If-Modified-Since` and `If-Range`. The obsolete
//! forms are not read (a condition in one is ignored, which serves the whole file: safe).
const std = @import("std");
const epoch = std.time.epoch;

pub const len = 29;

const days = [_][]const u8{ "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
const months = [_][]const u8{ "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/// `seconds` (Unix time) as an IMF-fixdate.
pub fn format(seconds: i64, out: *[len]u8) []const u8 {
    const s: u64 = @intCast(@max(seconds, 0));
    const es: epoch.EpochSeconds = .{ .secs = s };
    const day = es.getEpochDay();
    const yd = day.calculateYearDay();
    const md = yd.calculateMonthDay();
    const ds = es.getDaySeconds();
    _ = std.fmt.bufPrint(out, "{s}, {d:0>2} {s} {d:0>4} {d:0>2}:{d:0>2}:{d:0>2} GMT", .{
        days[day.day % 7],
        md.day_index + 1,
        months[md.month.numeric() - 1],
        yd.year,
        ds.getHoursIntoDay(),
        ds.getMinutesIntoHour(),
        ds.getSecondsIntoMinute(),
    }) catch unreachable;
    return out[0..len];
}

/// The `Date` of this second, formatted once a second per thread.
pub fn now(out: *[len]u8) []const u8 {
    const S = struct {
        threadlocal var second: i64 = -1;
        threadlocal var text: [len]u8 = undefined;
    };
    const t = std.time.timestamp();
    if (t != S.second) {
        _ = format(t, &S.text);
        S.second = t;
    }
    out.* = S.text;
    return out[0..len];
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn daysFromCivil(year: i64, month: u32, day: u32) i64 {
    const y = if (month <= 2) year - 1 else year;
    const era = @divFloor(y, 400);
    const yoe = y - era * 400;
    const m: i64 = month;
    const doy = @divFloor(153 * (if (m > 2) m - 3 else m + 9) + 2, 5) + day - 1;
    const doe = yoe * 365 + @divFloor(yoe, 4) - @divFloor(yoe, 100) + doy;
    return era * 146097 + doe - 719468;
}

fn number(text: []const u8) ?u32 {
    var n: u32 = 0;
    for (text) |c| {
        if (!std.ascii.isDigit(c)) return null;
        n = n * 10 + (c - '0');
    }
    return n;
}

/// An IMF-fixdate as Unix time, or null when it is not one.
pub fn parse(text: []const u8) ?i64 {
    if (text.len != len) return null;
    if (text[3] != ',' or text[4] != ' ' or text[7] != ' ' or text[11] != ' ' or text[16] != ' ' or
        text[19] != ':' or text[22] != ':' or !std.mem.eql(u8, text[25..], " GMT")) return null;
    const day = number(text[5..7]) orelse return null;
    const month: u32 = for (months, 1..) |m, i| {
        if (std.mem.eql(u8, text[8..11], m)) break @intCast(i);
    } else return null;
    const year = number(text[12..16]) orelse return null;
    const hour = number(text[17..19]) orelse return null;
    const minute = number(text[20..22]) orelse return null;
    const second = number(text[23..25]) orelse return null;
    if (day < 1 or day > 31 or hour > 23 or minute > 59 or second > 60) return null;
    return daysFromCivil(year, month, day) * 86400 + @as(i64, hour) * 3600 + @as(i64, minute) * 60 + second;
}

test "http date: formats and reads IMF-fixdate" {
    var buffer: [len]u8 = undefined;
    try std.testing.expectEqualStrings("Sun, 06 Nov 1994 08:49:37 GMT", format(784111777, &buffer));
    try std.testing.expectEqualStrings("Thu, 01 Jan 1970 00:00:00 GMT", format(0, &buffer));
    try std.testing.expectEqualStrings("Tue, 29 Feb 2028 12:00:00 GMT", format(1835438400, &buffer));
    try std.testing.expectEqual(@as(?i64, 784111777), parse("Sun, 06 Nov 1994 08:49:37 GMT"));
    try std.testing.expectEqual(@as(?i64, 1835438400), parse("Tue, 29 Feb 2028 12:00:00 GMT"));
    try std.testing.expectEqual(@as(?i64, null), parse("Sunday, 06-Nov-94 08:49:37 GMT"));
    try std.testing.expectEqual(@as(?i64, null), parse("Sun, 06 Nov 1994 08:49:37 UTC"));
    try std.testing.expectEqual(@as(?i64, null), parse("Sun, 06 Xyz 1994 08:49:37 GMT"));
}
