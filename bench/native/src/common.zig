//! Small helpers shared by `echo_load` and `echo_native`: `--name value` argument parsing,
//! the monotonic clock, socket options and a stdout line printer.
const std = @import("std");
const posix = std.posix;
const linux = std.os.linux;

/// Parsed `--name value` / `--name=value` pairs. Values borrow from the process arguments.
pub const Options = struct {
    names: [max_options][]const u8 = undefined,
    values: [max_options][]const u8 = undefined,
    len: usize = 0,

    const max_options = 32;

    /// Parses argv[1..]; anything that is not a `--name value` pair is a usage error.
    pub fn parse(args: []const [:0]const u8) error{Usage}!Options {
        var options: Options = .{};
        var i: usize = 1;
        while (i < args.len) : (i += 1) {
            const arg: []const u8 = args[i];
            if (!std.mem.startsWith(u8, arg, "--") or arg.len == 2) {
                fail("unexpected argument '{s}'", .{arg});
                return error.Usage;
            }
            if (options.len == max_options) {
                fail("too many arguments", .{});
                return error.Usage;
            }
            const body = arg[2..];
            if (std.mem.indexOfScalar(u8, body, '=')) |eq| {
                options.names[options.len] = body[0..eq];
                options.values[options.len] = body[eq + 1 ..];
            } else {
                if (i + 1 == args.len) {
                    fail("--{s} needs a value", .{body});
                    return error.Usage;
                }
                i += 1;
                options.names[options.len] = body;
                options.values[options.len] = args[i];
            }
            options.len += 1;
        }
        return options;
    }

    /// Rejects any option not in `known`, so a typo never silently falls back to a default.
    pub fn only(options: *const Options, known: []const []const u8) error{Usage}!void {
        outer: for (options.names[0..options.len]) |name| {
            for (known) |k| if (std.mem.eql(u8, name, k)) continue :outer;
            fail("unknown option --{s}", .{name});
            return error.Usage;
        }
    }

    /// The last value given for `name`, or `default`.
    pub fn string(options: *const Options, name: []const u8, default: []const u8) []const u8 {
        var i = options.len;
        while (i > 0) {
            i -= 1;
            if (std.mem.eql(u8, options.names[i], name)) return options.values[i];
        }
        return default;
    }

    /// `--host` (default 127.0.0.1) and `--port` (required) of the server to load.
    pub fn serverAddress(options: *const Options) error{Usage}!std.net.Address {
        const host = options.string("host", "127.0.0.1");
        const port = try options.int(u16, "port", 0);
        if (port == 0) {
            fail("--port is required", .{});
            return error.Usage;
        }
        return std.net.Address.parseIp(host, port) catch {
            fail("--host: '{s}' is not an IP address", .{host});
            return error.Usage;
        };
    }

    pub fn int(options: *const Options, comptime T: type, name: []const u8, default: T) error{Usage}!T {
        const text = options.string(name, "");
        if (text.len == 0) return default;
        return std.fmt.parseInt(T, text, 10) catch {
            fail("--{s}: '{s}' is not a valid integer", .{ name, text });
            return error.Usage;
        };
    }

    pub fn float(options: *const Options, name: []const u8, default: f64) error{Usage}!f64 {
        const text = options.string(name, "");
        if (text.len == 0) return default;
        const value = std.fmt.parseFloat(f64, text) catch {
            fail("--{s}: '{s}' is not a number", .{ name, text });
            return error.Usage;
        };
        if (!(value >= 0) or std.math.isInf(value)) {
            fail("--{s}: must be a finite, non-negative number", .{name});
            return error.Usage;
        }
        return value;
    }
};

/// Prints a diagnostic line to stderr, prefixed with the program name.
pub fn fail(comptime fmt: []const u8, args: anytype) void {
    std.debug.print("error: " ++ fmt ++ "\n", args);
}

/// CLOCK_MONOTONIC in nanoseconds (a vDSO call through libc: no syscall on the hot path).
pub fn nowNs() i64 {
    const ts = posix.clock_gettime(.MONOTONIC) catch unreachable;
    return @as(i64, ts.sec) * std.time.ns_per_s + ts.nsec;
}

pub fn setIntOption(fd: posix.fd_t, level: i32, name: u32, value: c_int) void {
    posix.setsockopt(fd, level, name, std.mem.asBytes(&value)) catch |err| {
        fail("setsockopt({d}, {d}) failed: {s}", .{ level, name, @errorName(err) });
    };
}

pub fn setNoDelay(fd: posix.fd_t) void {
    setIntOption(fd, linux.IPPROTO.TCP, linux.TCP.NODELAY, 1);
}

/// Writes one line to stdout and flushes it at once: the callers' parents wait on these lines
/// through a pipe, where nothing would otherwise be flushed until exit.
pub fn printLine(comptime fmt: []const u8, args: anytype) !void {
    var buffer: [512]u8 = undefined;
    var stdout = std.fs.File.stdout().writerStreaming(&buffer);
    try stdout.interface.print(fmt ++ "\n", args);
    try stdout.interface.flush();
}
