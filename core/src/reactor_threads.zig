//! PROCESS mode's master: `reactor_num` reactor threads that own every client socket, each
//! with one lane (a channel in the tree's region) per event worker. Workers are other
//! processes; they reach a reactor thread through its kick eventfd and are woken through their
//! own doorbell eventfd, both passed down when the manager spawns them. A worker
//! that dies takes no socket with it: its lanes wait (reading stops for the sessions dispatched
//! to it, as for any full ring) until its successor attaches to the same rings. Reactor 0
//! accepts every stream connection and hands them out in turn (handoff.zig).
const std = @import("std");
const abi = @import("abi.zig");
const shm = @import("shm.zig");
const reactor_mod = @import("reactor.zig");
const Reactor = reactor_mod.Reactor;
const posix = std.posix;
const linux = std.os.linux;
/// F_DUPFD_CLOEXEC from <fcntl.h> (not in std.posix.F).
const f_dupfd_cloexec = 1030;

pub const ReactorThreads = struct {
    allocator: std.mem.Allocator,
    reactors: []*Reactor,
    /// One per worker: its doorbell (the caller's).
    doorbells: []const i32,
    channels: [][]u8,

    /// Sets up the reactor threads over `region` (created for PROCESS mode); each polls a
    /// duplicate of `listen_fd` (one wakes per connection). The caller keeps `listen_fd`.
    pub fn create(allocator: std.mem.Allocator, config: abi.ServerConfig, region: []u8, listen_fd: i32, port: u16, tcp_nodelay: bool, given: []const i32) !*ReactorThreads {
        const header = shm.Region.headerOf(region);
        if (header.reactor_num == 0 or given.len != header.worker_num) return error.InvalidArgument;
        const p = try allocator.create(ReactorThreads);
        errdefer allocator.destroy(p);
        const doorbells = try allocator.dupe(i32, given);
        errdefer allocator.free(doorbells);
        const channels = try allocator.alloc([]u8, @as(usize, header.reactor_num) * header.worker_num);
        errdefer allocator.free(channels);
        const reactors = try allocator.alloc(*Reactor, header.reactor_num);
        errdefer allocator.free(reactors);
        var created: usize = 0;
        errdefer for (reactors[0..created]) |r| r.deinit();
        for (reactors, 0..) |*slot, i| {
            const id: u32 = @intCast(i);
            const lanes = channels[i * header.worker_num ..][0..header.worker_num];
            for (lanes, 0..) |*ch, w| ch.* = shm.Region.channel(region, id, @intCast(w));
            var cfg = config;
            cfg.reactor_id = id;
            cfg.max_connection = header.max_connection;
            cfg.ring_bytes = header.ring_bytes;
            cfg.session_stride = header.reactor_num;
            const r = try Reactor.initAttached(allocator, cfg, .{
                .channels = lanes,
                .doorbells = doorbells,
                .slots = shm.Region.tableSlots(region, id),
                .stats = shm.Region.reactorStats(region, id),
                .workers = shm.Region.workerSlots(region),
                .connection_total = &header.connection_total,
                .topic_counts = shm.Region.topicCounts(region),
                .reactor_num = header.reactor_num,
            });
            slot.* = r;
            created += 1;
            const fd = try posix.fcntl(listen_fd, f_dupfd_cloexec, 0);
            r.addListener(.{ .fd = @intCast(fd), .port = port, .tcp_nodelay = tcp_nodelay, .shared = true, .accepts = i == 0 }) catch |err| {
                posix.close(@intCast(fd));
                return err;
            };
        }
        // Reactor 0 accepts for all of them and hands the connections out in turn.
        // The first goes to the reactor whose table owns id start_session_id + 1.
        if (reactors.len > 1) for (reactors) |r| {
            r.peers = reactors;
            r.accepted = config.start_session_id % @as(u32, @intCast(reactors.len));
        };
        p.* = .{ .allocator = allocator, .reactors = reactors, .doorbells = doorbells, .channels = channels };
        return p;
    }

    /// Before start: one more listening socket (a port): accepted on by reactor 0, or read by
    /// every reactor thread (a datagram socket).
    pub fn addListener(p: *ReactorThreads, listen_fd: i32, port: u16, tcp_nodelay: bool) !void {
        for (p.reactors, 0..) |r, i| {
            const fd = try posix.fcntl(listen_fd, f_dupfd_cloexec, 0);
            r.addListener(.{ .fd = @intCast(fd), .port = port, .tcp_nodelay = tcp_nodelay, .shared = true, .accepts = i == 0 }) catch |err| {
                posix.close(@intCast(fd));
                return err;
            };
        }
    }

    pub fn start(p: *ReactorThreads) !void {
        for (p.reactors) |r| try r.start(false);
    }

    /// Event worker `worker` exited (the manager saw it): every reactor thread lets go of the
    /// sessions that waited for its answer.
    pub fn workerExited(p: *ReactorThreads, worker: u16) void {
        for (p.reactors) |r| r.workerExited(worker);
    }

    pub fn requestShutdown(p: *ReactorThreads) void {
        for (p.reactors) |r| r.requestShutdown();
    }

    /// Waits for every reactor thread to finish (after `requestShutdown`).
    pub fn join(p: *ReactorThreads) void {
        for (p.reactors) |r| {
            if (r.thread) |t| t.join();
            r.thread = null;
        }
    }

    pub fn destroy(p: *ReactorThreads) void {
        p.requestShutdown();
        p.join();
        for (p.reactors) |r| r.deinit();
        p.allocator.free(p.reactors);
        p.allocator.free(p.doorbells);
        p.allocator.free(p.channels);
        p.allocator.destroy(p);
    }
};
