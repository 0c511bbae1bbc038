//! The C API of what HTTP workers ask the core for outside a reactor: the content type of a
//! file name (the table the static handler uses, mime.zig), for `HttpResponse.sendfile`.
const mime = @import("mime.zig");

/// Writes the content type of file name `name` into `out` (at most `cap` bytes); its length.
export fn zg_content_type(name: [*]const u8, name_len: u32, out: [*]u8, cap: u32) u32 {
    const text = mime.typeOf(name[0..name_len]);
    const n: u32 = @intCast(@min(text.len, cap));
    @memcpy(out[0..n], text[0..n]);
    return n;
}
