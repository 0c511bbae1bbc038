//! PROCESS mode: what a dead worker had in its hands. A worker takes one inbound record at a
//! time (`consumer_claim` = its end), handles it, publishes what it sent, and only then moves
//! `head` past it; so when it dies, `[head, consumer_claim)` of its inbound ring holds the
//! record it had not finished. The master takes that range over before it spawns the
//! successor, and the reactor thread closes the records' sessions instead of delivering them
//! again: a record that crashed its worker cannot crash the successor too, and what a callback
//! half did is not done twice.
const std = @import("std");
const abi = @import("abi.zig");
const ring = @import("ring.zig");
const log = std.log.scoped(.reactor);

/// The sessions noted; written by the master's JS thread, taken by the reactor's thread. One
/// record is in hand at a time, so a few places are plenty.
pub const Orphans = struct {
    mutex: std.Thread.Mutex = .{},
    ids: [4]u32 = @splat(0),
    len: u32 = 0,

    /// The consumer of `inbound` is gone and nobody has replaced it yet: notes the sessions of
    /// the records it had taken but not finished, and lets go of those records (`head` moves to
    /// the claim, so the successor starts after them).
    pub fn takeOver(o: *Orphans, inbound: *const ring.Producer) void {
        const ctl = inbound.ctl;
        const data = inbound.data;
        const head = @atomicLoad(u32, &ctl.head, .acquire);
        const claim = @atomicLoad(u32, &ctl.consumer_claim, .acquire);
        const in_hand = claim -% head;
        // A claim behind the head (a consumer that never took one) or off the record grid is
        // no claim: nothing was in hand.
        if (in_hand == 0 or in_hand > data.len or in_hand % abi.record_align != 0) return;
        var pos = head;
        while (pos != claim) {
            const index = pos & @as(u32, @intCast(data.len - 1));
            const header: *const abi.RecordHeader = @ptrCast(@alignCast(&data[index]));
            const size = ring.recordSize(header.len);
            if (size > claim -% pos or index + size > data.len) break;
            switch (@as(abi.RecordType, @enumFromInt(header.type))) {
                .connect, .receive, .close => if (header.session_id != 0) o.add(header.session_id),
                else => {},
            }
            pos +%= size;
        }
        @atomicStore(u32, &ctl.head, claim, .release);
    }

    fn add(o: *Orphans, session_id: u32) void {
        o.mutex.lock();
        defer o.mutex.unlock();
        for (o.ids[0..o.len]) |id| if (id == session_id) return;
        if (o.len == o.ids.len) return log.warn("session {d}: its worker died while handling it, but too many were in its hands to close them all", .{session_id});
        o.ids[o.len] = session_id;
        o.len += 1;
    }

    /// Takes every noted id (into `out`), leaving none.
    pub fn take(o: *Orphans, out: *[4]u32) []const u32 {
        o.mutex.lock();
        defer o.mutex.unlock();
        const n = o.len;
        out.* = o.ids;
        o.len = 0;
        return out[0..n];
    }
};

test "orphans: the record between head and claim is noted and let go of; none when they meet" {
    var ctl: abi.RingControl = .{ .tail = 0, .producer_waiting = 0, .head = 0, .consumer_parked = 0 };
    var data: [512]u8 align(abi.record_align) = undefined;
    var p = ring.Producer.init(&ctl, &data);
    try std.testing.expect(p.push(.receive, 0, 0, 7, 0, "done"));
    try std.testing.expect(p.push(.receive, 0, 0, 9, 0, "in hand"));
    try std.testing.expect(p.push(.receive, 0, 0, 11, 0, "not taken"));
    _ = p.publish();
    // The consumer finished the first record and had taken the second.
    ctl.head = ring.recordSize(4);
    ctl.consumer_claim = ctl.head + ring.recordSize(7);
    var o: Orphans = .{};
    o.takeOver(&p);
    var ids: [4]u32 = undefined;
    try std.testing.expectEqualSlices(u32, &.{9}, o.take(&ids));
    try std.testing.expectEqual(ctl.consumer_claim, ctl.head);
    // Nothing in hand (head at the claim), or a claim that was never set (behind the head).
    o.takeOver(&p);
    ctl.consumer_claim = 0;
    o.takeOver(&p);
    try std.testing.expectEqual(@as(usize, 0), o.take(&ids).len);
    try std.testing.expectEqual(ring.recordSize(4) + ring.recordSize(7), ctl.head);
}
