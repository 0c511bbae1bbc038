//! echo_native: the baseline — a plain single-threaded, level-triggered epoll echo server.
//!
//!   echo_native [--host 127.0.0.1] [--port 0]
//!
//! Prints `listening <host>:<port>` once it accepts connections and exits 0 on SIGTERM or
//! SIGINT (delivered through a signalfd, so the loop needs no async-signal-safe tricks).
//!
//! Each readable socket gets one read into a shared buffer, written straight back. Whatever
//! the socket does not take is kept in the connection's pending buffer; while that is non-empty
//! the connection waits for EPOLLOUT instead of EPOLLIN, so a client that stops reading stalls
//! only itself and the server's memory stays bounded by one read per connection.
const std = @import("std");
const common = @import("common.zig");
const posix = std.posix;
const linux = std.os.linux;
const c = std.c;

const read_chunk = 64 * 1024;
const events_max = 256;
/// epoll user data for the two non-connection fds; connections use their (aligned) address.
const tag_listener: u64 = 1;
const tag_signal: u64 = 2;

const Conn = struct {
    fd: posix.fd_t,
    pending: std.ArrayList(u8) = .empty,
    pending_off: usize = 0,
};

const Server = struct {
    gpa: std.mem.Allocator,
    epoll_fd: posix.fd_t,
    listen_fd: posix.fd_t,
    buffer: []u8,
    live: usize = 0,

    fn accept(server: *Server) void {
        while (true) {
            const rc = c.accept4(server.listen_fd, null, null, linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC);
            if (rc < 0) {
                switch (posix.errno(rc)) {
                    .AGAIN => return,
                    .INTR, .CONNABORTED => continue,
                    else => |e| {
                        common.fail("accept failed: {s}", .{@tagName(e)});
                        return;
                    },
                }
            }
            common.setNoDelay(rc);
            const conn = server.gpa.create(Conn) catch {
                posix.close(rc);
                continue;
            };
            conn.* = .{ .fd = rc };
            var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = @intFromPtr(conn) } };
            posix.epoll_ctl(server.epoll_fd, linux.EPOLL.CTL_ADD, rc, &event) catch {
                posix.close(rc);
                server.gpa.destroy(conn);
                continue;
            };
            server.live += 1;
        }
    }

    fn onReadable(server: *Server, conn: *Conn) void {
        const rc = c.recv(conn.fd, server.buffer.ptr, server.buffer.len, 0);
        if (rc < 0) {
            switch (posix.errno(rc)) {
                .AGAIN, .INTR => return,
                else => return server.close(conn), // reset by the peer, typically
            }
        }
        if (rc == 0) return server.close(conn);
        const data = server.buffer[0..@intCast(rc)];
        const written = server.send(conn, data) orelse return;
        if (written < data.len) {
            conn.pending.appendSlice(server.gpa, data[written..]) catch return server.close(conn);
            server.watch(conn, linux.EPOLL.OUT);
        }
    }

    fn onWritable(server: *Server, conn: *Conn) void {
        const rest = conn.pending.items[conn.pending_off..];
        const written = server.send(conn, rest) orelse return;
        conn.pending_off += written;
        if (conn.pending_off == conn.pending.items.len) {
            conn.pending.clearRetainingCapacity();
            conn.pending_off = 0;
            server.watch(conn, linux.EPOLL.IN);
        }
    }

    /// Bytes written (possibly 0 when the socket is full), or null if the connection was closed.
    fn send(server: *Server, conn: *Conn, data: []const u8) ?usize {
        while (true) {
            const rc = c.send(conn.fd, data.ptr, data.len, linux.MSG.NOSIGNAL);
            if (rc >= 0) return @intCast(rc);
            switch (posix.errno(rc)) {
                .AGAIN => return 0,
                .INTR => continue,
                else => {
                    server.close(conn);
                    return null;
                },
            }
        }
    }

    fn watch(server: *Server, conn: *Conn, events: u32) void {
        var event: linux.epoll_event = .{ .events = events, .data = .{ .u64 = @intFromPtr(conn) } };
        posix.epoll_ctl(server.epoll_fd, linux.EPOLL.CTL_MOD, conn.fd, &event) catch server.close(conn);
    }

    fn close(server: *Server, conn: *Conn) void {
        posix.close(conn.fd);
        conn.pending.deinit(server.gpa);
        server.gpa.destroy(conn);
        server.live -= 1;
    }

    /// Runs until a termination signal arrives.
    fn run(server: *Server) !void {
        var events: [events_max]linux.epoll_event = undefined;
        while (true) {
            const rc = c.epoll_wait(server.epoll_fd, &events, events_max, -1);
            if (rc < 0) {
                if (posix.errno(rc) == .INTR) continue;
                return error.EpollWait;
            }
            for (events[0..@intCast(rc)]) |event| {
                switch (event.data.u64) {
                    tag_listener => server.accept(),
                    tag_signal => return,
                    else => |ptr| {
                        const conn: *Conn = @ptrFromInt(ptr);
                        // A connection closed earlier in this batch cannot appear later in it:
                        // each fd has at most one entry per epoll_wait result.
                        if (event.events & linux.EPOLL.OUT != 0) {
                            server.onWritable(conn);
                        } else if (event.events & (linux.EPOLL.IN | linux.EPOLL.ERR | linux.EPOLL.HUP) != 0) {
                            server.onReadable(conn);
                        }
                    },
                }
            }
        }
    }
};

fn listen(host: []const u8, port: u16) !struct { fd: posix.fd_t, port: u16 } {
    const address = std.net.Address.parseIp(host, port) catch {
        common.fail("--host: '{s}' is not an IP address", .{host});
        return error.Usage;
    };
    const fd = try posix.socket(address.any.family, linux.SOCK.STREAM | linux.SOCK.NONBLOCK | linux.SOCK.CLOEXEC, 0);
    errdefer posix.close(fd);
    common.setIntOption(fd, linux.SOL.SOCKET, linux.SO.REUSEADDR, 1);
    try posix.bind(fd, &address.any, address.getOsSockLen());
    try posix.listen(fd, 1024);
    var bound: std.net.Address = undefined;
    var len: posix.socklen_t = @sizeOf(std.net.Address);
    try posix.getsockname(fd, &bound.any, &len);
    return .{ .fd = fd, .port = bound.getPort() };
}

pub fn main() u8 {
    const gpa = std.heap.c_allocator;
    const args = std.process.argsAlloc(gpa) catch return 2;
    defer std.process.argsFree(gpa, args);
    const options = common.Options.parse(args) catch return 2;
    options.only(&.{ "host", "port" }) catch return 2;
    const host = options.string("host", "127.0.0.1");
    const port = options.int(u16, "port", 0) catch return 2;

    serve(gpa, host, port) catch |err| {
        if (err != error.Usage) common.fail("{s}", .{@errorName(err)});
        return if (err == error.Usage) 2 else 1;
    };
    return 0;
}

fn serve(gpa: std.mem.Allocator, host: []const u8, port: u16) !void {
    // Block the termination signals first so they queue on the signalfd instead of killing us.
    var signals = posix.sigemptyset();
    posix.sigaddset(&signals, posix.SIG.TERM);
    posix.sigaddset(&signals, posix.SIG.INT);
    posix.sigprocmask(posix.SIG.BLOCK, &signals, null);
    const signal_fd = try posix.signalfd(-1, &signals, linux.SFD.NONBLOCK | linux.SFD.CLOEXEC);
    defer posix.close(signal_fd);

    const listener = try listen(host, port);
    defer posix.close(listener.fd);

    const epoll_fd = try posix.epoll_create1(linux.EPOLL.CLOEXEC);
    defer posix.close(epoll_fd);
    var event: linux.epoll_event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = tag_listener } };
    try posix.epoll_ctl(epoll_fd, linux.EPOLL.CTL_ADD, listener.fd, &event);
    event = .{ .events = linux.EPOLL.IN, .data = .{ .u64 = tag_signal } };
    try posix.epoll_ctl(epoll_fd, linux.EPOLL.CTL_ADD, signal_fd, &event);

    const buffer = try gpa.alloc(u8, read_chunk);
    defer gpa.free(buffer);
    var server: Server = .{ .gpa = gpa, .epoll_fd = epoll_fd, .listen_fd = listener.fd, .buffer = buffer };
    try common.printLine("listening {s}:{d}", .{ host, listener.port });
    try server.run();
    // Connections still open at exit are closed by the kernel with the process.
}
