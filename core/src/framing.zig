//! Message framing, as Swoole's protocol settings define it: where one message ends in a byte
//! stream. `next` looks at the bytes a session has buffered and says whether they start with a
//! whole message (and how long it is), need more bytes, or can never be valid.
//!
//! - EOF protocols (`open_eof_split` / `open_eof_check` with `package_eof`, 1 to 8 bytes): a
//!   message ends with the marker. Split delivers one message per marker; check delivers
//!   everything up to the last marker seen (Swoole's "the data ends with EOF" guarantee).
//! - Length protocols (`open_length_check`): a length field of a `package_length_type` (Swoole's
//!   pack codes) at `package_length_offset`; the message is `package_body_offset + length` bytes.
//!
//! Both refuse a message longer than `package_max_length` (`too_long`) and the length protocol
//! a negative length (`negative_length`): the caller closes the session and counts it.
const std = @import("std");

pub const LengthType = enum(u8) {
    /// int8, uint8
    c = 'c',
    C = 'C',
    /// int16 / uint16, this machine's order (little-endian here)
    s = 's',
    S = 'S',
    /// uint16 / uint32 big-endian (network order)
    n = 'n',
    N = 'N',
    /// uint16 / uint32 little-endian
    v = 'v',
    V = 'V',
    /// int32 / uint32, this machine's order
    l = 'l',
    L = 'L',
    /// int64 / uint64, this machine's order
    q = 'q',
    Q = 'Q',

    pub fn size(t: LengthType) u32 {
        return switch (t) {
            .c, .C => 1,
            .s, .S, .n, .v => 2,
            .N, .V, .l, .L => 4,
            .q, .Q => 8,
        };
    }

    /// The length field's value, or null when it is negative.
    fn read(t: LengthType, bytes: []const u8) ?u64 {
        const native = @import("builtin").cpu.arch.endian();
        return switch (t) {
            .c => nonNegative(@as(i8, @bitCast(bytes[0]))),
            .C => bytes[0],
            .s => nonNegative(std.mem.readInt(i16, bytes[0..2], native)),
            .S => std.mem.readInt(u16, bytes[0..2], native),
            .n => std.mem.readInt(u16, bytes[0..2], .big),
            .N => std.mem.readInt(u32, bytes[0..4], .big),
            .v => std.mem.readInt(u16, bytes[0..2], .little),
            .V => std.mem.readInt(u32, bytes[0..4], .little),
            .l => nonNegative(std.mem.readInt(i32, bytes[0..4], native)),
            .L => std.mem.readInt(u32, bytes[0..4], native),
            .q => nonNegative(std.mem.readInt(i64, bytes[0..8], native)),
            .Q => std.mem.readInt(u64, bytes[0..8], native),
        };
    }

    fn nonNegative(value: anytype) ?u64 {
        return if (value < 0) null else @intCast(value);
    }
};

pub const Protocol = union(enum) {
    /// A stream: every read is delivered as it comes.
    none,
    /// A stream whose messages the worker finds itself (`package_length_func`, a JavaScript
    /// hook): every read goes as it comes, and always to the session's own worker, so the
    /// pieces of a message meet in one place whatever the dispatch mode.
    worker,
    eof: struct {
        marker: [8]u8 = @splat(0),
        len: u8,
        /// One message per marker (`open_eof_split`); otherwise up to the last marker.
        split: bool,
    },
    /// HTTP/1.1 requests (http.zig, http_session.zig): not framed here.
    http,
    length: struct {
        type: LengthType,
        /// Where the length field starts.
        offset: u32,
        /// Where the body starts: the message is `body_offset + length` bytes.
        body_offset: u32,
    },
};

pub const Outcome = union(enum) {
    /// The buffered bytes start with a whole message of this many bytes.
    message: usize,
    /// Not enough bytes yet.
    need_more,
    too_long,
    negative_length,
};

/// What the bytes buffered for a session (`data`, from the start of a message) hold.
pub fn next(protocol: Protocol, data: []const u8, max_length: usize) Outcome {
    switch (protocol) {
        .none, .worker => return if (data.len == 0) .need_more else .{ .message = data.len },
        .http => unreachable,
        .eof => |eof| {
            const marker = eof.marker[0..eof.len];
            const found = if (eof.split)
                std.mem.indexOf(u8, data, marker)
            else
                std.mem.lastIndexOf(u8, data, marker);
            if (found) |at| {
                const end = at + marker.len;
                // (Check mode: several messages may come at once; each is within the limit
                // when the first marker is.)
                const first = if (eof.split) at else std.mem.indexOf(u8, data, marker).?;
                if (first + marker.len > max_length) return .too_long;
                return .{ .message = end };
            }
            // No marker in `max_length` bytes: it will not come in time.
            if (data.len >= max_length) return .too_long;
            return .need_more;
        },
        .length => |length| {
            const field_end = @as(usize, length.offset) + length.type.size();
            if (data.len < field_end) return .need_more;
            const value = length.type.read(data[length.offset..field_end]) orelse return .negative_length;
            const total = std.math.add(u64, length.body_offset, value) catch return .too_long;
            if (total > max_length) return .too_long;
            // A length field inside a body that is shorter than the field's own end is bogus.
            if (total < field_end) return .negative_length;
            if (data.len < total) return .need_more;
            return .{ .message = @intCast(total) };
        },
    }
}

// --- tests -----------------------------------------------------------------------------------

const testing = std.testing;

fn eofProtocol(marker: []const u8, split: bool) Protocol {
    var p: Protocol = .{ .eof = .{ .len = @intCast(marker.len), .split = split } };
    @memcpy(p.eof.marker[0..marker.len], marker);
    return p;
}

test "framing: EOF split finds one message per marker, and waits for an incomplete one" {
    const p = eofProtocol("\r\n", true);
    try testing.expectEqual(Outcome{ .message = 5 }, next(p, "abc\r\ndef\r\n", 100));
    try testing.expectEqual(Outcome.need_more, next(p, "abc\r", 100));
    try testing.expectEqual(Outcome.too_long, next(p, "abcdefgh", 8));
    try testing.expectEqual(Outcome.too_long, next(p, "abcdefgh\r\n", 8));
}

test "framing: EOF check delivers up to the last marker" {
    const p = eofProtocol("\n", false);
    try testing.expectEqual(Outcome{ .message = 8 }, next(p, "abc\ndef\ngh", 100));
    try testing.expectEqual(Outcome.need_more, next(p, "abc", 100));
}

test "framing: every length type reads its field, in its byte order and sign" {
    const Case = struct { t: LengthType, field: []const u8, value: ?u64 };
    const cases = [_]Case{
        .{ .t = .C, .field = &.{0xff}, .value = 255 },
        .{ .t = .c, .field = &.{0xff}, .value = null },
        .{ .t = .n, .field = &.{ 0x01, 0x02 }, .value = 0x0102 },
        .{ .t = .v, .field = &.{ 0x01, 0x02 }, .value = 0x0201 },
        .{ .t = .S, .field = &.{ 0x01, 0x02 }, .value = 0x0201 },
        .{ .t = .s, .field = &.{ 0x00, 0x80 }, .value = null },
        .{ .t = .N, .field = &.{ 0, 0, 1, 0 }, .value = 256 },
        .{ .t = .V, .field = &.{ 0, 1, 0, 0 }, .value = 256 },
        .{ .t = .L, .field = &.{ 0, 0, 0, 0x80 }, .value = 0x8000_0000 },
        .{ .t = .l, .field = &.{ 0, 0, 0, 0x80 }, .value = null },
        .{ .t = .Q, .field = &.{ 5, 0, 0, 0, 0, 0, 0, 0 }, .value = 5 },
        .{ .t = .q, .field = &.{ 0, 0, 0, 0, 0, 0, 0, 0x80 }, .value = null },
    };
    for (cases) |case| {
        try testing.expectEqual(@as(usize, case.field.len), case.t.size());
        try testing.expectEqual(case.value, case.t.read(case.field));
    }
}

test "framing: a length protocol with a header before the field" {
    // 2 bytes of type, a 4-byte big-endian body length, then the body.
    const p: Protocol = .{ .length = .{ .type = .N, .offset = 2, .body_offset = 6 } };
    const message = [_]u8{ 'h', 'i', 0, 0, 0, 3, 'a', 'b', 'c', 'x' };
    try testing.expectEqual(Outcome{ .message = 9 }, next(p, &message, 100));
    try testing.expectEqual(Outcome.need_more, next(p, message[0..5], 100));
    try testing.expectEqual(Outcome.need_more, next(p, message[0..8], 100));
    try testing.expectEqual(Outcome.too_long, next(p, &message, 8));
    const negative: Protocol = .{ .length = .{ .type = .l, .offset = 0, .body_offset = 4 } };
    try testing.expectEqual(Outcome.negative_length, next(negative, &.{ 0xff, 0xff, 0xff, 0xff }, 100));
}

/// Splits a stream into messages as a session's input buffer would, fed in random pieces.
fn replay(protocol: Protocol, stream: []const u8, random: std.Random, out: *std.ArrayList([]const u8)) !void {
    var start: usize = 0; // the buffer is stream[start..fed]
    var fed: usize = 0;
    while (fed < stream.len) {
        fed = @min(stream.len, fed + 1 + random.uintLessThan(usize, 40));
        while (true) {
            switch (next(protocol, stream[start..fed], 1 << 20)) {
                .message => |n| {
                    try out.append(testing.allocator, stream[start..][0..n]);
                    start += n;
                },
                .need_more => break,
                else => return error.Malformed,
            }
        }
    }
    if (start != stream.len) return error.Leftover;
}

test "framing: seeded fuzz: messages cut at random points come out whole, in order" {
    var prng = std.Random.DefaultPrng.init(0x5eed_f00d);
    const random = prng.random();
    for (0..200) |round| {
        const kind = round % 3;
        const protocol: Protocol = switch (kind) {
            0 => eofProtocol("\r\n\r\n", true),
            1 => .{ .length = .{ .type = .N, .offset = 0, .body_offset = 4 } },
            else => .{ .length = .{ .type = .v, .offset = 1, .body_offset = 3 } },
        };
        var stream: std.ArrayList(u8) = .empty;
        defer stream.deinit(testing.allocator);
        var expected: std.ArrayList([]const u8) = .empty;
        defer expected.deinit(testing.allocator);
        var bounds: std.ArrayList([2]usize) = .empty;
        defer bounds.deinit(testing.allocator);
        const count = 1 + random.uintLessThan(usize, 30);
        for (0..count) |_| {
            const body_len = random.uintLessThan(usize, 300);
            const begin = stream.items.len;
            switch (kind) {
                0 => {
                    for (0..body_len) |_| try stream.append(testing.allocator, 'a' + random.uintLessThan(u8, 26));
                    try stream.appendSlice(testing.allocator, "\r\n\r\n");
                },
                1 => {
                    var field: [4]u8 = undefined;
                    std.mem.writeInt(u32, &field, @intCast(body_len), .big);
                    try stream.appendSlice(testing.allocator, &field);
                    for (0..body_len) |_| try stream.append(testing.allocator, random.int(u8));
                },
                else => {
                    try stream.append(testing.allocator, random.int(u8));
                    var field: [2]u8 = undefined;
                    std.mem.writeInt(u16, &field, @intCast(body_len), .little);
                    try stream.appendSlice(testing.allocator, &field);
                    for (0..body_len) |_| try stream.append(testing.allocator, random.int(u8));
                },
            }
            try bounds.append(testing.allocator, .{ begin, stream.items.len });
        }
        for (bounds.items) |b| try expected.append(testing.allocator, stream.items[b[0]..b[1]]);
        var got: std.ArrayList([]const u8) = .empty;
        defer got.deinit(testing.allocator);
        try replay(protocol, stream.items, random, &got);
        try testing.expectEqual(expected.items.len, got.items.len);
        for (expected.items, got.items) |e, g| try testing.expectEqualSlices(u8, e, g);
    }
}

test "framing: a stream of messages cut in two at every possible point comes out whole" {
    const cases = [_]struct { protocol: Protocol, stream: []const u8, lengths: []const usize }{
        .{ .protocol = eofProtocol("\r\n", true), .stream = "a\r\nbcd\r\n\r\nef\r\n", .lengths = &.{ 3, 5, 2, 4 } },
        .{ .protocol = .{ .length = .{ .type = .n, .offset = 0, .body_offset = 2 } }, .stream = &.{ 0, 1, 'x', 0, 0, 0, 3, 'a', 'b', 'c' }, .lengths = &.{ 3, 2, 5 } },
    };
    for (cases) |case| {
        for (0..case.stream.len + 1) |cut| {
            var got: std.ArrayList(usize) = .empty;
            defer got.deinit(testing.allocator);
            var start: usize = 0;
            for ([_]usize{ cut, case.stream.len }) |fed| {
                while (true) {
                    switch (next(case.protocol, case.stream[start..fed], 1024)) {
                        .message => |n| {
                            try got.append(testing.allocator, n);
                            start += n;
                        },
                        .need_more => break,
                        else => return error.Malformed,
                    }
                }
            }
            try testing.expectEqualSlices(usize, case.lengths, got.items);
        }
    }
}
