//! Writing: what workers queue in the outbound rings (sends, sendfile, sendwait, pause),
//! written from ring memory when a session has no backlog, else through its output buffer.
const std = @import("std");
const abi = @import("abi.zig");
const ring = @import("ring.zig");
const session_table = @import("session_table.zig");
const reactor = @import("reactor.zig");
const pubsub = @import("pubsub.zig");
const websocket_session = @import("websocket_session.zig");
const Reactor = reactor.Reactor;
const Session = session_table.Session;
const linux = std.os.linux;
const posix = std.posix;
const log = std.log.scoped(.reactor);
const out_keep_bytes = reactor.out_keep_bytes;
const tag_session = reactor.tag_session;
const session_events = reactor.session_events;
const kick = reactor.kick;
const rawResult = reactor.rawResult;
const rawErrno = reactor.rawErrno;

pub fn consumeOutbound(r: *Reactor) void {
    for (r.lanes) |*lane| {
        while (lane.outbound.peek()) |record| {
            const header = record.header;
            switch (@as(abi.RecordType, @enumFromInt(header.type))) {
                .send => {
                    const s = r.sessions.get(header.session_id);
                    const websocket = if (s) |found| found.ws.status != .none else false;
                    if (s != null and s.?.proxy_pending) {
                        // (Its PROXY header has not come: a worker that found it by listing
                        // the sessions gets nothing through to it before its connect.)
                        r.count("send_dropped_count", 1);
                    } else if (websocket) {
                        websocket_session.sendRecord(r, header.session_id, @intCast(lane - r.lanes.ptr), header.flags, record.payload);
                    } else r.sendTo(header.session_id, record.payload);
                    if (header.flags & abi.send_flag_response_end != 0) r.responseEnded(header.session_id, header.aux);
                    if (header.flags & abi.send_flag_response_part != 0) r.responseBegun(header.session_id);
                },
                .close_request => r.closeRequested(header.session_id, header.aux),
                .pause_request => r.pauseRequested(header.session_id, header.aux == 1),
                .sendfile_request => r.sendfileRequested(header.session_id, record.payload),
                .drain_request => r.drainRequested(header.session_id, @intCast(lane - r.lanes.ptr)),
                .sendto => r.sendDatagram(header.aux, record.payload),
                .shutdown_ack => lane.shutdown_acked = true,
                .subscribe, .unsubscribe => pubsub.subscriptionRecord(r, header.session_id, record.payload, header.aux & 1 != 0, header.type == @intFromEnum(abi.RecordType.subscribe)),
                .publish => pubsub.publishRecord(r, lane, header.flags, record.payload),
                .websocket_timers => websocket_session.setTimers(r, header.session_id, header.aux),
                .websocket_deflate => websocket_session.deflateAccepted(r, header.session_id),
                .websocket_fail => websocket_session.workerRefused(r, header.session_id, header.aux, record.payload),
                else => std.debug.panic("unexpected outbound record type {d}", .{header.type}),
            }
            lane.outbound.advance(record);
        }
        // Room freed: wake the worker if it waits to send more.
        if (lane.outbound.release()) kick(lane.doorbell_fd);
    }
}

pub fn sendTo(r: *Reactor, session_id: u32, data: []const u8) void {
    const s = r.sessions.get(session_id) orelse {
        r.count("send_dropped_count", 1);
        return;
    };
    if (s.state == .closing) {
        r.count("send_dropped_count", 1);
        return;
    }
    var written: usize = 0;
    if (!s.hasOutput()) {
        written = r.writeSome(s, data) orelse return;
    }
    if (written < data.len) {
        const rest = data[written..];
        s.out.appendSlice(r.allocator, rest) catch {
            log.err("session {d}: out of memory queueing {d} bytes; closing it", .{ s.id, rest.len });
            r.closeSession(s, abi.close_flag_error | abi.close_flag_server, @intFromEnum(posix.E.NOMEM), true);
            return;
        };
        const queued = @atomicRmw(u64, &s.out_queued, .Add, rest.len, .monotonic) + rest.len;
        r.count("send_queued_bytes", rest.len);
        if (!s.want_write) r.armWrite(s, true);
        const high = r.settingsOf(s.listener).high_watermark;
        if (high > 0 and !s.buffer_full and queued >= high) {
            s.buffer_full = true;
            r.bufferEvent(s, .buffer_full);
        }
    }
}

/// `bufferFull` / `bufferEmpty` go where the session's connect and close go (not at all in
/// the dispatch modes that deliver no connect and close).
pub fn bufferEvent(r: *Reactor, s: *Session, record_type: abi.RecordType) void {
    if (!r.deliver_session_events or s.proxy_pending) return;
    _ = r.pushOrQueue(record_type, 0, r.closeLane(s), s.id, 0);
}

/// One send(2); the bytes written, or null when the session was closed by an error.
pub fn writeSome(r: *Reactor, s: *Session, data: []const u8) ?usize {
    while (true) {
        const rc = rawResult(linux.sendto(s.fd, data.ptr, data.len, linux.MSG.NOSIGNAL | linux.MSG.DONTWAIT, null, 0));
        if (rc >= 0) {
            const n: usize = @intCast(rc);
            s.send_bytes += n;
            s.last_send_time_ns = r.now_ns;
            r.tally(s.listener, "total_send_bytes", n);
            return n;
        }
        switch (rawErrno(rc)) {
            .AGAIN => return 0,
            .INTR => continue,
            else => |e| {
                r.closeSession(s, abi.close_flag_error, @intFromEnum(e), true);
                return null;
            },
        }
    }
}

/// `sendfile`: queues the file after what is queued already, and starts writing if
/// nothing is. The file is opened here (in the process that owns the socket).
pub fn sendfileRequested(r: *Reactor, session_id: u32, payload: []const u8) void {
    const s = r.sessions.get(session_id) orelse return r.count("send_dropped_count", 1);
    if (s.state == .closing or payload.len <= 16) return r.count("send_dropped_count", 1);
    const offset = std.mem.readInt(u64, payload[0..8], .little);
    var length = std.mem.readInt(u64, payload[8..16], .little);
    const path = payload[16..];
    var path_buffer: [std.fs.max_path_bytes]u8 = undefined;
    if (path.len >= path_buffer.len) return r.count("send_dropped_count", 1);
    @memcpy(path_buffer[0..path.len], path);
    path_buffer[path.len] = 0;
    const fd = posix.openZ(@ptrCast(&path_buffer), .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0) catch |err| {
        log.warn("session {d}: sendfile cannot open {s}: {s}", .{ s.id, path, @errorName(err) });
        return r.count("send_dropped_count", 1);
    };
    if (length == 0) {
        const stat = posix.fstat(fd) catch {
            posix.close(fd);
            return r.count("send_dropped_count", 1);
        };
        const size: u64 = @intCast(stat.size);
        length = if (size > offset) size - offset else 0;
    }
    r.queueFile(s, fd, offset, length);
}

/// Queues `length` bytes of open file `fd` from `offset` after the session's queued output,
/// and starts writing them; the session owns `fd` from here (closed once sent or dropped).
pub fn queueFile(r: *Reactor, s: *Session, fd: i32, offset: u64, length: u64) void {
    if (length == 0 or s.state == .closing) return posix.close(fd);
    s.files.append(r.allocator, .{ .at = s.out.items.len, .fd = fd, .offset = offset, .left = length }) catch {
        posix.close(fd);
        return r.count("send_dropped_count", 1);
    };
    const queued = @atomicRmw(u64, &s.out_queued, .Add, length, .monotonic) + length;
    r.count("send_queued_bytes", length);
    const high = r.settingsOf(s.listener).high_watermark;
    if (high > 0 and !s.buffer_full and queued >= high) {
        s.buffer_full = true;
        r.bufferEvent(s, .buffer_full);
    }
    r.flushSession(s);
    if (s.isLive() and s.hasOutput() and !s.want_write) r.armWrite(s, true);
}

/// `sendwait`: the worker on `lane` hears once the session's output is written.
pub fn drainRequested(r: *Reactor, session_id: u32, lane: u16) void {
    const s = r.sessions.get(session_id) orelse {
        _ = r.pushOrQueue(.drained, 0, lane, session_id, 0);
        return;
    };
    if (!s.hasOutput()) {
        _ = r.pushOrQueue(.drained, 0, lane, session_id, 1);
        return;
    }
    s.drain_waiters |= @as(u64, 1) << @intCast(lane % 64);
}

/// Tells the lanes waiting on a session's output (`aux` 1: written, 0: the session ended).
pub fn answerDrain(r: *Reactor, s: *Session, written: bool) void {
    var waiters = s.drain_waiters;
    s.drain_waiters = 0;
    while (waiters != 0) {
        const lane: u16 = @intCast(@ctz(waiters));
        waiters &= waiters - 1;
        if (lane < r.lanes.len) _ = r.pushOrQueue(.drained, 0, lane, s.id, @intFromBool(written));
    }
}

/// Output of `n` bytes went out: the counters, and `bufferEmpty` once low enough.
pub fn sent(r: *Reactor, s: *Session, n: usize) void {
    const queued = @atomicRmw(u64, &s.out_queued, .Sub, n, .monotonic) - n;
    r.uncount("send_queued_bytes", n);
    if (s.buffer_full and queued <= r.settingsOf(s.listener).low_watermark) {
        s.buffer_full = false;
        r.bufferEvent(s, .buffer_empty);
    }
}

/// One sendfile(2) of the first queued file: true when it is done, false when the socket
/// is full (or the session was closed by an error).
pub fn sendFile(r: *Reactor, s: *Session) bool {
    const file = &s.files.items[0];
    while (file.left > 0) {
        var offset: i64 = @intCast(file.offset);
        const chunk: usize = @intCast(@min(file.left, 1 << 30));
        const rc = rawResult(linux.sendfile(s.fd, file.fd, &offset, chunk));
        if (rc > 0) {
            const n: usize = @intCast(rc);
            file.offset += n;
            file.left -= n;
            s.send_bytes += n;
            s.last_send_time_ns = r.now_ns;
            r.tally(s.listener, "total_send_bytes", n);
            r.sent(s, n);
            continue;
        }
        if (rc == 0) {
            // The file is shorter than asked for: what is missing will not come. HTTP promised
            // its length: the connection ends (what follows would be read as the body).
            log.warn("session {d}: sendfile: the file ended {d} bytes early", .{ s.id, file.left });
            if (r.protocolOf(s) == .http) {
                r.closeSession(s, abi.close_flag_error, @intFromEnum(posix.E.IO), true);
                return false;
            }
            r.sent(s, @intCast(file.left));
            file.left = 0;
            break;
        }
        switch (rawErrno(rc)) {
            .AGAIN => return false,
            .INTR => continue,
            else => |e| {
                r.closeSession(s, abi.close_flag_error, @intFromEnum(e), true);
                return false;
            },
        }
    }
    posix.close(file.fd);
    _ = s.files.orderedRemove(0);
    return true;
}

pub fn flushSession(r: *Reactor, s: *Session) void {
    while (s.hasOutput()) {
        // Bytes up to the next file (or all of them), then that file.
        const end = if (s.files.items.len > 0) s.files.items[0].at else s.out.items.len;
        if (s.out_sent < end) {
            const n = r.writeSome(s, s.out.items[s.out_sent..end]) orelse return;
            if (n == 0) return;
            s.out_sent += n;
            r.sent(s, n);
            continue;
        }
        if (s.files.items.len > 0) {
            if (!r.sendFile(s)) return;
            continue;
        }
    }
    s.out.clearRetainingCapacity();
    s.out_sent = 0;
    if (s.out.capacity > out_keep_bytes) s.out.clearAndFree(r.allocator);
    if (s.drain_waiters != 0) r.answerDrain(s, true);
    if (s.want_write) r.armWrite(s, false);
    if (s.http.waiting_output) r.httpOutputWritten(s);
    if (s.state == .closing) r.closeSession(s, s.close_flags, @intCast(s.close_errno), false);
}

pub fn armWrite(r: *Reactor, s: *Session, on: bool) void {
    var event: linux.epoll_event = .{
        .events = session_events | (if (on) @as(u32, linux.EPOLL.OUT) else 0),
        .data = .{ .u64 = tag_session | s.id },
    };
    posix.epoll_ctl(r.epoll_fd, linux.EPOLL.CTL_MOD, s.fd, &event) catch |err| {
        std.debug.panic("session {d}: epoll_ctl MOD failed: {s}", .{ s.id, @errorName(err) });
    };
    s.want_write = on;
}

/// `pause` / `resume` / `confirm`: stop or go on reading a session (what came meanwhile
/// waits in the kernel; TCP pushes back on the peer).
pub fn pauseRequested(r: *Reactor, session_id: u32, pause: bool) void {
    const s = r.sessions.get(session_id) orelse return;
    if (s.paused == pause) return;
    s.paused = pause;
    // Edge-triggered: data that came while paused signals nothing more; read it now.
    if (!pause and s.state == .open) r.markReady(s);
}
