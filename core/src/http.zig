//! HTTP/1.1 requests, parsed where the socket lives (RFC 9112), strictly: what a lenient
//! parser would guess at (and a proxy in front might read otherwise) is refused.
//!
//! - `parseHead`: the request line and the header fields, into a `Head` (offsets into the
//!   bytes, no copies). The end of the head is looked for from where the last call stopped.
//! - `Chunked.decode`: a chunked body, decoded in place as it arrives.
//! - `envelope`: the head as the worker gets it (`abi.HttpRequest`, then the header table).
//!
//! Refused with 400: bare LF or a CR without LF, whitespace before a colon, obs-fold, control
//! characters in a field, an invalid method, target or version, Content-Length that is not
//! digits or comes twice, Content-Length with Transfer-Encoding, Transfer-Encoding on HTTP/1.0
//! or not ending in `chunked`, no Host or two on HTTP/1.1, a bad chunk size or chunk end. Too
//! long: 414 (target), 431 (head, header count), 413 (body); 505 another HTTP version; 501 a
//! transfer coding other than chunked.
const std = @import("std");
const abi = @import("abi.zig");

pub const Limits = struct {
    /// The request line and the header fields with their line ends (431 beyond).
    head_bytes: u32 = 16 * 1024,
    /// Header fields (431 beyond).
    headers: u32 = 100,
    /// The request target (414 beyond).
    target_bytes: u32 = 8 * 1024,
    /// The body, decoded (413 beyond): `package_max_length`.
    body_bytes: u64 = 2 * 1024 * 1024,
    /// A head must be whole this long after its first byte (408 beyond); 0: no limit.
    header_timeout_ns: i64 = 10 * std.time.ns_per_s,
    /// A kept-alive connection with no request in hand closes after this long idle; 0: never.
    keepalive_ns: i64 = 60 * std.time.ns_per_s,
    /// Bytes a second a body must keep up, once it had `header_timeout_ns` (408 below); 0: any.
    min_body_rate: u64 = 1024,
    /// Requests of one connection handed to a worker and not answered yet, at most.
    max_pipelined: u32 = 32,
};

/// The most header fields a head may have, whatever the limit says (the table is fixed).
pub const headers_max = 256;
/// The most bytes a head may have, whatever the limit says (offsets are 16-bit).
pub const head_bytes_max = 65535;
/// Chunk extensions and trailer fields are read and dropped; this bounds each line.
const chunk_line_max = 1024;

pub const flag_keep_alive: u8 = 1;
pub const flag_chunked: u8 = 2;
pub const flag_expect_continue: u8 = 4;
pub const flag_upgrade: u8 = 8;
/// Set by the reactor on a WebSocket listener (websocket_session.zig): an upgrade request for the
/// worker's `handshake` callback; with `flag_websocket_open` too, one the reactor answered (the
/// worker's `open` callback).
pub const flag_websocket: u8 = 16;
pub const flag_websocket_open: u8 = 32;
/// With `flag_websocket`: permessage-deflate was negotiated (the answer says so).
pub const flag_websocket_deflate: u8 = 64;

pub const Head = struct {
    /// Bytes of the head, from the first byte (leading empty lines included) through the
    /// empty line that ends it.
    len: u32 = 0,
    /// Where the request line starts (after leading empty lines).
    start: u16 = 0,
    method_len: u16 = 0,
    target_off: u16 = 0,
    target_len: u16 = 0,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    minor: u8 = 1,
    flags: u8 = 0,
    content_length: u64 = 0,
    header_count: u16 = 0,
    headers: [headers_max]abi.HttpHeader = undefined,

    pub fn keepAlive(h: *const Head) bool {
        return h.flags & flag_keep_alive != 0;
    }

    pub fn chunked(h: *const Head) bool {
        return h.flags & flag_chunked != 0;
    }
};

pub const Reject = struct {
    status: u16,
    why: []const u8,
};

pub const Parse = union(enum) {
    need_more,
    done,
    reject: Reject,
};

fn reject(status: u16, why: []const u8) Parse {
    return .{ .reject = .{ .status = status, .why = why } };
}

/// The reason phrase of the statuses the reactor answers itself.
pub fn reason(status: u16) []const u8 {
    return switch (status) {
        100 => "Continue",
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        else => "Error",
    };
}

/// RFC 9110 tchar: the characters of a token (a method, a field name).
fn isTchar(c: u8) bool {
    return switch (c) {
        'a'...'z', 'A'...'Z', '0'...'9' => true,
        '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~' => true,
        else => false,
    };
}

/// A field value's characters: visible ASCII, obs-text, space and tab; no other control.
fn isValueChar(c: u8) bool {
    return c == '\t' or (c >= 0x20 and c != 0x7f);
}

/// Parses the head at the start of `data` into `head`. `scanned` is how far earlier calls
/// looked for its end (the caller keeps it between reads, 0 for a new request).
pub fn parseHead(data: []const u8, scanned: *u32, limits: Limits, head: *Head) Parse {
    const max = @min(limits.head_bytes, head_bytes_max);
    // Empty lines before the request line are skipped (RFC 9112 2.2), counted in the head.
    var lead: usize = 0;
    while (lead + 1 < data.len and data[lead] == '\r' and data[lead + 1] == '\n') lead += 2;
    if (lead > max) return reject(431, "the head is too large");
    // The end of the head; every LF on the way must follow a CR, and every CR precede an LF.
    var i: usize = @max(lead, if (scanned.* > 3) scanned.* - 3 else 0);
    const end: usize = while (i < data.len and i <= max) : (i += 1) {
        switch (data[i]) {
            '\r' => if (i + 1 < data.len and data[i + 1] != '\n') return reject(400, "a CR without its LF"),
            '\n' => {
                if (i == 0 or data[i - 1] != '\r') return reject(400, "a line ends in a bare LF");
                if (i >= lead + 3 and data[i - 2] == '\n' and data[i - 3] == '\r') break i + 1;
            },
            else => {},
        }
    } else {
        scanned.* = @intCast(@min(data.len, std.math.maxInt(u32)));
        if (data.len > max) {
            // No line end yet: the request line alone is too long.
            if (std.mem.indexOfScalar(u8, data[lead..], '\n') == null) return reject(414, "the request line is too long");
            return reject(431, "the head is too large");
        }
        return .need_more;
    };
    if (end > max) return reject(431, "the head is too large");
    head.* = .{ .len = @intCast(end) };
    var at: usize = lead;
    head.start = @intCast(at);
    // The request line: method SP target SP HTTP/1.x CRLF.
    const line_end = std.mem.indexOfScalarPos(u8, data, at, '\r').?;
    const line = data[at..line_end];
    const sp1 = std.mem.indexOfScalar(u8, line, ' ') orelse return reject(400, "a malformed request line");
    if (sp1 == 0) return reject(400, "no method");
    for (line[0..sp1]) |c| if (!isTchar(c)) return reject(400, "an invalid method");
    const rest = line[sp1 + 1 ..];
    const sp2 = std.mem.lastIndexOfScalar(u8, rest, ' ') orelse return reject(400, "a malformed request line");
    const target = rest[0..sp2];
    if (target.len == 0) return reject(400, "no request target");
    if (target.len > limits.target_bytes) return reject(414, "the request target is too long");
    for (target) |c| {
        if (c <= 0x20 or c >= 0x7f or c == '#' or c == '\\') return reject(400, "an invalid request target");
    }
    // origin-form (`/path`), asterisk-form (`*`), absolute-form (`http://…`) or, for CONNECT,
    // authority-form.
    const method = line[0..sp1];
    if (target[0] != '/' and !std.mem.eql(u8, target, "*") and !std.mem.eql(u8, method, "CONNECT") and
        !(std.ascii.startsWithIgnoreCase(target, "http://") or std.ascii.startsWithIgnoreCase(target, "https://")))
    {
        return reject(400, "an invalid request target");
    }
    const version = rest[sp2 + 1 ..];
    if (version.len != 8 or !std.mem.startsWith(u8, version, "HTTP/") or version[6] != '.' or
        !std.ascii.isDigit(version[5]) or !std.ascii.isDigit(version[7]))
    {
        return reject(400, "an invalid HTTP version");
    }
    if (version[5] != '1' or version[7] > '1') return reject(505, "an HTTP version other than 1.0 and 1.1");
    head.method_len = @intCast(sp1);
    head.target_off = @intCast(at + sp1 + 1);
    head.target_len = @intCast(target.len);
    head.minor = version[7] - '0';
    // The header fields.
    var hosts: u32 = 0;
    var lengths: u32 = 0;
    var te_seen = false;
    var te_chunked_last = false;
    var te_other = false;
    var close = false;
    var keep_alive = false;
    at = line_end + 2;
    while (at < end - 2) {
        const field_end = std.mem.indexOfScalarPos(u8, data, at, '\r').?;
        const field = data[at..field_end];
        if (field.len == 0) break;
        if (field[0] == ' ' or field[0] == '\t') return reject(400, "a folded header line (obs-fold)");
        const colon = std.mem.indexOfScalar(u8, field, ':') orelse return reject(400, "a header line without a colon");
        if (colon == 0) return reject(400, "an empty header name");
        for (field[0..colon]) |c| if (!isTchar(c)) return reject(400, "an invalid header name (or whitespace before its colon)");
        var v0 = colon + 1;
        var v1 = field.len;
        while (v0 < v1 and (field[v0] == ' ' or field[v0] == '\t')) v0 += 1;
        while (v1 > v0 and (field[v1 - 1] == ' ' or field[v1 - 1] == '\t')) v1 -= 1;
        for (field[v0..v1]) |c| if (!isValueChar(c)) return reject(400, "a control character in a header value");
        if (head.header_count >= @min(limits.headers, headers_max)) return reject(431, "too many header fields");
        head.headers[head.header_count] = .{
            .name_off = @intCast(at),
            .name_len = @intCast(colon),
            .value_off = @intCast(at + v0),
            .value_len = @intCast(v1 - v0),
        };
        head.header_count += 1;
        const name = field[0..colon];
        const value = field[v0..v1];
        if (std.ascii.eqlIgnoreCase(name, "content-length")) {
            lengths += 1;
            if (lengths > 1) return reject(400, "Content-Length more than once");
            if (value.len == 0 or value.len > 19) return reject(400, "an invalid Content-Length");
            for (value) |c| if (!std.ascii.isDigit(c)) return reject(400, "an invalid Content-Length");
            head.content_length = std.fmt.parseInt(u64, value, 10) catch return reject(400, "an invalid Content-Length");
        } else if (std.ascii.eqlIgnoreCase(name, "transfer-encoding")) {
            var codings = std.mem.splitScalar(u8, value, ',');
            while (codings.next()) |raw| {
                const coding = std.mem.trim(u8, raw, " \t");
                if (coding.len == 0) continue;
                // `chunked` must be the last coding, and only once.
                if (te_chunked_last) return reject(400, "a transfer coding after chunked");
                if (std.ascii.eqlIgnoreCase(coding, "chunked")) te_chunked_last = true else te_other = true;
            }
            te_seen = true;
        } else if (std.ascii.eqlIgnoreCase(name, "host")) {
            hosts += 1;
            // An authority (RFC 3986 3.2): a name, an IP literal, a port; nothing a URL built
            // from it could read as a path, a query or a fragment.
            for (value) |c| {
                const ok = std.ascii.isAlphanumeric(c) or switch (c) {
                    '-', '.', '_', '~', '%', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '[', ']' => true,
                    else => false,
                };
                if (!ok) return reject(400, "an invalid Host");
            }
        } else if (std.ascii.eqlIgnoreCase(name, "connection")) {
            var tokens = std.mem.splitScalar(u8, value, ',');
            while (tokens.next()) |raw| {
                const token = std.mem.trim(u8, raw, " \t");
                if (std.ascii.eqlIgnoreCase(token, "close")) close = true;
                if (std.ascii.eqlIgnoreCase(token, "keep-alive")) keep_alive = true;
                if (std.ascii.eqlIgnoreCase(token, "upgrade")) head.flags |= flag_upgrade;
            }
        } else if (std.ascii.eqlIgnoreCase(name, "expect")) {
            if (!std.ascii.eqlIgnoreCase(value, "100-continue")) return reject(417, "an expectation other than 100-continue");
            // (An HTTP/1.0 client does not know 100 Continue: it gets none.)
            if (head.minor == 1) head.flags |= flag_expect_continue;
        }
        at = field_end + 2;
    }
    if (head.minor == 1 and hosts != 1) return reject(400, if (hosts == 0) "no Host header" else "Host more than once");
    if (hosts > 1) return reject(400, "Host more than once");
    if (te_seen) {
        if (head.minor == 0) return reject(400, "Transfer-Encoding on HTTP/1.0");
        if (lengths > 0) return reject(400, "both Content-Length and Transfer-Encoding");
        if (!te_chunked_last) return reject(400, "a Transfer-Encoding that does not end in chunked");
        if (te_other) return reject(501, "a transfer coding other than chunked");
        head.flags |= flag_chunked;
    }
    if (head.content_length > limits.body_bytes) return reject(413, "the body is larger than package_max_length");
    const persistent = if (head.minor == 1) !close else keep_alive and !close;
    if (persistent) head.flags |= flag_keep_alive;
    return .done;
}

/// A chunked body, decoded in place: the decoded bytes are moved to the front of the body as
/// they are read (they are never longer than what encodes them), so a whole request stays one
/// run of bytes. Keep it between reads; a new request starts with a new one.
pub const Chunked = struct {
    /// The next byte to read, from the start of the body.
    in: usize = 0,
    /// Decoded bytes so far, at the start of the body.
    out: usize = 0,
    state: State = .size,
    /// Data bytes of the current chunk still to come.
    left: u64 = 0,
    digits: u8 = 0,
    /// Bytes of the current extension or trailer line, and of the whole trailer section.
    line: u32 = 0,
    trailer: u32 = 0,

    const State = enum { size, extension, size_lf, data, data_cr, data_lf, trailer, trailer_lf, end_lf, done };

    pub const Outcome = union(enum) { need_more, done, reject: Reject };

    pub fn decode(c: *Chunked, body: []u8, limit: u64) Outcome {
        while (c.in < body.len and c.state != .done) {
            // What frames the chunks (sizes, extensions, line ends, trailers) is bounded too:
            // at most 64 KiB beyond what it frames, or as much again.
            const framing = c.in - c.out;
            if (framing > 64 * 1024 and framing > c.out) return .{ .reject = .{ .status = 400, .why = "chunk framing out of proportion to its data" } };
            const byte = body[c.in];
            switch (c.state) {
                .size => {
                    const digit: ?u8 = switch (byte) {
                        '0'...'9' => byte - '0',
                        'a'...'f' => byte - 'a' + 10,
                        'A'...'F' => byte - 'A' + 10,
                        else => null,
                    };
                    if (digit) |d| {
                        if (c.digits == 16) return .{ .reject = .{ .status = 400, .why = "a chunk size too large" } };
                        c.left = (c.left << 4) | d;
                        c.digits += 1;
                    } else if (c.digits == 0) {
                        return .{ .reject = .{ .status = 400, .why = "a chunk without a size" } };
                    } else if (byte == ';') {
                        c.state = .extension;
                        c.line = 0;
                    } else if (byte == '\r') {
                        c.state = .size_lf;
                    } else {
                        return .{ .reject = .{ .status = 400, .why = "an invalid chunk size" } };
                    }
                    // (`out` never passes `limit`: the body so far fitted.)
                    if (c.left > limit - c.out) return .{ .reject = .{ .status = 413, .why = "the body is larger than package_max_length" } };
                },
                .extension => {
                    c.line += 1;
                    if (c.line > chunk_line_max) return .{ .reject = .{ .status = 400, .why = "a chunk extension too long" } };
                    if (byte == '\r') c.state = .size_lf else if (byte == '\n' or !isValueChar(byte)) {
                        return .{ .reject = .{ .status = 400, .why = "an invalid chunk extension" } };
                    }
                },
                .size_lf => {
                    if (byte != '\n') return .{ .reject = .{ .status = 400, .why = "a chunk size line without CRLF" } };
                    c.digits = 0;
                    if (c.left == 0) {
                        c.state = .trailer;
                        c.line = 0;
                    } else c.state = .data;
                },
                .data => {
                    const n: usize = @intCast(@min(c.left, body.len - c.in));
                    std.mem.copyForwards(u8, body[c.out .. c.out + n], body[c.in .. c.in + n]);
                    c.out += n;
                    c.in += n;
                    c.left -= n;
                    if (c.left == 0) c.state = .data_cr;
                    continue;
                },
                .data_cr => {
                    if (byte != '\r') return .{ .reject = .{ .status = 400, .why = "a chunk not followed by CRLF" } };
                    c.state = .data_lf;
                },
                .data_lf => {
                    if (byte != '\n') return .{ .reject = .{ .status = 400, .why = "a chunk not followed by CRLF" } };
                    c.state = .size;
                },
                // After the last chunk: trailer fields (read and dropped), then an empty line.
                .trailer => {
                    if (byte == '\r') {
                        c.state = if (c.line == 0) .end_lf else .trailer_lf;
                    } else if (byte == '\n' or !isValueChar(byte)) {
                        return .{ .reject = .{ .status = 400, .why = "an invalid trailer line" } };
                    } else {
                        c.line += 1;
                        c.trailer += 1;
                        if (c.line > chunk_line_max) return .{ .reject = .{ .status = 431, .why = "a trailer line too long" } };
                        if (c.trailer > 16 * 1024) return .{ .reject = .{ .status = 431, .why = "the trailer section is too large" } };
                    }
                },
                .trailer_lf => {
                    if (byte != '\n') return .{ .reject = .{ .status = 400, .why = "a trailer line without CRLF" } };
                    c.state = .trailer;
                    c.line = 0;
                },
                .end_lf => {
                    if (byte != '\n') return .{ .reject = .{ .status = 400, .why = "a chunked body without its final CRLF" } };
                    c.state = .done;
                },
                .done => unreachable,
            }
            c.in += 1;
        }
        return if (c.state == .done) .done else .need_more;
    }
};

/// Bytes `envelope` writes at most.
pub const envelope_max = @sizeOf(abi.HttpRequest) + headers_max * @sizeOf(abi.HttpHeader);

/// The head as the worker gets it before the raw bytes: `abi.HttpRequest`, then the header
/// table. Offsets are into the raw head that follows.
pub fn envelope(head: *const Head, body_len: u32, out: *[envelope_max]u8) []const u8 {
    const request: abi.HttpRequest = .{
        .head_len = head.len,
        .body_len = body_len,
        .header_count = head.header_count,
        .method_off = head.start,
        .method_len = head.method_len,
        .target_off = head.target_off,
        .target_len = head.target_len,
        .minor_version = head.minor,
        .flags = head.flags,
    };
    @memcpy(out[0..@sizeOf(abi.HttpRequest)], std.mem.asBytes(&request));
    const table = std.mem.sliceAsBytes(head.headers[0..head.header_count]);
    @memcpy(out[@sizeOf(abi.HttpRequest)..][0..table.len], table);
    return out[0 .. @sizeOf(abi.HttpRequest) + table.len];
}

// --- tests ---------------------------------------------------------------------------------

const testing = std.testing;

fn parseAll(text: []const u8, head: *Head) Parse {
    var scanned: u32 = 0;
    return parseHead(text, &scanned, .{}, head);
}

fn expectReject(status: u16, text: []const u8) !void {
    var head: Head = undefined;
    const result = parseAll(text, &head);
    switch (result) {
        .reject => |r| testing.expectEqual(status, r.status) catch |err| {
            std.debug.print("{s}: {s}\n", .{ text, r.why });
            return err;
        },
        else => {
            std.debug.print("not rejected: {s}\n", .{text});
            return error.TestUnexpectedResult;
        },
    }
}

fn header(text: []const u8, head: *const Head, i: usize) [2][]const u8 {
    const h = head.headers[i];
    return .{ text[h.name_off..][0..h.name_len], text[h.value_off..][0..h.value_len] };
}

test "http: a request head, its fields and what they say" {
    const text = "\r\nPOST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Tab:\t v \t\r\nConnection: keep-alive, Upgrade\r\n\r\nhello";
    var head: Head = undefined;
    try testing.expectEqual(Parse.done, parseAll(text, &head));
    try testing.expectEqual(@as(u32, text.len - 5), head.len);
    try testing.expectEqualStrings("POST", text[head.start..][0..head.method_len]);
    try testing.expectEqualStrings("/a?b=1", text[head.target_off..][0..head.target_len]);
    try testing.expectEqual(@as(u8, 1), head.minor);
    try testing.expectEqual(@as(u64, 5), head.content_length);
    try testing.expectEqual(@as(u16, 4), head.header_count);
    try testing.expectEqualStrings("X-Tab", header(text, &head, 2)[0]);
    try testing.expectEqualStrings("v", header(text, &head, 2)[1]);
    try testing.expect(head.keepAlive());
    try testing.expect(head.flags & flag_upgrade != 0);
    try testing.expect(!head.chunked());
}

test "http: keep-alive is 1.1's default and 1.0's by request" {
    var head: Head = undefined;
    try testing.expectEqual(Parse.done, parseAll("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &head));
    try testing.expect(!head.keepAlive());
    try testing.expectEqual(Parse.done, parseAll("GET / HTTP/1.0\r\n\r\n", &head));
    try testing.expect(!head.keepAlive());
    try testing.expectEqual(Parse.done, parseAll("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &head));
    try testing.expect(head.keepAlive());
    try testing.expectEqual(Parse.done, parseAll("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", &head));
    try testing.expect(head.flags & flag_expect_continue != 0);
}

test "http: the strictness rules" {
    try expectReject(400, "GET / HTTP/1.1\nHost: x\r\n\r\n"); // bare LF
    try expectReject(400, "GET / HTTP/1.1\r\nHost: x\n\n");
    try expectReject(400, "GET / HTTP/1.1\r\nHost : x\r\n\r\n"); // whitespace before the colon
    try expectReject(400, "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n");
    try expectReject(400, "GET / HTTP/1.1\r\nHost: x\x01y\r\n\r\n");
    try expectReject(400, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n");
    try expectReject(400, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n");
    try expectReject(400, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n");
    try expectReject(400, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    try expectReject(400, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    try expectReject(400, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    try expectReject(400, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
    try expectReject(501, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    try expectReject(400, "GET / HTTP/1.1\r\n\r\n"); // no Host
    try expectReject(400, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    try expectReject(400, "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
    try expectReject(400, "GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n");
    try expectReject(400, "G(T / HTTP/1.1\r\nHost: x\r\n\r\n");
    try expectReject(400, "GET  HTTP/1.1\r\nHost: x\r\n\r\n");
    try expectReject(400, "GET / HTTP/1.1 \r\nHost: x\r\n\r\n");
    try expectReject(400, "GET / HTTX/1.1\r\nHost: x\r\n\r\n");
    try expectReject(400, "GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n");
    try expectReject(505, "GET / HTTP/2.0\r\nHost: x\r\n\r\n");
    try expectReject(505, "GET / HTTP/1.2\r\nHost: x\r\n\r\n");
    try expectReject(417, "GET / HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n");
    try expectReject(400, "GET / HTTP/1.1\r\nHost: x\rX\n\r\n");
    try expectReject(400, "POST / HTTP/1.1\r\nHost: a\rX\r\nContent-Length: 4\r\n\r\nGET "); // bare CR
    try expectReject(400, "GET / HTTP/1.0\rX\r\n\r\n");
    try expectReject(400, "GET /public HTTP/1.1\r\nHost: x/admin#\r\n\r\n");
    try expectReject(400, "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n");
    try expectReject(400, "GET /..\\admin HTTP/1.1\r\nHost: x\r\n\r\n");
    try expectReject(400, "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n");
    try expectReject(400, "GET admin HTTP/1.1\r\nHost: x\r\n\r\n");
    var head: Head = undefined;
    try testing.expectEqual(Parse.done, parseAll("OPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", &head));
    try testing.expectEqual(Parse.done, parseAll("GET http://x/y HTTP/1.1\r\nHost: x\r\n\r\n", &head));
    try testing.expectEqual(Parse.done, parseAll("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &head));
    try testing.expect(head.flags & flag_expect_continue == 0);
}

test "http: many leading empty lines are skipped in one pass, and bounded" {
    var head: Head = undefined;
    var scanned: u32 = 0;
    try testing.expectEqual(Parse.done, parseHead("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", &scanned, .{}, &head));
    try testing.expectEqual(@as(u16, 4), head.start);
    const lines = "\r\n" ** 9000;
    scanned = 0;
    try testing.expectEqual(@as(u16, 431), parseHead(lines, &scanned, .{}, &head).reject.status);
}

test "http: the limits" {
    var head: Head = undefined;
    var scanned: u32 = 0;
    const long_target = "GET /" ++ "a" ** 9000 ++ " HTTP/1.1\r\nHost: x\r\n\r\n";
    try testing.expectEqual(@as(u16, 414), parseHead(long_target, &scanned, .{}, &head).reject.status);
    scanned = 0;
    const no_end = "GET /" ++ "a" ** 20000;
    try testing.expectEqual(@as(u16, 414), parseHead(no_end, &scanned, .{}, &head).reject.status);
    scanned = 0;
    const big_head = "GET / HTTP/1.1\r\nHost: x\r\nX: " ++ "a" ** 17000 ++ "\r\n\r\n";
    try testing.expectEqual(@as(u16, 431), parseHead(big_head, &scanned, .{}, &head).reject.status);
    var many: [4096]u8 = undefined;
    var stream = std.io.fixedBufferStream(&many);
    try stream.writer().writeAll("GET / HTTP/1.1\r\nHost: x\r\n");
    for (0..100) |_| try stream.writer().writeAll("A: b\r\n");
    try stream.writer().writeAll("\r\n");
    scanned = 0;
    try testing.expectEqual(@as(u16, 431), parseHead(stream.getWritten(), &scanned, .{}, &head).reject.status);
    scanned = 0;
    try testing.expectEqual(@as(u16, 413), parseHead("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", &scanned, .{ .body_bytes = 99 }, &head).reject.status);
}

test "http: a head cut at every byte needs more until it is whole, and then parses the same" {
    const text = "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nA: b\r\n\r\n";
    for (0..text.len) |cut| {
        var head: Head = undefined;
        var scanned: u32 = 0;
        try testing.expectEqual(Parse.need_more, parseHead(text[0..cut], &scanned, .{}, &head));
        try testing.expectEqual(Parse.done, parseHead(text, &scanned, .{}, &head));
        try testing.expectEqual(@as(u32, text.len), head.len);
        try testing.expectEqual(@as(u16, 3), head.header_count);
    }
}

test "http: a chunked body decodes in place, fed at every cut" {
    const encoded = "5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    const expected = "helloabcdefghijklmnopqrstuvwxyz";
    for (1..encoded.len - 4) |cut| {
        var buffer: [encoded.len]u8 = undefined;
        @memcpy(&buffer, encoded);
        var c: Chunked = .{};
        try testing.expectEqual(Chunked.Outcome.need_more, c.decode(buffer[0..cut], 1 << 20));
        try testing.expectEqual(Chunked.Outcome.done, c.decode(&buffer, 1 << 20));
        try testing.expectEqualStrings(expected, buffer[0..c.out]);
        try testing.expectEqual(@as(usize, encoded.len - 4), c.in);
    }
}

test "http: bad chunks are refused" {
    const cases = [_]struct { []const u8, u16 }{
        .{ "x\r\n", 400 },
        .{ "\r\n", 400 },
        .{ "5\nhello\r\n0\r\n\r\n", 400 },
        .{ "5\r\nhelloX\r\n", 400 },
        .{ "5 \r\nhello\r\n", 400 },
        .{ "11111111111111111\r\n", 400 },
        .{ "ffffffff\r\n", 413 },
        .{ "0\r\nbad\nline\r\n\r\n", 400 },
    };
    // Framing out of proportion: 1-byte chunks with long extensions.
    var many: [200 * 1024]u8 = undefined;
    var at: usize = 0;
    while (at + 1100 < many.len) {
        const piece = "1;" ++ "e" ** 1000 ++ "\r\nx\r\n";
        @memcpy(many[at..][0..piece.len], piece);
        at += piece.len;
    }
    var big: Chunked = .{};
    try testing.expectEqual(@as(u16, 400), big.decode(many[0..at], 1 << 30).reject.status);
    for (cases) |case| {
        var buffer: [64]u8 = undefined;
        @memcpy(buffer[0..case[0].len], case[0]);
        var c: Chunked = .{};
        const limit: u64 = if (case[1] == 413) 1 << 20 else std.math.maxInt(u64);
        const outcome = c.decode(buffer[0..case[0].len], limit);
        try testing.expectEqual(case[1], outcome.reject.status);
    }
}

test "http: the envelope carries the head's offsets" {
    const text = "GET /p HTTP/1.1\r\nHost: h\r\n\r\n";
    var head: Head = undefined;
    try testing.expectEqual(Parse.done, parseAll(text, &head));
    var out: [envelope_max]u8 = undefined;
    const bytes = envelope(&head, 0, &out);
    try testing.expectEqual(@as(usize, @sizeOf(abi.HttpRequest) + @sizeOf(abi.HttpHeader)), bytes.len);
    const request = std.mem.bytesToValue(abi.HttpRequest, bytes[0..@sizeOf(abi.HttpRequest)]);
    try testing.expectEqual(@as(u32, text.len), request.head_len);
    try testing.expectEqualStrings("/p", text[request.target_off..][0..request.target_len]);
}
