//! BASE mode: a worker's WebSocket connections outlive it when it leaves while the tree runs (a
//! reload, `stop(workerId)`, a `maxRequest` recycle). Its sockets are its own, so they move:
//! the leaving worker sends them to its successor over a Unix socket pair the manager made for
//! that worker id (SCM_RIGHTS; the kernel holds them in flight until the successor reads), and
//! the successor's reactor takes them up under the same session ids, with their topics, the
//! bytes read and not yet delivered, and the output not yet written.
//!
//! What crosses: first one message carrying a file (a memfd) of records, one per session (see
//! `Record`); then messages of up to `fds_per_message` sockets, each with the session ids of
//! its sockets as its bytes. Meanwhile the session's slot in the region's table stays open and
//! marked `carried`, so the tree still sees the connection and forwards pushes and publishes to
//! the worker's mailbox, which the successor reads once it has taken the sockets up.
//!
//! Which connections: open WebSockets with no message half-pushed, no published frames held,
//! no file being sent. The others close as on shutdown (1001). A session whose socket did not
//! get through (the socket pair is full) closes the same way; one whose record did not arrive
//! is let go of by the successor.
const std = @import("std");
const abi = @import("abi.zig");
const reactor = @import("reactor.zig");
const session_table = @import("session_table.zig");
const websocket_session = @import("websocket_session.zig");
const Reactor = reactor.Reactor;
const Session = session_table.Session;
const posix = std.posix;
const linux = std.os.linux;
const log = std.log.scoped(.carry);

/// Sockets per message (the kernel takes at most 253 in one).
pub const fds_per_message = 250;
/// The most bytes of input or output one session brings along; a session with more is not
/// carried (it closes as on shutdown).
pub const max_session_bytes: u64 = 256 * 1024 * 1024;

/// What the records file holds for each session, followed by `in_len` bytes of input (from the
/// session's `in_start`), `out_len` bytes of output still to write, and `topics_len` bytes of
/// topics (each a u16 length and the name).
pub const Record = extern struct {
    id: u32,
    topic_count: u32,
    in_len: u64,
    out_len: u64,
    topics_len: u64,
};

const marker_records: u32 = 0x5a474352; // "ZGCR": the message that carries the records file
const marker_sockets: u32 = 0x5a474353; // "ZGCS": a message of sockets

const cmsg_header_len = @sizeOf(CmsgHeader);
/// A control message header (struct cmsghdr on 64-bit Linux).
const CmsgHeader = extern struct { len: usize, level: i32, type: i32 };
const scm_rights: i32 = 1;

/// A control buffer for up to `fds_per_message` descriptors.
const Control = extern struct {
    header: CmsgHeader,
    fds: [fds_per_message]i32,
};

/// Whether a session can be carried as it is.
fn carriable(s: *const Session) bool {
    return s.state == .open and s.ws.status == .active and s.ws.out_open_lane == 0 and
        s.ws.held.items.len == 0 and s.files.items.len == 0 and !s.connect_pending and !s.proxy_pending and
        s.frame_sent == 0 and !s.carried and
        s.in.items.len - s.in_start <= max_session_bytes and
        s.out.items.len - s.out_sent <= max_session_bytes;
}

/// The leaving worker, once its drain is over and before its sessions close: every carriable
/// session goes to the successor over `r.carry_out` (when the tree is not stopping).
pub fn carryOut(r: *Reactor) void {
    if (r.carry_out < 0) return;
    defer {
        posix.close(r.carry_out);
        r.carry_out = -1;
    }
    if (treeStopping(r)) return;
    var ids: std.ArrayList(u32) = .empty;
    defer ids.deinit(r.allocator);
    for (r.sessions.slots) |*s| {
        if (carriable(s)) ids.append(r.allocator, s.id) catch return;
    }
    if (ids.items.len == 0) return;
    const file = writeRecords(r, ids.items) catch |err| {
        log.warn("cannot write what the successor needs ({s}): {d} WebSocket(s) close instead", .{ @errorName(err), ids.items.len });
        return;
    };
    defer posix.close(file);
    if (!sendFds(r.carry_out, marker_records, &.{}, &.{file})) {
        log.warn("cannot hand over to the successor: {d} WebSocket(s) close instead", .{ids.items.len});
        return;
    }
    var fds: [fds_per_message]i32 = undefined;
    var sent: usize = 0;
    while (sent < ids.items.len) {
        const batch = ids.items[sent..@min(ids.items.len, sent + fds_per_message)];
        for (batch, 0..) |id, i| fds[i] = r.sessions.get(id).?.fd;
        if (!sendFds(r.carry_out, marker_sockets, batch, fds[0..batch.len])) break;
        for (batch) |id| detach(r, r.sessions.get(id).?);
        sent += batch.len;
    }
    if (sent < ids.items.len) {
        log.warn("the socket pair to the successor is full: {d} of {d} WebSocket(s) close instead", .{ ids.items.len - sent, ids.items.len });
    }
    log.info("{d} WebSocket connection(s) handed to this worker's successor", .{sent});
}

/// The tree stops (or this reactor has no region): a leaving worker's WebSockets close rather
/// than carry on.
fn treeStopping(r: *const Reactor) bool {
    const header = r.region_header orelse return true;
    return @atomicLoad(u16, &header.stopping, .acquire) != 0;
}

/// A carried session leaves this reactor but stays open in the region's table.
fn detach(r: *Reactor, s: *Session) void {
    // Its topics stay counted: the successor clears this worker's row and counts them again.
    r.pubsub.topics.dropSession(r.allocator, s.id, null, 0);
    posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_DEL, s.fd, null) catch {};
    posix.close(s.fd);
    s.fd = -1;
    s.out.clearAndFree(r.allocator);
    s.out_sent = 0;
    s.in.clearAndFree(r.allocator);
    s.in_start = 0;
    r.untally(s.listener, "connection_num", 1);
    r.uncount("send_queued_bytes", @atomicLoad(u64, &s.out_queued, .monotonic));
    @atomicStore(u64, &s.out_queued, 0, .monotonic);
    // (Waits for its output to drain were this process's.)
    s.drain_waiters = 0;
    r.sessions.count -= 1;
    @atomicStore(bool, &s.carried, true, .release);
}

fn writeRecords(r: *Reactor, ids: []const u32) !i32 {
    const file = try posix.memfd_create("ziggurat-carry", linux.MFD.CLOEXEC);
    errdefer posix.close(file);
    var at: u64 = 0;
    var topic_bytes: std.ArrayList(u8) = .empty;
    defer topic_bytes.deinit(r.allocator);
    for (ids) |id| {
        const s = r.sessions.get(id).?;
        topic_bytes.clearRetainingCapacity();
        var topic_count: u32 = 0;
        if (r.pubsub.topics.by_session.get(id)) |topics| {
            for (topics.items) |topic| {
                var len: [2]u8 = undefined;
                std.mem.writeInt(u16, &len, @intCast(topic.name.len), .little);
                try topic_bytes.appendSlice(r.allocator, &len);
                try topic_bytes.appendSlice(r.allocator, topic.name);
                topic_count += 1;
            }
        }
        const input = s.in.items[s.in_start..];
        const output = s.out.items[s.out_sent..];
        const record: Record = .{ .id = id, .topic_count = topic_count, .in_len = input.len, .out_len = output.len, .topics_len = topic_bytes.items.len };
        for ([_][]const u8{ std.mem.asBytes(&record), input, output, topic_bytes.items }) |part| {
            try pwriteAll(file, part, at);
            at += part.len;
        }
    }
    return file;
}

fn pwriteAll(fd: i32, bytes: []const u8, offset: u64) !void {
    var done: usize = 0;
    while (done < bytes.len) done += try posix.pwrite(fd, bytes[done..], offset + done);
}

/// One message: `marker`, the ids, and the descriptors. Never blocks (the successor reads only
/// once it runs): false when the socket pair is full or gone.
fn sendFds(sock: i32, marker: u32, ids: []const u32, fds: []const i32) bool {
    std.debug.assert(fds.len > 0 and fds.len <= fds_per_message);
    var control: Control = undefined;
    control.header = .{ .len = cmsg_header_len + fds.len * @sizeOf(i32), .level = linux.SOL.SOCKET, .type = scm_rights };
    @memcpy(control.fds[0..fds.len], fds);
    var head = marker;
    const iov = [_]posix.iovec_const{
        .{ .base = @ptrCast(&head), .len = 4 },
        .{ .base = @ptrCast(ids.ptr), .len = ids.len * 4 },
    };
    const msg: linux.msghdr_const = .{
        .name = null,
        .namelen = 0,
        .iov = &iov,
        .iovlen = if (ids.len == 0) 1 else iov.len,
        .control = &control,
        .controllen = std.mem.alignForward(usize, control.header.len, @sizeOf(usize)),
        .flags = 0,
    };
    const rc: isize = @bitCast(linux.sendmsg(sock, &msg, linux.MSG.DONTWAIT | linux.MSG.NOSIGNAL));
    if (rc < 0) {
        log.warn("sendmsg to the successor: errno {d}", .{-rc});
        return false;
    }
    return true;
}

const Received = struct {
    records: i32 = -1,
    /// Session id to socket, as they came.
    sockets: std.AutoHashMapUnmanaged(u32, i32) = .empty,

    fn deinit(got: *Received, a: std.mem.Allocator) void {
        if (got.records >= 0) posix.close(got.records);
        var left = got.sockets.valueIterator();
        while (left.next()) |fd| posix.close(fd.*);
        got.sockets.deinit(a);
    }
};

/// Everything the predecessor sent (it is gone: the pair ends after its last message).
fn receiveAll(a: std.mem.Allocator, sock: i32, got: *Received) void {
    var bytes: [4 + 4 * fds_per_message]u8 align(4) = undefined;
    var control: Control align(8) = undefined;
    while (true) {
        var iov = [_]posix.iovec{.{ .base = &bytes, .len = bytes.len }};
        var msg: linux.msghdr = .{ .name = null, .namelen = 0, .iov = &iov, .iovlen = 1, .control = &control, .controllen = @sizeOf(Control), .flags = 0 };
        const rc: isize = @bitCast(linux.recvmsg(sock, &msg, linux.MSG.DONTWAIT | linux.MSG.CMSG_CLOEXEC));
        if (rc <= 0) return; // the end, or nothing more
        const len: usize = @intCast(rc);
        var fds: []const i32 = &.{};
        if (msg.controllen >= cmsg_header_len and control.header.level == linux.SOL.SOCKET and control.header.type == scm_rights and control.header.len >= cmsg_header_len) {
            fds = control.fds[0..@min(fds_per_message, (control.header.len - cmsg_header_len) / @sizeOf(i32))];
        }
        const marker = if (len >= 4) std.mem.readInt(u32, bytes[0..4], .little) else 0;
        const ids_len = (len -| 4) / 4;
        var taken: usize = 0;
        if (marker == marker_records and fds.len == 1 and got.records < 0) {
            got.records = fds[0];
            taken = 1;
        } else if (marker == marker_sockets and msg.flags & linux.MSG.TRUNC == 0) {
            while (taken < @min(fds.len, ids_len)) : (taken += 1) {
                const id = std.mem.readInt(u32, bytes[4 + taken * 4 ..][0..4], .little);
                const put = got.sockets.getOrPut(a, id) catch break;
                if (put.found_existing) break;
                put.value_ptr.* = fds[taken];
            }
        }
        for (fds[taken..]) |fd| posix.close(fd);
        if (msg.flags & linux.MSG.CTRUNC != 0) log.warn("a message from the predecessor lost sockets (truncated)", .{});
    }
}

/// The successor, before its reactor starts (its listeners and settings in place, its table in
/// the region): takes up what its predecessor sent on `inbox` (-1: nothing), then lets go of any
/// carried slot that did not come with it.
pub fn carryIn(r: *Reactor, inbox: i32) void {
    var got: Received = .{};
    defer got.deinit(r.allocator);
    if (inbox >= 0) {
        receiveAll(r.allocator, inbox, &got);
        posix.close(inbox);
    }
    var adopted: u32 = 0;
    if (got.records >= 0) adopted = adoptAll(r, &got);
    var dropped: u32 = 0;
    for (r.sessions.slots) |*s| {
        if (!s.carried) continue;
        dropped += 1;
        r.sessions.count += 1;
        @atomicStore(bool, &s.carried, false, .release);
        r.sessions.release(r.allocator, s);
    }
    if (adopted > 0 or dropped > 0) {
        log.info("took up {d} WebSocket connection(s) from this worker's predecessor ({d} lost on the way)", .{ adopted, dropped });
    }
}

fn adoptAll(r: *Reactor, got: *Received) u32 {
    const size = (posix.fstat(got.records) catch return 0).size;
    const end: u64 = @intCast(@max(0, size));
    var at: u64 = 0;
    var adopted: u32 = 0;
    while (at + @sizeOf(Record) <= end) {
        var record: Record = undefined;
        if (!preadAll(got.records, std.mem.asBytes(&record), at)) break;
        at += @sizeOf(Record);
        const body = record.in_len +| record.out_len +| record.topics_len;
        if (record.in_len > max_session_bytes or record.out_len > max_session_bytes or body > end - at) {
            log.warn("a record from the predecessor is larger than its file; the rest is not taken up", .{});
            break;
        }
        defer at += body;
        const fd = (got.sockets.fetchRemove(record.id) orelse continue).value;
        if (adopt(r, fd, &record, got.records, at)) {
            adopted += 1;
        } else {
            posix.close(fd);
        }
    }
    return adopted;
}

fn preadAll(fd: i32, out: []u8, offset: u64) bool {
    var done: usize = 0;
    while (done < out.len) {
        const n = posix.pread(fd, out[done..], offset + done) catch return false;
        if (n == 0) return false;
        done += n;
    }
    return true;
}

/// One session takes up its socket again, here.
fn adopt(r: *Reactor, fd: i32, record: *const Record, file: i32, at: u64) bool {
    if (!r.sessions.owns(record.id)) return false;
    const s = &r.sessions.slots[r.sessions.slotIndex(record.id)];
    if (!s.carried or s.id != record.id or s.listener >= r.listener_count) return false;
    const a = r.allocator;
    // The slot's heap parts were the predecessor's (emptied when kept, see `keepCarried`).
    s.in.resize(a, @intCast(record.in_len)) catch return false;
    s.out.resize(a, @intCast(record.out_len)) catch {
        s.in.clearAndFree(a);
        return false;
    };
    const topics = a.alloc(u8, @intCast(record.topics_len)) catch {
        s.in.clearAndFree(a);
        s.out.clearAndFree(a);
        return false;
    };
    defer a.free(topics);
    if (!preadAll(file, s.in.items, at) or !preadAll(file, s.out.items, at + record.in_len) or
        !preadAll(file, topics, at + record.in_len + record.out_len))
    {
        s.in.clearAndFree(a);
        s.out.clearAndFree(a);
        return false;
    }
    s.fd = fd;
    s.server_fd = r.listeners[s.listener].fd;
    s.server_port = r.listeners[s.listener].port;
    s.home_lane = 0;
    @atomicStore(u64, &s.out_queued, record.out_len, .monotonic);
    r.count("send_queued_bytes", record.out_len);
    var event: linux.epoll_event = .{ .events = reactor.session_events, .data = .{ .u64 = reactor.tag_session | s.id } };
    posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_ADD, fd, &event) catch {
        s.in.clearAndFree(a);
        s.out.clearAndFree(a);
        return false;
    };
    @atomicStore(bool, &s.carried, false, .release);
    r.sessions.count += 1;
    r.tally(s.listener, "connection_num", 1);
    // Its topics, counted again in this worker's row.
    var rest: []const u8 = topics;
    var n: u32 = 0;
    while (n < record.topic_count and rest.len >= 2) : (n += 1) {
        const len = std.mem.readInt(u16, rest[0..2], .little);
        if (rest.len - 2 < len) break;
        r.pubsub.subscribeCarried(a, s.id, rest[2..][0..len]);
        rest = rest[2 + len ..];
    }
    if (s.out.items.len > 0) r.armWrite(s, true);
    r.markReady(s);
    return true;
}

const testing = std.testing;

test "carry: sockets and the records file cross a socket pair with their ids" {
    var pair: [2]i32 = undefined;
    try testing.expectEqual(@as(usize, 0), linux.socketpair(linux.AF.UNIX, linux.SOCK.SEQPACKET | linux.SOCK.CLOEXEC, 0, &pair));
    defer posix.close(pair[0]);
    const file = try posix.memfd_create("carry-test", linux.MFD.CLOEXEC);
    defer posix.close(file);
    const a = try posix.eventfd(0, linux.EFD.CLOEXEC);
    defer posix.close(a);
    const b = try posix.eventfd(0, linux.EFD.CLOEXEC);
    defer posix.close(b);
    try testing.expect(sendFds(pair[1], marker_records, &.{}, &.{file}));
    try testing.expect(sendFds(pair[1], marker_sockets, &.{ 7, 9 }, &.{ a, b }));
    posix.close(pair[1]); // the sender is gone: what it sent stays to be read
    var got: Received = .{};
    defer got.deinit(testing.allocator);
    receiveAll(testing.allocator, pair[0], &got);
    try testing.expect(got.records >= 0);
    try testing.expectEqual(@as(u32, 2), got.sockets.count());
    // The same eventfds, under other numbers: a write on one is read from the other.
    const one: u64 = 1;
    _ = try posix.write(a, std.mem.asBytes(&one));
    var value: u64 = 0;
    _ = try posix.read(got.sockets.get(7).?, std.mem.asBytes(&value));
    try testing.expectEqual(@as(u64, 1), value);
}
