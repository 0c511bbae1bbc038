//! PROCESS mode: an event worker that is not running (not started yet, or gone). Its sockets
//! stay with the reactor threads; the record it had in hand is let go of and that session
//! closed (orphans.zig), and sessions waiting for its answer to a close do not wait forever.
const std = @import("std");
const pubsub = @import("pubsub.zig");
const abi = @import("abi.zig");
const reactor = @import("reactor.zig");
const Reactor = reactor.Reactor;
const log = std.log.scoped(.reactor);
const kick = reactor.kick;

/// PROCESS mode, from the master's JS thread once worker `lane` is gone and before its
/// successor is spawned (so nobody else consumes its inbound ring): the record it had in
/// hand is let go of and its session noted for this reactor's thread to close
/// (orphans.zig).
pub fn workerExited(r: *Reactor, lane_index: u16) void {
    const lane = &r.lanes[lane_index];
    lane.orphans.takeOver(&lane.inbound);
    @atomicStore(u32, &lane.worker_exited, 1, .release);
    kick(r.kick_fd);
}

/// Sessions past the peer's EOF wait for their worker's answer to the close before the
/// socket closes. A worker that died may have taken the close record with it: close those
/// sessions here rather than hold them (and a `max_connection` place) forever.
///
/// With `max_queued_bytes`, the dead worker's unhandled bytes will never be subtracted: every
/// session's count starts again from 0 (in the round-robin modes any worker may hold some of
/// any session's bytes), so none stays held for good. The successor's subtractions for what
/// is left in the ring take counts below 0 for a while, which only lets those sessions read
/// a little more.
///
/// The sessions of the records the dead worker had in hand (see `workerExited`) close
/// gracefully: what it sent before is written first (its last sends are consumed here
/// first), then FIN, and the close event goes where close events go.
pub fn closeOrphans(r: *Reactor) void {
    for (r.lanes, 0..) |*lane, i| {
        if (@atomicLoad(u32, &lane.worker_exited, .acquire) == 0) continue;
        @atomicStore(u32, &lane.worker_exited, 0, .release);
        r.consumeOutbound();
        // HTTP: the requests it had taken will get no answer (503 or the end of the connection).
        r.httpWorkerDied(@intCast(i));
        // WebSocket: a message it left unfinished, a publish it left half-sent.
        pubsub.workerDied(r, @intCast(i));
        var ids: [4]u32 = undefined;
        for (lane.orphans.take(&ids)) |id| {
            const s = r.sessions.get(id) orelse continue;
            if (s.state != .open) continue;
            if (s.ws.status == .active) {
                // A WebSocket's messages stand alone: the one in the dead worker's hands is lost,
                // the connection stays.
                log.warn("session {d}: worker {d} died while handling a WebSocket message of it; that message is lost", .{ id, i });
                continue;
            }
            log.warn("session {d}: worker {d} died while handling it; closing it", .{ id, i });
            r.closeRequested(id, 0);
        }
        for (r.sessions.slots) |*s| {
            if (s.state == .peer_closed and s.close_notified and r.closeLane(s) == i) {
                r.closeSession(s, abi.close_flag_server, 0, false);
            }
            if (r.max_queued > 0 and s.state != .free) @atomicStore(i64, &s.recv_queued, 0, .monotonic);
        }
        if (r.held.items.len > 0) r.held_check_ns = 0;
    }
}

/// PROCESS mode: the lane's worker is not running (not started yet, or gone: the master
/// clears the pid of a worker that exited; one that drains is exited with its pid).
pub fn workerGone(r: *const Reactor, lane: u16) bool {
    const a = r.attach orelse return false;
    const status = @atomicLoad(u32, &a.workers[lane].status, .monotonic);
    return status == 0 or @atomicLoad(i32, &a.workers[lane].pid, .monotonic) == 0;
}
