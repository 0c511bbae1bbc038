//! UDP and Unix datagram sockets: each datagram read becomes a `packet` record; `sendto`
//! records go out as datagrams.
const std = @import("std");
const abi = @import("abi.zig");
const ring = @import("ring.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const Lane = reactor.Lane;
const Listener = reactor.Listener;
const linux = std.os.linux;
const posix = std.posix;
const log = std.log.scoped(.reactor);
const read_chunk = reactor.read_chunk;
const unix_datagram_max = reactor.unix_datagram_max;
const accepts_per_turn = reactor.accepts_per_turn;
const rawResult = reactor.rawResult;
const rawErrno = reactor.rawErrno;

/// UDP: each datagram becomes a `packet` record (the peer's address, then the bytes), for
/// the worker the dispatch mode picks (by client address in mode 4). With no room in the
/// ring, datagrams wait in the socket's buffer (and past it the kernel drops them, as UDP
/// does).
pub fn readPackets(r: *Reactor, l: *Listener, index: u16) void {
    // A Unix socket's peers have paths: room for the longest one.
    const header: u32 = if (l.unix) abi.PacketAddress.max_size else @sizeOf(abi.PacketAddress);
    var n_read: u32 = 0;
    while (n_read < accepts_per_turn) : (n_read += 1) {
        const lane = r.packetLane() orelse return;
        // A UDP datagram fits 64 KiB; a Unix one may be as large as its sender's buffer.
        const chunk: u32 = if (l.unix) @min(unix_datagram_max, lane.inbound.maxPayload() - header) else read_chunk;
        const room = lane.inbound.reserve(header + chunk) orelse {
            if (r.noRoom(lane, header + chunk)) return;
            continue;
        };
        var from: posix.sockaddr.storage = undefined;
        // An unnamed Unix sender leaves the address untouched (length 0).
        from.family = if (l.unix) posix.AF.UNIX else posix.AF.UNSPEC;
        var from_len: posix.socklen_t = @sizeOf(posix.sockaddr.storage);
        const got = rawResult(linux.recvfrom(l.fd, room.ptr + header, chunk, linux.MSG.TRUNC, @ptrCast(&from), &from_len));
        if (got < 0) {
            switch (rawErrno(got)) {
                .AGAIN => l.pending = false,
                .INTR => continue,
                else => |e| log.err("recvfrom failed: {s}", .{@tagName(e)}),
            }
            return;
        }
        if (got > chunk) {
            // (MSG_TRUNC: the datagram's real length.) Cut short it would be another message.
            log.warn("a datagram of {d} bytes on port {d} is larger than a record ({d} bytes); dropped", .{ got, index, chunk });
            r.tally(index, "protocol_error_count", 1);
            continue;
        }
        var packet_address = packetAddress(&from, from_len);
        packet_address.size = header;
        @memcpy(room[0..8], std.mem.asBytes(&packet_address)[0..8]);
        if (packet_address.family == 1) {
            const un: *const linux.sockaddr.un = @ptrCast(@alignCast(&from));
            @memcpy(room[8..][0..packet_address.port], un.path[0..packet_address.port]);
        } else {
            @memcpy(room[8..24], &packet_address.addr);
        }
        const n: u32 = @intCast(got);
        lane.inbound.commit(.packet, 0, r.reactorId(), 0, index, header + n);
        r.tally(index, "total_recv_bytes", n);
        r.tally(index, "dispatch_count", 1);
    }
}

/// Where a datagram came from, as `packet` records carry it. (`std.net.Address.initPosix`
/// does not take Unix addresses.)
pub fn packetAddress(from: *const posix.sockaddr.storage, from_len: posix.socklen_t) abi.PacketAddress {
    var out: abi.PacketAddress = .{ .family = 0, .port = 0, .addr = @splat(0) };
    switch (from.family) {
        posix.AF.INET => {
            const in: *const posix.sockaddr.in = @ptrCast(@alignCast(from));
            out.family = 4;
            out.port = std.mem.bigToNative(u16, in.port);
            @memcpy(out.addr[0..4], std.mem.asBytes(&in.addr));
        },
        posix.AF.INET6 => {
            const in6: *const posix.sockaddr.in6 = @ptrCast(@alignCast(from));
            out.family = 6;
            out.port = std.mem.bigToNative(u16, in6.port);
            out.addr = in6.addr;
        },
        posix.AF.UNIX => {
            // An unnamed peer has only the family; a path may end in its NUL.
            const un: *const linux.sockaddr.un = @ptrCast(@alignCast(from));
            const given = @min(un.path.len, @as(usize, from_len) -| @sizeOf(posix.sa_family_t));
            var len: usize = given;
            if (len > 0 and un.path[0] != 0) len = std.mem.indexOfScalar(u8, un.path[0..given], 0) orelse given;
            out.family = 1;
            out.port = @intCast(len);
            out.size = abi.PacketAddress.unixSize(len);
        },
        else => {},
    }
    return out;
}

/// The worker for the next datagram: round-robin over those with room (BASE: the one).
pub fn packetLane(r: *Reactor) ?*Lane {
    if (r.lanes.len == 1) return if (r.lanes[0].waiting_for_room) null else &r.lanes[0];
    return r.nextLaneWithRoom();
}

/// `sendto`: one datagram from listener `index` to the address the payload starts with.
pub fn sendDatagram(r: *Reactor, index: u32, payload: []const u8) void {
    if (index >= r.listener_count or payload.len < 8) return r.count("send_dropped_count", 1);
    const l = &r.listeners[index];
    var packet_address: abi.PacketAddress = .{ .family = 0, .port = 0, .addr = @splat(0) };
    @memcpy(std.mem.asBytes(&packet_address)[0..8], payload[0..8]);
    const header = packet_address.size;
    var unix_len: posix.socklen_t = 0;
    if (header < 8 or header > payload.len or header > abi.PacketAddress.max_size) return r.count("send_dropped_count", 1);
    const address: std.net.Address = switch (packet_address.family) {
        4, 6 => blk: {
            if (header != @sizeOf(abi.PacketAddress)) return r.count("send_dropped_count", 1);
            @memcpy(&packet_address.addr, payload[8..24]);
            break :blk if (packet_address.family == 4)
                std.net.Address.initIp4(packet_address.addr[0..4].*, packet_address.port)
            else
                std.net.Address.initIp6(packet_address.addr, packet_address.port, 0, 0);
        },
        1 => blk: {
            const len = packet_address.port;
            if (len == 0 or len > 107 or header < abi.PacketAddress.unixSize(len)) return r.count("send_dropped_count", 1);
            var un: std.net.Address = .{ .un = .{ .family = posix.AF.UNIX, .path = @splat(0) } };
            @memcpy(un.un.path[0..len], payload[8..][0..len]);
            unix_len = @intCast(@offsetOf(linux.sockaddr.un, "path") + len);
            break :blk un;
        },
        else => return r.count("send_dropped_count", 1),
    };
    const data = payload[header..];
    // A path's exact length: an abstract name (a leading NUL) is looked up with every byte
    // of the length given, padding included.
    const address_len = if (unix_len > 0) unix_len else address.getOsSockLen();
    const rc = rawResult(linux.sendto(l.fd, data.ptr, data.len, linux.MSG.DONTWAIT | linux.MSG.NOSIGNAL, &address.any, address_len));
    if (rc < 0) return r.count("send_dropped_count", 1);
    r.tally(@intCast(index), "total_send_bytes", data.len);
}
