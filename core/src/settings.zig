//! A listener's settings (the server's own, or a port's with settings of its own), as
//! `abi.FramingConfig` carries them: framing, limits (HTTP's too), output watermarks, delayed
//! receive, the heartbeat's idle time and the options of accepted sockets.
const std = @import("std");
const abi = @import("abi.zig");
const framing = @import("framing.zig");
const http = @import("http.zig");
const websocket_session = @import("websocket_session.zig");

/// What `abi.FramingConfig` sets, for the server or one port: framing, limits, output
/// watermarks, delayed receive, heartbeat idle time and the options of accepted sockets.
pub const Settings = struct {
    /// How a session's bytes become messages (none: as read).
    framing: framing.Protocol = .none,
    /// `package_max_length`.
    max_length: u32 = 2 * 1024 * 1024,
    /// `bufferFull` when a session's queued output reaches this (0: off), `bufferEmpty` when
    /// it is down to `low_watermark` again.
    high_watermark: u64 = 0,
    low_watermark: u64 = 0,
    /// `enable_delay_receive`: new sessions start paused.
    delay_receive: bool = false,
    /// A port's `heartbeat_idle_time` in ns (0: the server's).
    heartbeat_idle_ns: i64 = 0,
    /// HTTP's limits (framing kind 5).
    http: http.Limits = .{},
    /// WebSocket on an HTTP listener (off unless `open_websocket_protocol`).
    websocket: websocket_session.Settings = .{},
    /// `open_proxy_protocol`: a PROXY protocol header opens every connection (proxy_session.zig).
    proxy_protocol: bool = false,
    /// Socket options of accepted sockets (see `abi.FramingConfig`).
    socket: abi.FramingConfig = std.mem.zeroes(abi.FramingConfig),

    pub fn parse(config: abi.FramingConfig) error{InvalidArgument}!Settings {
        return .{
            .max_length = if (config.max_length == 0) 2 * 1024 * 1024 else config.max_length,
            .high_watermark = config.high_watermark,
            .low_watermark = @min(config.low_watermark, config.high_watermark),
            .delay_receive = config.delay_receive != 0,
            .proxy_protocol = config.proxy_protocol != 0,
            .heartbeat_idle_ns = @as(i64, config.heartbeat_idle_ms) * std.time.ns_per_ms,
            .socket = config,
            .websocket = websocket_session.Settings.parse(config.websocket, config.websocket_max_message, config.websocket_ping_ms, config.websocket_idle_ms),
            .http = .{
                .head_bytes = if (config.http_max_head == 0) (http.Limits{}).head_bytes else @min(config.http_max_head, http.head_bytes_max),
                .headers = if (config.http_max_headers == 0) (http.Limits{}).headers else @min(config.http_max_headers, http.headers_max),
                .target_bytes = if (config.http_max_target == 0) (http.Limits{}).target_bytes else config.http_max_target,
                .body_bytes = if (config.max_length == 0) 2 * 1024 * 1024 else config.max_length,
                .header_timeout_ns = @as(i64, config.http_header_timeout_ms) * std.time.ns_per_ms,
                .keepalive_ns = @as(i64, config.http_keepalive_ms) * std.time.ns_per_ms,
                .min_body_rate = config.http_min_body_rate,
                .max_pipelined = if (config.http_max_pipelined == 0) (http.Limits{}).max_pipelined else config.http_max_pipelined,
            },
            .framing = switch (config.kind) {
                0 => .none,
                4 => .worker,
                5 => .http,
                1, 2 => blk: {
                    if (config.marker_len == 0 or config.marker_len > 8) return error.InvalidArgument;
                    var p: framing.Protocol = .{ .eof = .{ .len = @intCast(config.marker_len), .split = config.kind == 1 } };
                    @memcpy(p.eof.marker[0..config.marker_len], config.marker[0..config.marker_len]);
                    break :blk p;
                },
                3 => .{ .length = .{
                    .type = std.meta.intToEnum(framing.LengthType, @as(u8, @intCast(config.length_type & 0xff))) catch return error.InvalidArgument,
                    .offset = config.length_offset,
                    .body_offset = config.body_offset,
                } },
                else => return error.InvalidArgument,
            },
        };
    }
};
