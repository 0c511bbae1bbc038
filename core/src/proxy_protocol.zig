//! The PROXY protocol header a load balancer (HAProxy, nginx `proxy_protocol`, cloud balancers)
//! puts before a connection's first byte, versions 1 (a text line) and 2 (binary), parsed here
//! from what a session has read so far: the client's real address, or that the header is still
//! incomplete, or why the bytes can never be one. Every length is bounded before it is trusted:
//! a text line is at most 107 bytes; a binary header at most `max_v2` bytes in all.

const std = @import("std");

/// The 12 bytes that open a version 2 header.
pub const v2_signature = "\r\n\r\n\x00\r\nQUIT\n";
/// Version 1's longest line (the specification's bound, CRLF included).
pub const max_v1 = 107;
/// A version 2 header's bound here: the 16 fixed bytes, the addresses (216 bytes at most, for
/// Unix sockets) and the TLVs a balancer adds (unique id, TLS details), refused beyond.
pub const max_v2 = 4096;

/// Where a proxied connection comes from.
pub const Source = struct {
    /// 4 or 6.
    family: u8,
    /// IPv4 in the first 4 bytes, or the 16 bytes of IPv6, network order.
    addr: [16]u8 = @splat(0),
    port: u16,
};

pub const Outcome = union(enum) {
    /// A header may still come whole: read more.
    need_more,
    /// The bytes are no valid header, whatever follows (the reason, for the log).
    invalid: []const u8,
    /// A whole header of `len` bytes; `source` null when it gives no address (version 1
    /// `UNKNOWN`, version 2 `LOCAL` or an unspecified or Unix family): the socket's own stands.
    header: struct { len: usize, source: ?Source },
};

/// Parses the header at the start of `bytes`.
pub fn parse(bytes: []const u8) Outcome {
    if (bytes.len == 0) return .need_more;
    if (bytes[0] == 'P') return parseV1(bytes);
    if (bytes[0] == '\r') return parseV2(bytes);
    return .{ .invalid = "no PROXY protocol header" };
}

fn prefixMatches(bytes: []const u8, want: []const u8) bool {
    const n = @min(bytes.len, want.len);
    return std.mem.eql(u8, bytes[0..n], want[0..n]);
}

fn parseV1(bytes: []const u8) Outcome {
    if (!prefixMatches(bytes, "PROXY ")) return .{ .invalid = "no PROXY protocol header" };
    const window = bytes[0..@min(bytes.len, max_v1)];
    const end = std.mem.indexOf(u8, window, "\r\n") orelse {
        if (bytes.len >= max_v1) return .{ .invalid = "PROXY v1 line longer than 107 bytes" };
        // (A bare LF or any control byte can never become a valid line.)
        for (window) |c| if (c < 0x20 and c != '\r') return .{ .invalid = "PROXY v1 line has a control byte" };
        return .need_more;
    };
    const line = window[6..end];
    const len = end + 2;
    var fields = std.mem.splitScalar(u8, line, ' ');
    const proto = fields.next() orelse return .{ .invalid = "PROXY v1 line without a protocol" };
    if (std.mem.eql(u8, proto, "UNKNOWN")) return .{ .header = .{ .len = len, .source = null } };
    const family: u8 = if (std.mem.eql(u8, proto, "TCP4")) 4 else if (std.mem.eql(u8, proto, "TCP6")) 6 else return .{ .invalid = "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN" };
    const src = fields.next() orelse return .{ .invalid = "PROXY v1 line too short" };
    const dst = fields.next() orelse return .{ .invalid = "PROXY v1 line too short" };
    const sport = fields.next() orelse return .{ .invalid = "PROXY v1 line too short" };
    const dport = fields.next() orelse return .{ .invalid = "PROXY v1 line too short" };
    if (fields.next() != null) return .{ .invalid = "PROXY v1 line too long" };
    var source: Source = .{ .family = family, .port = port(sport) orelse return .{ .invalid = "PROXY v1 source port is not a port" } };
    _ = port(dport) orelse return .{ .invalid = "PROXY v1 destination port is not a port" };
    if (!address(family, src, &source.addr)) return .{ .invalid = "PROXY v1 source address does not match its protocol" };
    var scratch: [16]u8 = undefined;
    if (!address(family, dst, &scratch)) return .{ .invalid = "PROXY v1 destination address does not match its protocol" };
    return .{ .header = .{ .len = len, .source = source } };
}

/// A decimal port, 0 to 65535, without a leading zero (but "0" itself).
fn port(text: []const u8) ?u16 {
    if (text.len == 0 or text.len > 5 or (text.len > 1 and text[0] == '0')) return null;
    for (text) |c| if (c < '0' or c > '9') return null;
    return std.fmt.parseInt(u16, text, 10) catch null;
}

fn address(family: u8, text: []const u8, out: *[16]u8) bool {
    if (family == 4) {
        const a = std.net.Ip4Address.parse(text, 0) catch return false;
        @memcpy(out[0..4], std.mem.asBytes(&a.sa.addr));
        return true;
    }
    // (A zone index, `%eth0`, names nothing on the server's side.)
    if (std.mem.indexOfScalar(u8, text, '%') != null) return false;
    const a = std.net.Ip6Address.parse(text, 0) catch return false;
    out.* = a.sa.addr;
    return true;
}

fn parseV2(bytes: []const u8) Outcome {
    if (!prefixMatches(bytes, v2_signature)) return .{ .invalid = "no PROXY protocol header" };
    if (bytes.len < 16) return .need_more;
    const ver_cmd = bytes[12];
    if (ver_cmd >> 4 != 2) return .{ .invalid = "PROXY v2 header of another version" };
    const command = ver_cmd & 0x0f;
    if (command > 1) return .{ .invalid = "PROXY v2 command is neither LOCAL nor PROXY" };
    const family = bytes[13] >> 4;
    const transport = bytes[13] & 0x0f;
    const body: usize = std.mem.readInt(u16, bytes[14..16], .big);
    if (16 + body > max_v2) return .{ .invalid = "PROXY v2 header longer than 4096 bytes" };
    const need: usize = switch (family) {
        1 => 12,
        2 => 36,
        3 => 216,
        0 => 0,
        else => return .{ .invalid = "PROXY v2 address family unknown" },
    };
    if (transport > 2) return .{ .invalid = "PROXY v2 transport unknown" };
    if (body < need) return .{ .invalid = "PROXY v2 addresses longer than the header" };
    if (bytes.len < 16 + body) return .need_more;
    const len = 16 + body;
    // LOCAL: the balancer's own connection (a health check); its socket's address stands.
    if (command == 0 or family == 0 or family == 3) return .{ .header = .{ .len = len, .source = null } };
    const a = bytes[16..];
    var source: Source = .{ .family = if (family == 1) 4 else 6, .port = 0 };
    if (family == 1) {
        @memcpy(source.addr[0..4], a[0..4]);
        source.port = std.mem.readInt(u16, a[8..10], .big);
    } else {
        @memcpy(source.addr[0..16], a[0..16]);
        source.port = std.mem.readInt(u16, a[32..34], .big);
    }
    return .{ .header = .{ .len = len, .source = source } };
}

const testing = std.testing;

test "proxy protocol v1: TCP4, TCP6 and UNKNOWN lines give the source, or none" {
    const line = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
    const got = parse(line).header;
    try testing.expectEqual(@as(usize, 45), got.len);
    try testing.expectEqual(@as(u8, 4), got.source.?.family);
    try testing.expectEqualSlices(u8, &.{ 192, 0, 2, 7 }, got.source.?.addr[0..4]);
    try testing.expectEqual(@as(u16, 56324), got.source.?.port);

    const six = parse("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n").header;
    try testing.expectEqual(@as(u8, 6), six.source.?.family);
    try testing.expectEqual(@as(u8, 0x20), six.source.?.addr[0]);
    try testing.expectEqual(@as(u8, 1), six.source.?.addr[15]);
    try testing.expectEqual(@as(u16, 1), six.source.?.port);

    const unknown = parse("PROXY UNKNOWN ffff::1 whatever\r\n").header;
    try testing.expect(unknown.source == null);
    try testing.expectEqual(@as(usize, 32), unknown.len);
}

test "proxy protocol v1: every cut of a line waits for more; bad lines are refused with a reason" {
    const line = "PROXY TCP4 10.0.0.1 10.0.0.2 1000 2000\r\n";
    for (1..line.len) |cut| try testing.expect(parse(line[0..cut]) == .need_more);
    try testing.expect(parse(line) == .header);
    const bad = [_][]const u8{
        "GET / HTTP/1.1\r\n",
        "PROXY TCP5 10.0.0.1 10.0.0.2 1 2\r\n",
        "PROXY TCP4 10.0.0.1 10.0.0.2 1 2 3\r\n",
        "PROXY TCP4 10.0.0.1 10.0.0.2 1\r\n",
        "PROXY TCP4 ::1 10.0.0.2 1 2\r\n",
        "PROXY TCP6 10.0.0.1 ::1 1 2\r\n",
        "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        "PROXY TCP4 10.0.0.1 10.0.0.2 65536 2\r\n",
        "PROXY TCP4 10.0.0.1 10.0.0.2 080 2\r\n",
        "PROXY TCP4 10.0.0.1 10.0.0.2 -1 2\r\n",
        "PROXY TCP4 10.0.0.1  10.0.0.2 1 2\r\n",
        "PROXY TCP4 10.0.0.1 10.0.0.2 1 2\n",
        "proxy TCP4 10.0.0.1 10.0.0.2 1 2\r\n",
    };
    for (bad) |b| try testing.expect(parse(b) == .invalid);
    // No CRLF within 107 bytes: refused, however much more comes.
    const long = "PROXY UNKNOWN " ++ "x" ** 100;
    try testing.expect(parse(long) == .invalid);
}

fn v2(comptime cmd: u8, comptime fam: u8, comptime rest: []const u8) []const u8 {
    const len = [2]u8{ @intCast(rest.len >> 8), @intCast(rest.len & 0xff) };
    return v2_signature ++ [_]u8{ 0x20 | cmd, fam } ++ len ++ rest;
}

test "proxy protocol v2: IPv4 and IPv6 PROXY give the source; LOCAL and UNSPEC none; TLVs skipped" {
    const four = comptime v2(1, 0x11, &[_]u8{ 203, 0, 113, 9, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb } ++ &[_]u8{ 0x04, 0x00, 0x01, 0x2a });
    const got = parse(four ++ "data").header;
    try testing.expectEqual(four.len, got.len);
    try testing.expectEqualSlices(u8, &.{ 203, 0, 113, 9 }, got.source.?.addr[0..4]);
    try testing.expectEqual(@as(u16, 8080), got.source.?.port);
    for (1..four.len) |cut| try testing.expect(parse(four[0..cut]) == .need_more);

    const six_addr = [_]u8{0x20} ++ [_]u8{0} ** 14 ++ [_]u8{5} ++ [_]u8{0} ** 16 ++ [_]u8{ 0x00, 0x50, 0x01, 0xbb };
    const six = parse(comptime v2(1, 0x21, &six_addr)).header;
    try testing.expectEqual(@as(u8, 6), six.source.?.family);
    try testing.expectEqual(@as(u8, 5), six.source.?.addr[15]);
    try testing.expectEqual(@as(u16, 80), six.source.?.port);

    const local = parse(comptime v2(0, 0x00, "")).header;
    try testing.expect(local.source == null);
    try testing.expectEqual(@as(usize, 16), local.len);
    const unix_addr = [_]u8{0} ** 216;
    try testing.expect(parse(comptime v2(1, 0x31, &unix_addr)).header.source == null);
}

test "proxy protocol v2: a wrong version, command, family or length is refused; the length is bounded" {
    try testing.expect(parse(v2_signature ++ [_]u8{ 0x10, 0x11, 0, 12 } ++ [_]u8{0} ** 12) == .invalid);
    try testing.expect(parse(v2_signature ++ [_]u8{ 0x22, 0x11, 0, 12 } ++ [_]u8{0} ** 12) == .invalid);
    try testing.expect(parse(v2_signature ++ [_]u8{ 0x21, 0x41, 0, 12 } ++ [_]u8{0} ** 12) == .invalid);
    try testing.expect(parse(v2_signature ++ [_]u8{ 0x21, 0x13, 0, 12 } ++ [_]u8{0} ** 12) == .invalid);
    // Addresses that do not fit the length it gives.
    try testing.expect(parse(v2_signature ++ [_]u8{ 0x21, 0x11, 0, 4 } ++ [_]u8{0} ** 4) == .invalid);
    // A length past the bound is refused at once, before its bytes arrive.
    try testing.expect(parse(v2_signature ++ [_]u8{ 0x21, 0x11, 0xff, 0xff }) == .invalid);
    try testing.expect(parse("\r\n\r\n\x00\r\nQUIT\r") == .invalid);
}
