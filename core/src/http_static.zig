//! Static files, answered by the reactor with no worker hop (`enableStaticHandler`): a GET or
//! HEAD without a body whose path lies in a `staticHandlerLocations` prefix (any path when
//! none are set) is looked up under `documentRoot`. A file found goes out with sendfile(2),
//! with `Content-Type` (by extension), `Last-Modified`, `ETag`, `Accept-Ranges`; conditional
//! requests (`If-None-Match`, `If-Modified-Since`) get 304 and a single byte range (`Range`,
//! `If-Range`) 206 or 416. A directory is served by its first index file (`httpIndexFiles`),
//! redirected (301) to its name with a slash first.
//!
//! What is not found goes on to a worker, except under a location, where it is 404. A path
//! that climbs above the root (`..`, also percent-encoded) is 400; a symlink that leads out of
//! the root, or an absolute one, is not followed (openat2 with `RESOLVE_BENEATH`): not found.
//! Only regular files are served.
const std = @import("std");
const abi = @import("abi.zig");
const http = @import("http.zig");
const http_date = @import("http_date.zig");
const mime = @import("mime.zig");
const session_table = @import("session_table.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const Session = session_table.Session;
const linux = std.os.linux;
const posix = std.posix;
const log = std.log.scoped(.http);

/// The longest path (decoded) looked up; a longer one goes to a worker.
const path_max = 1024;
/// A connection whose output holds this much (or this many files) is not answered further
/// until it is written: a client that pipelines requests and does not read holds no more.
const queued_bytes_max = 256 * 1024;
const queued_files_max = 2;

/// The server's static settings, one copy per reactor (it owns the root's descriptor).
pub const Config = struct {
    root_fd: i32,
    /// Path prefixes, without a trailing slash ("" for `/`: every path).
    locations: []const []const u8,
    index_files: []const []const u8,
    /// The strings of both lists.
    text: []u8,

    /// `locations` and `index_files` are lists separated by newlines.
    pub fn create(allocator: std.mem.Allocator, root: []const u8, locations: []const u8, index_files: []const u8) !*Config {
        var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
        if (root.len == 0 or root.len >= path_buffer.len) return error.InvalidArgument;
        @memcpy(path_buffer[0..root.len], root);
        path_buffer[root.len] = 0;
        const fd = try posix.openZ(@ptrCast(&path_buffer), .{ .ACCMODE = .RDONLY, .DIRECTORY = true, .CLOEXEC = true, .PATH = true }, 0);
        errdefer posix.close(fd);
        const text = try allocator.alloc(u8, locations.len + index_files.len);
        errdefer allocator.free(text);
        @memcpy(text[0..locations.len], locations);
        @memcpy(text[locations.len..], index_files);
        const location_list = try splitList(allocator, text[0..locations.len], true);
        errdefer allocator.free(location_list);
        const index_list = try splitList(allocator, text[locations.len..], false);
        errdefer allocator.free(index_list);
        const cfg = try allocator.create(Config);
        cfg.* = .{ .root_fd = fd, .locations = location_list, .index_files = index_list, .text = text };
        return cfg;
    }

    pub fn destroy(cfg: *Config, allocator: std.mem.Allocator) void {
        posix.close(cfg.root_fd);
        allocator.free(cfg.locations);
        allocator.free(cfg.index_files);
        allocator.free(cfg.text);
        allocator.destroy(cfg);
    }

    /// Whether `path` (normalized) lies in a location (every path when there are none).
    fn covers(cfg: *const Config, path: []const u8) bool {
        if (cfg.locations.len == 0) return true;
        for (cfg.locations) |loc| {
            if (std.mem.startsWith(u8, path, loc) and (path.len == loc.len or path[loc.len] == '/')) return true;
        }
        return false;
    }
};

fn splitList(allocator: std.mem.Allocator, text: []const u8, prefixes: bool) ![]const []const u8 {
    var list: std.ArrayList([]const u8) = .empty;
    errdefer list.deinit(allocator);
    var it = std.mem.tokenizeScalar(u8, text, '\n');
    while (it.next()) |item| {
        if (prefixes) {
            if (item[0] != '/') return error.InvalidArgument;
            try list.append(allocator, std.mem.trimRight(u8, item, "/"));
        } else {
            if (std.mem.indexOfScalar(u8, item, '/') != null) return error.InvalidArgument;
            try list.append(allocator, item);
        }
    }
    return list.toOwnedSlice(allocator);
}

pub const Outcome = enum {
    /// Not a static request: it goes to a worker.
    pass,
    /// Answered; the request's bytes are consumed.
    answered,
    /// To be answered once the responses before it are (the worker's still in flight).
    wait_responses,
    /// To be answered once the connection's queued output is written.
    wait_output,
};

const Found = struct {
    fd: i32,
    stat: linux.Stat,
    /// The name the content type comes from.
    name: []const u8,
};

const Answer = union(enum) {
    file: Found,
    status: u16,
    /// 301 to the path with a slash added (raw path and query of the request).
    slash: struct { path: []const u8, query: []const u8 },
};

/// Looks the request up, and answers it when it is static (in order: only when nothing is in
/// flight before it).
pub fn serve(r: *Reactor, s: *Session, cfg: *const Config, head: *const http.Head, raw: []const u8) Outcome {
    const method = raw[head.start..][0..head.method_len];
    const is_head = std.mem.eql(u8, method, "HEAD");
    if (!is_head and !std.mem.eql(u8, method, "GET")) return .pass;
    if (head.content_length != 0 or head.chunked()) return .pass;
    const target = raw[head.target_off..][0..head.target_len];
    if (target[0] != '/') return .pass;
    const q = std.mem.indexOfScalar(u8, target, '?');
    const raw_path = target[0 .. q orelse target.len];
    const query = if (q) |i| target[i..] else "";
    var path_buffer: [path_max]u8 = undefined;
    const answer: Answer = blk: {
        const path = normalize(raw_path, &path_buffer) catch |err| switch (err) {
            error.TooLong => return .pass,
            // A malformed escape or a NUL: not a file's name; the application's, unless a
            // location claims the path.
            error.Invalid => {
                if (cfg.locations.len == 0 or !cfg.covers(raw_path)) return .pass;
                log.info("session {d}: 400 Bad Request: the static path {s} is malformed", .{ s.id, raw_path });
                break :blk .{ .status = 400 };
            },
            error.Escape => {
                log.info("session {d}: 400 Bad Request: the static path {s} climbs out of the root", .{ s.id, raw_path });
                break :blk .{ .status = 400 };
            },
        };
        if (!cfg.covers(path)) return .pass;
        const miss: Answer = .{ .status = 404 };
        const strict = cfg.locations.len > 0;
        var rel_buffer: [path_max + 1]u8 = undefined;
        const rel = relative(path, &rel_buffer);
        const fd = openBeneath(cfg.root_fd, rel) catch |err| switch (err) {
            error.Forbidden => break :blk .{ .status = 403 },
            else => if (strict) break :blk miss else return .pass,
        };
        var stat: linux.Stat = undefined;
        if (linux.E.init(linux.fstat(fd, &stat)) != .SUCCESS) {
            posix.close(fd);
            if (strict) break :blk miss else return .pass;
        }
        if (posix.S.ISDIR(stat.mode)) {
            const index = openIndex(cfg, fd);
            posix.close(fd);
            const found = index orelse if (strict) break :blk miss else return .pass;
            if (path[path.len - 1] != '/') {
                posix.close(found.fd);
                // (From the normalized path, encoded again: the raw one may read as another
                // host, `//elsewhere/..%2Fdir`.)
                if (path.len * 3 + query.len > location_max) return .pass;
                break :blk .{ .slash = .{ .path = path, .query = query } };
            }
            break :blk .{ .file = found };
        }
        if (!posix.S.ISREG(stat.mode)) {
            posix.close(fd);
            if (strict) break :blk miss else return .pass;
        }
        break :blk .{ .file = .{ .fd = fd, .stat = stat, .name = path } };
    };
    // In order: after the responses still due, and not past what the client leaves unread.
    var wait: ?Outcome = null;
    if (s.http.in_flight > 0) {
        wait = .wait_responses;
    } else if (s.files.items.len >= queued_files_max or @atomicLoad(u64, &s.out_queued, .monotonic) >= queued_bytes_max) {
        wait = .wait_output;
    }
    if (wait) |w| {
        if (answer == .file) posix.close(answer.file.fd);
        return w;
    }
    r.tally(s.listener, "http_static_count", 1);
    switch (answer) {
        .file => |found| sendFound(r, s, head, raw, found, is_head),
        .status => |status| sendStatus(r, s, head, status, "", ""),
        .slash => |to| sendStatus(r, s, head, 301, to.path, to.query),
    }
    return .answered;
}

/// `path` as a name under the root: without its leading slash, "." for the root itself, and
/// NUL-terminated.
fn relative(path: []const u8, out: *[path_max + 1]u8) [*:0]const u8 {
    var rel = std.mem.trim(u8, path, "/");
    if (rel.len == 0) rel = ".";
    @memcpy(out[0..rel.len], rel);
    out[rel.len] = 0;
    return @ptrCast(out);
}

fn openIndex(cfg: *const Config, dir_fd: i32) ?Found {
    for (cfg.index_files) |name| {
        var buffer: [path_max + 1]u8 = undefined;
        if (name.len > path_max) continue;
        @memcpy(buffer[0..name.len], name);
        buffer[name.len] = 0;
        const fd = openBeneath(dir_fd, @ptrCast(&buffer)) catch continue;
        var stat: linux.Stat = undefined;
        if (linux.E.init(linux.fstat(fd, &stat)) == .SUCCESS and posix.S.ISREG(stat.mode)) {
            return .{ .fd = fd, .stat = stat, .name = name };
        }
        posix.close(fd);
    }
    return null;
}

const OpenHow = extern struct { flags: u64, mode: u64, resolve: u64 };
const resolve_no_magiclinks: u64 = 0x02;
const resolve_beneath: u64 = 0x08;

/// Opens `name` under directory `dir` for reading, never resolving out of it.
fn openBeneath(dir: i32, name: [*:0]const u8) error{ NotFound, Forbidden }!i32 {
    const flags: u32 = @bitCast(linux.O{ .ACCMODE = .RDONLY, .CLOEXEC = true, .NONBLOCK = true, .NOCTTY = true });
    var how: OpenHow = .{ .flags = flags, .mode = 0, .resolve = resolve_beneath | resolve_no_magiclinks };
    while (true) {
        const rc = linux.syscall4(.openat2, @bitCast(@as(isize, dir)), @intFromPtr(name), @intFromPtr(&how), @sizeOf(OpenHow));
        switch (linux.E.init(rc)) {
            .SUCCESS => return @intCast(rc),
            .INTR => continue,
            .ACCES, .PERM => return error.Forbidden,
            else => return error.NotFound,
        }
    }
}

const NormalizeError = error{ TooLong, Escape, Invalid };

/// A request path percent-decoded, its `.` and empty segments dropped and `..` applied; it
/// keeps a trailing slash (a directory asked for as one). Climbing above `/` is `Escape`; a
/// NUL, or a `%` not followed by two hex digits, `Invalid`.
pub fn normalize(raw: []const u8, out: *[path_max]u8) NormalizeError![]const u8 {
    var decoded: [path_max]u8 = undefined;
    var n: usize = 0;
    var i: usize = 0;
    while (i < raw.len) : (n += 1) {
        if (n == decoded.len) return error.TooLong;
        var c = raw[i];
        if (c == '%') {
            if (i + 2 >= raw.len) return error.Invalid;
            const hi = std.fmt.charToDigit(raw[i + 1], 16) catch return error.Invalid;
            const lo = std.fmt.charToDigit(raw[i + 2], 16) catch return error.Invalid;
            c = hi * 16 + lo;
            i += 3;
        } else i += 1;
        if (c == 0) return error.Invalid;
        decoded[n] = c;
    }
    var len: usize = 0;
    var segments = std.mem.splitScalar(u8, decoded[0..n], '/');
    var directory = false;
    while (segments.next()) |seg| {
        directory = seg.len == 0 or std.mem.eql(u8, seg, ".") or std.mem.eql(u8, seg, "..");
        if (seg.len == 0 or std.mem.eql(u8, seg, ".")) continue;
        if (std.mem.eql(u8, seg, "..")) {
            if (len == 0) return error.Escape;
            len = std.mem.lastIndexOfScalar(u8, out[0..len], '/').?;
            continue;
        }
        if (len + 1 + seg.len > out.len) return error.TooLong;
        out[len] = '/';
        @memcpy(out[len + 1 ..][0..seg.len], seg);
        len += 1 + seg.len;
    }
    if (len == 0 or directory) {
        if (len + 1 > out.len) return error.TooLong;
        out[len] = '/';
        len += 1;
    }
    return out[0..len];
}

pub const Range = struct { start: u64, len: u64 };
pub const RangeOutcome = union(enum) { whole, part: Range, unsatisfiable };

fn digits(text: []const u8) ?u64 {
    if (text.len == 0 or text.len > 19) return null;
    var v: u64 = 0;
    for (text) |c| {
        if (!std.ascii.isDigit(c)) return null;
        v = v * 10 + (c - '0');
    }
    return v;
}

/// One byte range of a file of `size` bytes (RFC 9110 14.1.2). Several ranges, another unit or
/// a malformed one: the whole file (a server may ignore `Range`).
pub fn parseRange(value: []const u8, size: u64) RangeOutcome {
    const v = std.mem.trim(u8, value, " \t");
    if (v.len < 6 or !std.ascii.eqlIgnoreCase(v[0..6], "bytes=")) return .whole;
    const spec = std.mem.trim(u8, v[6..], " \t");
    if (std.mem.indexOfScalar(u8, spec, ',') != null) return .whole;
    const dash = std.mem.indexOfScalar(u8, spec, '-') orelse return .whole;
    const first = std.mem.trim(u8, spec[0..dash], " \t");
    const last = std.mem.trim(u8, spec[dash + 1 ..], " \t");
    if (first.len == 0) {
        const n = digits(last) orelse return .whole;
        if (n == 0 or size == 0) return .unsatisfiable;
        const start = size - @min(n, size);
        return .{ .part = .{ .start = start, .len = size - start } };
    }
    const a = digits(first) orelse return .whole;
    const b = if (last.len == 0) std.math.maxInt(u64) else digits(last) orelse return .whole;
    if (b < a) return .whole;
    if (a >= size) return .unsatisfiable;
    return .{ .part = .{ .start = a, .len = @min(b, size - 1) - a + 1 } };
}

/// The value of header `name` (the first of them), or null.
fn headerValue(head: *const http.Head, raw: []const u8, name: []const u8) ?[]const u8 {
    for (head.headers[0..head.header_count]) |h| {
        if (std.ascii.eqlIgnoreCase(raw[h.name_off..][0..h.name_len], name)) return raw[h.value_off..][0..h.value_len];
    }
    return null;
}

/// Whether entity tag `ours` is in `list` (`If-None-Match`: weak comparison, `*` matches).
fn etagListed(list: []const u8, ours: []const u8) bool {
    var it = std.mem.splitScalar(u8, list, ',');
    while (it.next()) |item| {
        var tag = std.mem.trim(u8, item, " \t");
        if (std.mem.eql(u8, tag, "*")) return true;
        if (std.mem.startsWith(u8, tag, "W/")) tag = tag[2..];
        if (std.mem.eql(u8, tag, ours)) return true;
    }
    return false;
}

/// The head's last lines: the connection's fate, then the empty line.
fn connectionLine(head: *const http.Head) []const u8 {
    if (!head.keepAlive()) return "Connection: close\r\n\r\n";
    return if (head.minor == 0) "Connection: keep-alive\r\n\r\n" else "\r\n";
}

fn sendFound(r: *Reactor, s: *Session, head: *const http.Head, raw: []const u8, found: Found, is_head: bool) void {
    const size: u64 = @intCast(found.stat.size);
    const mtime: i64 = found.stat.mtim.sec;
    var etag_buffer: [48]u8 = undefined;
    const etag = std.fmt.bufPrint(&etag_buffer, "\"{x}-{x}\"", .{ mtime, size }) catch unreachable;
    var date_buffer: [http_date.len]u8 = undefined;
    var modified_buffer: [http_date.len]u8 = undefined;
    const date = http_date.now(&date_buffer);
    const modified = http_date.format(mtime, &modified_buffer);
    // Conditions: If-None-Match, else If-Modified-Since (RFC 9110 13.2.2).
    const not_modified = if (headerValue(head, raw, "if-none-match")) |list|
        etagListed(list, etag)
    else if (headerValue(head, raw, "if-modified-since")) |since|
        if (http_date.parse(since)) |t| mtime <= t else false
    else
        false;
    var range: RangeOutcome = .whole;
    if (!not_modified and !is_head) {
        if (headerValue(head, raw, "range")) |value| {
            // If-Range: the range only while the file is the one the client has.
            const current = if (headerValue(head, raw, "if-range")) |v|
                std.mem.eql(u8, v, etag) or std.mem.eql(u8, v, modified)
            else
                true;
            if (current) range = parseRange(value, size);
        }
    }
    var buffer: [1024]u8 = undefined;
    var w: std.Io.Writer = .fixed(&buffer);
    const status: u16 = if (not_modified) 304 else switch (range) {
        .whole => 200,
        .part => 206,
        .unsatisfiable => 416,
    };
    w.print("HTTP/1.1 {d} {s}\r\nDate: {s}\r\nLast-Modified: {s}\r\nETag: {s}\r\n", .{ status, http.reason(status), date, modified, etag }) catch unreachable;
    var offset: u64 = 0;
    var length: u64 = size;
    switch (status) {
        304 => length = 0,
        416 => {
            w.print("Content-Range: bytes */{d}\r\nContent-Length: 0\r\n", .{size}) catch unreachable;
            length = 0;
        },
        else => {
            if (range == .part) {
                offset = range.part.start;
                length = range.part.len;
                w.print("Content-Range: bytes {d}-{d}/{d}\r\n", .{ offset, offset + length - 1, size }) catch unreachable;
            }
            w.print("Content-Type: {s}\r\nContent-Length: {d}\r\nAccept-Ranges: bytes\r\n", .{ mime.typeOf(found.name), length }) catch unreachable;
        },
    }
    w.writeAll(connectionLine(head)) catch unreachable;
    r.httpAnswered(s, status);
    r.sendTo(s.id, w.buffered());
    if (is_head or length == 0 or r.sessions.get(s.id) == null or s.state == .closing) {
        posix.close(found.fd);
        return;
    }
    r.queueFile(s, found.fd, offset, length);
}

/// The most bytes of a `Location` the 301 to a directory's slash carries.
const location_max = 2048;

/// Bytes of a path that go in a URL as they are; the rest percent-encoded.
fn pathChar(c: u8) bool {
    return std.ascii.isAlphanumeric(c) or switch (c) {
        '/', '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@' => true,
        else => false,
    };
}

fn sendStatus(r: *Reactor, s: *Session, head: *const http.Head, status: u16, path: []const u8, query: []const u8) void {
    var buffer: [location_max + 256]u8 = undefined;
    var w: std.Io.Writer = .fixed(&buffer);
    var date_buffer: [http_date.len]u8 = undefined;
    w.print("HTTP/1.1 {d} {s}\r\nDate: {s}\r\nContent-Length: 0\r\n", .{ status, http.reason(status), http_date.now(&date_buffer) }) catch unreachable;
    if (status == 301) {
        w.writeAll("Location: ") catch unreachable;
        for (path) |c| {
            if (pathChar(c)) w.writeByte(c) catch unreachable else w.print("%{X:0>2}", .{c}) catch unreachable;
        }
        w.print("/{s}\r\n", .{query}) catch unreachable;
    }
    w.writeAll(connectionLine(head)) catch unreachable;
    r.httpAnswered(s, status);
    r.sendTo(s.id, w.buffered());
}

// --- tests ---------------------------------------------------------------------------------

const testing = std.testing;

fn expectPath(expected: []const u8, raw: []const u8) !void {
    var out: [path_max]u8 = undefined;
    try testing.expectEqualStrings(expected, try normalize(raw, &out));
}

test "static: paths are decoded and normalized, and never climb above the root" {
    try expectPath("/", "/");
    try expectPath("/a/b.txt", "/a/./b.txt");
    try expectPath("/b.txt", "/a/../b.txt");
    try expectPath("/a/", "/a/");
    try expectPath("/a/", "/a/b/..");
    try expectPath("/a b", "/a%20b");
    try expectPath("/x", "//x");
    var out: [path_max]u8 = undefined;
    try testing.expectError(error.Escape, normalize("/..", &out));
    try testing.expectError(error.Escape, normalize("/a/../../etc/passwd", &out));
    try testing.expectError(error.Escape, normalize("/%2e%2e/etc/passwd", &out));
    try testing.expectError(error.Escape, normalize("/a/%2E%2E%2f%2e%2e/x", &out));
    try testing.expectError(error.Invalid, normalize("/a%00b", &out));
    try testing.expectError(error.Invalid, normalize("/a%2", &out));
    try testing.expectError(error.Invalid, normalize("/a%zz", &out));
    try testing.expectError(error.TooLong, normalize("/" ++ "a" ** path_max, &out));
}

test "static: byte ranges" {
    try testing.expectEqual(RangeOutcome{ .part = .{ .start = 0, .len = 10 } }, parseRange("bytes=0-9", 100));
    try testing.expectEqual(RangeOutcome{ .part = .{ .start = 90, .len = 10 } }, parseRange("bytes=90-", 100));
    try testing.expectEqual(RangeOutcome{ .part = .{ .start = 80, .len = 20 } }, parseRange("bytes=-20", 100));
    try testing.expectEqual(RangeOutcome{ .part = .{ .start = 0, .len = 100 } }, parseRange("bytes=-200", 100));
    try testing.expectEqual(RangeOutcome{ .part = .{ .start = 50, .len = 50 } }, parseRange("bytes=50-1000", 100));
    try testing.expectEqual(RangeOutcome.unsatisfiable, parseRange("bytes=100-", 100));
    try testing.expectEqual(RangeOutcome.unsatisfiable, parseRange("bytes=-0", 100));
    try testing.expectEqual(RangeOutcome.whole, parseRange("bytes=0-1,5-6", 100));
    try testing.expectEqual(RangeOutcome.whole, parseRange("items=0-1", 100));
    try testing.expectEqual(RangeOutcome.whole, parseRange("bytes=5-2", 100));
    try testing.expectEqual(RangeOutcome.whole, parseRange("bytes=+1-2", 100));
}

test "static: If-None-Match lists, weak comparison" {
    try testing.expect(etagListed("\"a\", W/\"b\"", "\"b\""));
    try testing.expect(etagListed("*", "\"x\""));
    try testing.expect(!etagListed("\"a\"", "\"b\""));
}
