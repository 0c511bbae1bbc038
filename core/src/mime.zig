//! Content types of static files, by file name extension (case-insensitive); what is not
//! listed is `application/octet-stream`. Text types carry `charset=utf-8`.
const std = @import("std");

const Entry = struct { []const u8, []const u8 };

const table = [_]Entry{
    .{ "html", "text/html; charset=utf-8" },
    .{ "htm", "text/html; charset=utf-8" },
    .{ "css", "text/css; charset=utf-8" },
    .{ "js", "text/javascript; charset=utf-8" },
    .{ "mjs", "text/javascript; charset=utf-8" },
    .{ "json", "application/json" },
    .{ "map", "application/json" },
    .{ "webmanifest", "application/manifest+json" },
    .{ "txt", "text/plain; charset=utf-8" },
    .{ "md", "text/markdown; charset=utf-8" },
    .{ "csv", "text/csv; charset=utf-8" },
    .{ "xml", "application/xml" },
    .{ "svg", "image/svg+xml" },
    .{ "png", "image/png" },
    .{ "jpg", "image/jpeg" },
    .{ "jpeg", "image/jpeg" },
    .{ "gif", "image/gif" },
    .{ "webp", "image/webp" },
    .{ "avif", "image/avif" },
    .{ "ico", "image/x-icon" },
    .{ "bmp", "image/bmp" },
    .{ "woff", "font/woff" },
    .{ "woff2", "font/woff2" },
    .{ "ttf", "font/ttf" },
    .{ "otf", "font/otf" },
    .{ "wasm", "application/wasm" },
    .{ "pdf", "application/pdf" },
    .{ "zip", "application/zip" },
    .{ "gz", "application/gzip" },
    .{ "tar", "application/x-tar" },
    .{ "mp4", "video/mp4" },
    .{ "webm", "video/webm" },
    .{ "mp3", "audio/mpeg" },
    .{ "ogg", "audio/ogg" },
    .{ "wav", "audio/wav" },
};

pub const default = "application/octet-stream";

/// The content type of a file named `name` (a path; only its last segment counts).
pub fn typeOf(name: []const u8) []const u8 {
    const base = name[if (std.mem.lastIndexOfScalar(u8, name, '/')) |i| i + 1 else 0..];
    const dot = std.mem.lastIndexOfScalar(u8, base, '.') orelse return default;
    if (dot == 0) return default;
    const ext = base[dot + 1 ..];
    for (table) |entry| {
        if (std.ascii.eqlIgnoreCase(ext, entry[0])) return entry[1];
    }
    return default;
}

test "mime: types by extension, case-insensitive, from the last segment only" {
    try std.testing.expectEqualStrings("text/html; charset=utf-8", typeOf("/a/index.HTML"));
    try std.testing.expectEqualStrings("image/png", typeOf("x.png"));
    try std.testing.expectEqualStrings(default, typeOf("/a.dir/file"));
    try std.testing.expectEqualStrings(default, typeOf("/.bashrc"));
    try std.testing.expectEqualStrings(default, typeOf("noext"));
}
