//! WebSocket (RFC 6455), the protocol alone: the opening handshake's key and accept value,
//! frame headers read strictly, unmasking, close codes, and frames built for the server's
//! side. websocket_session.zig applies it to a session.
//!
//! Refused with 1002 (protocol error): a reserved bit set (no extension is negotiated), a
//! reserved opcode, an unmasked client frame, a control frame fragmented or over 125 bytes, a
//! 64-bit length with its top bit set, a continuation with no message begun or a new message
//! while one is, a close frame of 1 byte or with a code no endpoint may send. 1009 a message
//! over the limit (before its bytes are buffered); 1007 text (or a close reason) that is not
//! UTF-8.
const std = @import("std");

pub const Opcode = struct {
    pub const continuation: u4 = 0;
    pub const text: u4 = 1;
    pub const binary: u4 = 2;
    pub const close: u4 = 8;
    pub const ping: u4 = 9;
    pub const pong: u4 = 10;
};

pub const CloseCode = struct {
    pub const normal: u16 = 1000;
    pub const going_away: u16 = 1001;
    pub const protocol_error: u16 = 1002;
    pub const invalid_data: u16 = 1007;
    pub const too_big: u16 = 1009;
};

/// The most bytes a frame header has (2, 8 of length, 4 of mask).
pub const header_max = 14;
/// A control frame's payload, at most.
pub const control_max = 125;

pub const Header = struct {
    fin: bool,
    /// RSV1: the message is compressed (permessage-deflate, RFC 7692).
    rsv1: bool = false,
    opcode: u4,
    mask: [4]u8,
    /// Bytes of the header itself.
    len: u8,
    payload_len: u64,

    pub fn isControl(h: Header) bool {
        return h.opcode >= 8;
    }
};

pub const Fail = struct {
    code: u16,
    why: []const u8,
};

pub const Parse = union(enum) {
    need_more,
    frame: Header,
    fail: Fail,
};

fn fail(code: u16, why: []const u8) Parse {
    return .{ .fail = .{ .code = code, .why = why } };
}

/// Reads a client frame's header at the start of `data`, if it is all there. `compressed_ok`:
/// RSV1 may mark this frame compressed (permessage-deflate was negotiated and no message is
/// under way: only a message's first frame, text or binary, carries it).
pub fn parseHeader(data: []const u8, compressed_ok: bool) Parse {
    if (data.len < 2) return .need_more;
    const b0 = data[0];
    const b1 = data[1];
    const opcode: u4 = @intCast(b0 & 0x0f);
    const fin = b0 & 0x80 != 0;
    const rsv1 = b0 & 0x40 != 0;
    if (b0 & 0x30 != 0) return fail(CloseCode.protocol_error, "a reserved bit set");
    if (rsv1 and !(compressed_ok and (opcode == Opcode.text or opcode == Opcode.binary))) {
        return fail(CloseCode.protocol_error, "a reserved bit set");
    }
    switch (opcode) {
        Opcode.continuation, Opcode.text, Opcode.binary, Opcode.close, Opcode.ping, Opcode.pong => {},
        else => return fail(CloseCode.protocol_error, "a reserved opcode"),
    }
    if (b1 & 0x80 == 0) return fail(CloseCode.protocol_error, "an unmasked frame from the client");
    var len: u64 = b1 & 0x7f;
    var at: u8 = 2;
    if (opcode >= 8) {
        if (!fin) return fail(CloseCode.protocol_error, "a fragmented control frame");
        if (len > control_max) return fail(CloseCode.protocol_error, "a control frame over 125 bytes");
    }
    if (len == 126) {
        if (data.len < 4) return .need_more;
        len = std.mem.readInt(u16, data[2..4], .big);
        at = 4;
    } else if (len == 127) {
        if (data.len < 10) return .need_more;
        len = std.mem.readInt(u64, data[2..10], .big);
        if (len >> 63 != 0) return fail(CloseCode.protocol_error, "a length with its top bit set");
        at = 10;
    }
    if (data.len < at + 4) return .need_more;
    return .{ .frame = .{
        .fin = fin,
        .rsv1 = rsv1,
        .opcode = opcode,
        .mask = data[at..][0..4].*,
        .len = at + 4,
        .payload_len = len,
    } };
}

/// Unmasks `bytes` in place; `offset` is where they stand in the frame's payload.
pub fn unmask(bytes: []u8, mask: [4]u8, offset: u64) void {
    var m: [4]u8 = undefined;
    for (0..4) |i| m[i] = mask[(i + offset) % 4];
    var i: usize = 0;
    // Eight bytes at a time, then the rest.
    const wide: u64 = @as(u64, std.mem.readInt(u32, &m, .little)) * 0x1_0000_0001;
    while (i + 8 <= bytes.len) : (i += 8) {
        const v = std.mem.readInt(u64, bytes[i..][0..8], .little);
        std.mem.writeInt(u64, bytes[i..][0..8], v ^ wide, .little);
    }
    while (i < bytes.len) : (i += 1) bytes[i] ^= m[i % 4];
}

/// Whether a peer may send `code` in a Close frame (RFC 6455 7.4; 1012-1014 are registered
/// since).
pub fn closeCodeAllowed(code: u16) bool {
    return switch (code) {
        1000...1003, 1007...1014 => true,
        3000...4999 => true,
        else => false,
    };
}

/// What a received Close frame's payload says is wrong, or null when it is well formed.
pub fn checkClose(payload: []const u8) ?Fail {
    if (payload.len == 0) return null;
    if (payload.len == 1) return .{ .code = CloseCode.protocol_error, .why = "a close frame of 1 byte" };
    const code = std.mem.readInt(u16, payload[0..2], .big);
    if (!closeCodeAllowed(code)) return .{ .code = CloseCode.protocol_error, .why = "a close code no endpoint may send" };
    if (!std.unicode.utf8ValidateSlice(payload[2..])) return .{ .code = CloseCode.invalid_data, .why = "a close reason that is not UTF-8" };
    return null;
}

/// A server frame's header (never masked) for a payload of `len` bytes, into `out`.
pub fn frameHeader(fin: bool, opcode: u4, len: u64, out: *[10]u8) []const u8 {
    out[0] = (if (fin) @as(u8, 0x80) else 0) | opcode;
    if (len < 126) {
        out[1] = @intCast(len);
        return out[0..2];
    }
    if (len <= 0xffff) {
        out[1] = 126;
        std.mem.writeInt(u16, out[2..4], @intCast(len), .big);
        return out[0..4];
    }
    out[1] = 127;
    std.mem.writeInt(u64, out[2..10], len, .big);
    return out[0..10];
}

/// A Close frame with `code` and `reason` (cut to fit 125 bytes), into `out`.
pub fn closeFrame(code: u16, reason: []const u8, out: *[2 + control_max]u8) []const u8 {
    const n = @min(reason.len, control_max - 2);
    out[0] = 0x80 | @as(u8, Opcode.close);
    out[1] = @intCast(2 + n);
    std.mem.writeInt(u16, out[2..4], code, .big);
    @memcpy(out[4..][0..n], reason[0..n]);
    return out[0 .. 4 + n];
}

/// Whether `key` is a Sec-WebSocket-Key: base64 of 16 bytes.
pub fn validKey(key: []const u8) bool {
    if (key.len != 24) return false;
    const decoder = std.base64.standard.Decoder;
    const size = decoder.calcSizeForSlice(key) catch return false;
    if (size != 16) return false;
    var out: [16]u8 = undefined;
    decoder.decode(&out, key) catch return false;
    return true;
}

const accept_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Sec-WebSocket-Accept for `key`: base64 of SHA-1 of the key and RFC 6455's GUID.
pub fn acceptValue(key: []const u8, out: *[28]u8) []const u8 {
    var sha = std.crypto.hash.Sha1.init(.{});
    sha.update(key);
    sha.update(accept_guid);
    var digest: [20]u8 = undefined;
    sha.final(&digest);
    return std.base64.standard.Encoder.encode(out, &digest);
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub fn listHas(value: []const u8, token: []const u8) bool {
    var it = std.mem.splitScalar(u8, value, ',');
    while (it.next()) |raw| {
        if (std.ascii.eqlIgnoreCase(std.mem.trim(u8, raw, " \t"), token)) return true;
    }
    return false;
}

// --- tests ---------------------------------------------------------------------------------

const testing = std.testing;

test "websocket: the accept value of RFC 6455's example" {
    var out: [28]u8 = undefined;
    try testing.expectEqualStrings("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", acceptValue("dGhlIHNhbXBsZSBub25jZQ==", &out));
    try testing.expect(validKey("dGhlIHNhbXBsZSBub25jZQ=="));
    try testing.expect(!validKey("dGhlIHNhbXBsZSBub25jZQ"));
    try testing.expect(!validKey("dGhlIHNhbXBsZSBub25jZ!=="));
}

test "websocket: a masked text frame, read and unmasked" {
    // RFC 6455 5.7: "Hello", masked.
    var frame = [_]u8{ 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    const h = parseHeader(&frame, false).frame;
    try testing.expect(h.fin);
    try testing.expectEqual(Opcode.text, h.opcode);
    try testing.expectEqual(@as(u64, 5), h.payload_len);
    const payload = frame[h.len..];
    unmask(payload, h.mask, 0);
    try testing.expectEqualStrings("Hello", payload);
}

test "websocket: unmasking in pieces matches unmasking whole" {
    var whole: [37]u8 = undefined;
    for (&whole, 0..) |*b, i| b.* = @intCast(i * 7);
    var pieces = whole;
    const mask = [4]u8{ 1, 2, 3, 4 };
    unmask(&whole, mask, 0);
    unmask(pieces[0..5], mask, 0);
    unmask(pieces[5..22], mask, 5);
    unmask(pieces[22..], mask, 22);
    try testing.expectEqualSlices(u8, &whole, &pieces);
}

test "websocket: headers refused and lengths read" {
    try testing.expect(parseHeader(&.{0x81}, false) == .need_more);
    try testing.expectEqual(CloseCode.protocol_error, parseHeader(&.{ 0x81, 0x05 }, false).fail.code);
    try testing.expectEqual(CloseCode.protocol_error, parseHeader(&.{ 0xc1, 0x80, 0, 0, 0, 0 }, false).fail.code);
    try testing.expectEqual(CloseCode.protocol_error, parseHeader(&.{ 0x83, 0x80, 0, 0, 0, 0 }, false).fail.code);
    try testing.expectEqual(CloseCode.protocol_error, parseHeader(&.{ 0x09, 0x80, 0, 0, 0, 0 }, false).fail.code);
    try testing.expectEqual(CloseCode.protocol_error, parseHeader(&.{ 0x89, 0xfe, 0, 126, 0, 0, 0, 0 }, false).fail.code);
    const h16 = parseHeader(&.{ 0x82, 0xfe, 0x01, 0x00, 9, 9, 9, 9 }, false).frame;
    try testing.expectEqual(@as(u64, 256), h16.payload_len);
    try testing.expectEqual(@as(u8, 8), h16.len);
    try testing.expect(parseHeader(&.{ 0x82, 0xff, 0, 0, 0, 0, 0, 1, 0 }, false) == .need_more);
    const h64 = parseHeader(&.{ 0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4 }, false).frame;
    try testing.expectEqual(@as(u64, 65536), h64.payload_len);
    try testing.expectEqual(CloseCode.protocol_error, parseHeader(&.{ 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 }, false).fail.code);
    // RSV1: a compressed message's first frame, once negotiated; never on control frames or
    // continuations, never RSV2/RSV3.
    try testing.expect(parseHeader(&.{ 0xc1, 0x80, 0, 0, 0, 0 }, true).frame.rsv1);
    try testing.expectEqual(CloseCode.protocol_error, parseHeader(&.{ 0xc9, 0x80, 0, 0, 0, 0 }, true).fail.code);
    try testing.expectEqual(CloseCode.protocol_error, parseHeader(&.{ 0xc0, 0x80, 0, 0, 0, 0 }, true).fail.code);
    try testing.expectEqual(CloseCode.protocol_error, parseHeader(&.{ 0xa1, 0x80, 0, 0, 0, 0 }, true).fail.code);
}

/// Whether a Sec-WebSocket-Extensions value offers permessage-deflate in a form this server
/// takes (RFC 7692 7: an offer with a parameter it does not know, a parameter twice or a bad
/// value is declined, and the next one looked at). `server_max_window_bits` is declined too
/// (its compressor uses zlib's 15-bit window). The answer is always
/// `server_no_context_takeover; client_no_context_takeover`: every message is compressed
/// alone, and no connection keeps a compressor's memory.
pub fn offersDeflate(extensions: []const u8) bool {
    var offers = std.mem.splitScalar(u8, extensions, ',');
    next: while (offers.next()) |offer| {
        var params = std.mem.splitScalar(u8, offer, ';');
        const name = std.mem.trim(u8, params.first(), " \t");
        if (!std.ascii.eqlIgnoreCase(name, "permessage-deflate")) continue;
        var seen = [_]bool{ false, false, false };
        const known = [_][]const u8{ "server_no_context_takeover", "client_no_context_takeover", "client_max_window_bits" };
        while (params.next()) |param| {
            var kv = std.mem.splitScalar(u8, param, '=');
            const key = std.mem.trim(u8, kv.first(), " \t");
            const value = if (kv.next()) |v| std.mem.trim(u8, std.mem.trim(u8, v, " \t"), "\"") else null;
            const which = for (known, 0..) |k, i| {
                if (std.ascii.eqlIgnoreCase(key, k)) break i;
            } else continue :next;
            if (seen[which]) continue :next;
            seen[which] = true;
            if (which < 2) {
                if (value != null) continue :next;
            } else if (value) |v| {
                const bits = std.fmt.parseInt(u8, v, 10) catch continue :next;
                if (bits < 8 or bits > 15) continue :next;
            }
        }
        return true;
    }
    return false;
}

test "websocket: permessage-deflate offers" {
    try testing.expect(offersDeflate("permessage-deflate; client_max_window_bits"));
    try testing.expect(offersDeflate("x-webkit-deflate-frame, permessage-deflate"));
    try testing.expect(!offersDeflate("permessage-deflate; server_max_window_bits=10"));
    try testing.expect(offersDeflate("permessage-deflate; server_max_window_bits=10, permessage-deflate"));
    try testing.expect(!offersDeflate("x-webkit-deflate-frame"));
    try testing.expect(!offersDeflate(""));
    try testing.expect(offersDeflate("permessage-deflate; client_max_window_bits=\"10\"; client_no_context_takeover"));
    try testing.expect(!offersDeflate("permessage-deflate; foo=bar"));
    try testing.expect(!offersDeflate("permessage-deflate; client_max_window_bits=99"));
    try testing.expect(!offersDeflate("permessage-deflate; client_no_context_takeover=1"));
    try testing.expect(!offersDeflate("permessage-deflate; server_no_context_takeover; server_no_context_takeover"));
    try testing.expect(offersDeflate("permessage-deflate; foo, permessage-deflate"));
}

test "websocket: close payloads" {
    try testing.expect(checkClose("") == null);
    try testing.expect(checkClose(&.{ 0x03, 0xe8 }) == null);
    try testing.expectEqual(CloseCode.protocol_error, checkClose(&.{0x03}).?.code);
    try testing.expectEqual(CloseCode.protocol_error, checkClose(&.{ 0x03, 0xed }).?.code); // 1005
    try testing.expectEqual(CloseCode.protocol_error, checkClose(&.{ 0x00, 0x00 }).?.code);
    try testing.expectEqual(CloseCode.invalid_data, checkClose(&.{ 0x03, 0xe8, 0xff }).?.code);
    var out: [2 + control_max]u8 = undefined;
    const frame = closeFrame(1000, "bye", &out);
    try testing.expectEqualSlices(u8, &.{ 0x88, 5, 0x03, 0xe8, 'b', 'y', 'e' }, frame);
}

test "websocket: server frame headers" {
    var out: [10]u8 = undefined;
    try testing.expectEqualSlices(u8, &.{ 0x81, 5 }, frameHeader(true, Opcode.text, 5, &out));
    try testing.expectEqualSlices(u8, &.{ 0x02, 126, 1, 0 }, frameHeader(false, Opcode.binary, 256, &out));
    try testing.expectEqual(@as(usize, 10), frameHeader(true, Opcode.binary, 70000, &out).len);
    try testing.expect(listHas("keep-alive, Upgrade", "upgrade"));
    try testing.expect(!listHas("keep-alive", "upgrade"));
}
