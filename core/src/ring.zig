//! Single-producer/single-consumer byte ring of variable-length records in shared memory.
//!
//! The control block (`abi.RingControl`) and the data area may live in a region mapped by two
//! processes, and TypeScript reads and writes the same layout with `Atomics`. Each side keeps
//! its own position in a process-local struct and publishes it to the control block: the
//! producer publishes `tail` once per batch, the consumer publishes `head` once per batch.
//! A record never wraps: when it does not fit before the end, a `pad` record fills the rest.
const std = @import("std");
const abi = @import("abi.zig");
const assert = std.debug.assert;

pub const header_size = @sizeOf(abi.RecordHeader);

pub fn recordSize(payload_len: u32) u32 {
    return std.mem.alignForward(u32, header_size + payload_len, abi.record_align);
}

pub const Producer = struct {
    ctl: *abi.RingControl,
    data: []align(abi.record_align) u8,
    /// The next byte to write; published to `ctl.tail` by `publish`.
    tail: u32,
    /// The last head seen; refreshed only when the ring looks full.
    head_seen: u32,

    pub fn init(ctl: *abi.RingControl, data: []align(abi.record_align) u8) Producer {
        assert(std.math.isPowerOfTwo(data.len));
        assert(data.len >= 2 * abi.record_align);
        const tail = @atomicLoad(u32, &ctl.tail, .acquire);
        assert(tail % abi.record_align == 0);
        return .{ .ctl = ctl, .data = data, .tail = tail, .head_seen = @atomicLoad(u32, &ctl.head, .acquire) };
    }

    fn capacity(p: *const Producer) u32 {
        return @intCast(p.data.len);
    }

    fn free(p: *Producer) u32 {
        const used = p.tail -% p.head_seen;
        assert(used <= p.capacity());
        return p.capacity() - used;
    }

    /// The largest payload one record can carry: half the ring, so a pad never blocks it.
    pub fn maxPayload(p: *const Producer) u32 {
        return p.capacity() / 2 - header_size;
    }

    /// Room for a record of up to `payload_max` bytes, contiguous, or null when the ring is too
    /// full. Writes a pad record when the record would cross the end of the data area. The
    /// returned slice is the payload area; `commit` then writes the header.
    pub fn reserve(p: *Producer, payload_max: u32) ?[]u8 {
        assert(payload_max <= p.maxPayload());
        const need = recordSize(payload_max);
        var attempts: u32 = 0;
        while (attempts < 2) : (attempts += 1) {
            const index = p.tail & (p.capacity() - 1);
            const to_end = p.capacity() - index;
            const wanted = if (to_end >= need) need else to_end + need;
            if (p.free() < wanted) {
                p.head_seen = @atomicLoad(u32, &p.ctl.head, .acquire);
                if (p.free() < wanted) return null;
            }
            if (to_end < need) {
                const pad = p.headerAt(index);
                pad.* = .{ .len = to_end - header_size, .type = @intFromEnum(abi.RecordType.pad), .flags = 0, .reactor_id = 0, .session_id = 0, .aux = 0 };
                p.tail +%= to_end;
                continue;
            }
            return p.data[index + header_size ..][0..payload_max];
        }
        unreachable;
    }

    /// Writes the header of the record whose payload `reserve` returned, with `len` bytes used.
    pub fn commit(p: *Producer, record_type: abi.RecordType, flags: u8, reactor_id: i16, session_id: u32, aux: u32, len: u32) void {
        const index = p.tail & (p.capacity() - 1);
        assert(p.capacity() - index >= recordSize(len));
        assert(p.free() >= recordSize(len));
        p.headerAt(index).* = .{ .len = len, .type = @intFromEnum(record_type), .flags = flags, .reactor_id = reactor_id, .session_id = session_id, .aux = aux };
        p.tail +%= recordSize(len);
    }

    /// Reserve and commit a record in one step; false when there is no room.
    pub fn push(p: *Producer, record_type: abi.RecordType, flags: u8, reactor_id: i16, session_id: u32, aux: u32, payload: []const u8) bool {
        const room = p.reserve(@intCast(payload.len)) orelse return false;
        @memcpy(room[0..payload.len], payload);
        p.commit(record_type, flags, reactor_id, session_id, aux, @intCast(payload.len));
        return true;
    }

    /// Whether the consumer has taken every record written so far.
    pub fn isDrained(p: *Producer) bool {
        return p.backlog() == 0;
    }

    /// Bytes written (published or not) that the consumer has not let go of yet.
    pub fn backlog(p: *Producer) u32 {
        return p.tail -% @atomicLoad(u32, &p.ctl.head, .acquire);
    }

    /// Makes every committed record visible. Returns true when the consumer was parked and must
    /// be woken (the flag is cleared here, so exactly one publisher rings the doorbell).
    pub fn publish(p: *Producer) bool {
        if (@atomicLoad(u32, &p.ctl.tail, .monotonic) == p.tail) return false;
        // seq_cst store then seq_cst load: pairs with the consumer's store of consumer_parked
        // followed by its load of tail, so one of the two always sees the other.
        @atomicStore(u32, &p.ctl.tail, p.tail, .seq_cst);
        return takeFlag(&p.ctl.consumer_parked);
    }

    /// Marks the producer as waiting for room, then re-checks. True when it must sleep until the
    /// consumer wakes it; false when room appeared meanwhile (the flag is cleared again).
    pub fn prepareWait(p: *Producer, payload_max: u32) bool {
        @atomicStore(u32, &p.ctl.producer_waiting, 1, .seq_cst);
        if (p.reserveCheck(payload_max)) {
            @atomicStore(u32, &p.ctl.producer_waiting, 0, .seq_cst);
            return false;
        }
        return true;
    }

    fn reserveCheck(p: *Producer, payload_max: u32) bool {
        p.head_seen = @atomicLoad(u32, &p.ctl.head, .seq_cst);
        const index = p.tail & (p.capacity() - 1);
        const to_end = p.capacity() - index;
        const need = recordSize(payload_max);
        return p.free() >= (if (to_end >= need) need else to_end + need);
    }

    fn headerAt(p: *Producer, index: u32) *abi.RecordHeader {
        return @ptrCast(@alignCast(&p.data[index]));
    }
};

pub const Consumer = struct {
    ctl: *abi.RingControl,
    data: []align(abi.record_align) u8,
    /// The next byte to read; published to `ctl.head` by `release`.
    head: u32,
    /// The last tail seen.
    tail_seen: u32,

    pub fn init(ctl: *abi.RingControl, data: []align(abi.record_align) u8) Consumer {
        assert(std.math.isPowerOfTwo(data.len));
        const head = @atomicLoad(u32, &ctl.head, .acquire);
        assert(head % abi.record_align == 0);
        return .{ .ctl = ctl, .data = data, .head = head, .tail_seen = head };
    }

    /// The next record and its payload, skipping pads, or null when the ring is empty.
    pub fn peek(c: *Consumer) ?Record {
        while (true) {
            if (c.head == c.tail_seen) {
                c.tail_seen = @atomicLoad(u32, &c.ctl.tail, .acquire);
                if (c.head == c.tail_seen) return null;
            }
            assert(c.tail_seen -% c.head <= c.data.len);
            const index = c.head & @as(u32, @intCast(c.data.len - 1));
            const header: *const abi.RecordHeader = @ptrCast(@alignCast(&c.data[index]));
            const size = recordSize(header.len);
            assert(index + size <= c.data.len);
            assert(c.tail_seen -% c.head >= size);
            if (header.type == @intFromEnum(abi.RecordType.pad)) {
                assert(index + size == c.data.len);
                c.head +%= size;
                continue;
            }
            return .{ .header = header.*, .payload = c.data[index + header_size ..][0..header.len] };
        }
    }

    /// Consumes the record `peek` returned.
    pub fn advance(c: *Consumer, record: Record) void {
        c.head +%= recordSize(record.header.len);
        assert(c.tail_seen -% c.head <= c.data.len);
    }

    /// Publishes the consumed position. Returns true when the producer was waiting for room and
    /// must be woken (the flag is cleared here).
    pub fn release(c: *Consumer) bool {
        if (@atomicLoad(u32, &c.ctl.head, .monotonic) == c.head) return false;
        @atomicStore(u32, &c.ctl.head, c.head, .seq_cst);
        return takeFlag(&c.ctl.producer_waiting);
    }

    /// Marks the consumer parked, then re-checks. True when it must sleep until the producer
    /// wakes it; false when records arrived meanwhile (the flag is cleared again).
    pub fn prepareParking(c: *Consumer) bool {
        @atomicStore(u32, &c.ctl.consumer_parked, 1, .seq_cst);
        if (@atomicLoad(u32, &c.ctl.tail, .seq_cst) != c.head) {
            @atomicStore(u32, &c.ctl.consumer_parked, 0, .seq_cst);
            return false;
        }
        return true;
    }

    /// Clears the parked flag after a wake-up (or a timeout).
    pub fn unpark(c: *Consumer) void {
        @atomicStore(u32, &c.ctl.consumer_parked, 0, .seq_cst);
    }
};

pub const Record = struct {
    header: abi.RecordHeader,
    payload: []u8,
};

/// Clears a 1 flag; true when this call cleared it (the caller owns the wake-up).
fn takeFlag(flag: *u32) bool {
    if (@atomicLoad(u32, flag, .seq_cst) == 0) return false;
    return @cmpxchgStrong(u32, flag, 1, 0, .seq_cst, .seq_cst) == null;
}

// ---------------------------------------------------------------------------------------------

const testing = std.testing;

const TestRing = struct {
    ctl: abi.RingControl = .{ .tail = 0, .producer_waiting = 0, .head = 0, .consumer_parked = 0 },
    data: [256]u8 align(abi.record_align) = undefined,
};

test "ring: records come out in order and wrap at capacity with a pad" {
    var r: TestRing = .{};
    var p = Producer.init(&r.ctl, &r.data);
    var c = Consumer.init(&r.ctl, &r.data);
    var sent: u32 = 0;
    var received: u32 = 0;
    // 40-byte payloads make 64-byte records with 48 bytes of header+payload: four fit, and the
    // ring wraps every few records with pads of various sizes as lengths vary.
    while (received < 200) {
        var payload: [100]u8 = undefined;
        const len: u32 = 1 + sent % 90;
        @memset(payload[0..len], @truncate(sent));
        if (sent < 200 and p.push(.receive, 0, 0, sent, len, payload[0..len])) {
            sent += 1;
            _ = p.publish();
            continue;
        }
        const record = c.peek() orelse unreachable;
        try testing.expectEqual(received, record.header.session_id);
        try testing.expectEqual(record.header.aux, record.payload.len);
        for (record.payload) |b| try testing.expectEqual(@as(u8, @truncate(received)), b);
        c.advance(record);
        _ = c.release();
        received += 1;
    }
    try testing.expect(c.peek() == null);
}

test "ring: a full ring refuses, sets nothing, and accepts again after release" {
    var r: TestRing = .{};
    var p = Producer.init(&r.ctl, &r.data);
    var c = Consumer.init(&r.ctl, &r.data);
    const payload = [_]u8{7} ** 48; // 64-byte records: exactly four fill 256 bytes
    for (0..4) |i| try testing.expect(p.push(.receive, 0, 0, @intCast(i), 0, &payload));
    try testing.expect(!p.push(.receive, 0, 0, 9, 0, &payload));
    try testing.expect(p.prepareWait(48));
    _ = p.publish();
    const record = c.peek().?;
    try testing.expectEqual(@as(u32, 0), record.header.session_id);
    c.advance(record);
    try testing.expect(c.release()); // the producer was waiting: the consumer must wake it
    try testing.expectEqual(@as(u32, 0), r.ctl.producer_waiting);
    try testing.expect(p.push(.receive, 0, 0, 4, 0, &payload));
    try testing.expect(!c.release()); // nothing new consumed: no second wake-up
}

test "ring: parking re-checks, so a publish between flag and sleep is never lost" {
    var r: TestRing = .{};
    var p = Producer.init(&r.ctl, &r.data);
    var c = Consumer.init(&r.ctl, &r.data);
    try testing.expect(c.prepareParking());
    try testing.expect(p.push(.connect, 0, 0, 1, 0, ""));
    try testing.expect(p.publish()); // the consumer was parked: wake it
    try testing.expect(!p.publish()); // nothing new: no second wake-up
    c.unpark();
    try testing.expect(p.push(.connect, 0, 0, 2, 0, ""));
    _ = p.publish();
    try testing.expect(!c.prepareParking()); // records are waiting: do not sleep
    try testing.expectEqual(@as(u32, 0), r.ctl.consumer_parked);
}

test "ring: park and wake race between two threads loses no record and no wake-up" {
    const Shared = struct {
        ring: TestRing = .{},
        doorbell: std.Thread.ResetEvent = .{},
        space: std.Thread.ResetEvent = .{},
        const count: u32 = 200_000;

        fn produce(s: *@This()) void {
            var p = Producer.init(&s.ring.ctl, &s.ring.data);
            var i: u32 = 0;
            while (i < count) {
                var payload: [4]u8 = undefined;
                std.mem.writeInt(u32, &payload, i, .little);
                if (p.push(.receive, 0, 0, i, 0, &payload)) {
                    i += 1;
                    if (i % 3 == 0 or i == count) {
                        if (p.publish()) s.doorbell.set();
                    }
                    continue;
                }
                if (p.publish()) s.doorbell.set();
                if (p.prepareWait(4)) {
                    s.space.timedWait(5 * std.time.ns_per_s) catch @panic("producer never woken");
                    s.space.reset();
                }
            }
        }
    };
    var s: Shared = .{};
    const thread = try std.Thread.spawn(.{}, Shared.produce, .{&s});
    var c = Consumer.init(&s.ring.ctl, &s.ring.data);
    var expected: u32 = 0;
    while (expected < Shared.count) {
        if (c.peek()) |record| {
            try testing.expectEqual(expected, record.header.session_id);
            try testing.expectEqual(expected, std.mem.readInt(u32, record.payload[0..4], .little));
            c.advance(record);
            expected += 1;
            if (expected % 5 == 0) {
                if (c.release()) s.space.set();
            }
            continue;
        }
        if (c.release()) s.space.set();
        if (c.prepareParking()) {
            try s.doorbell.timedWait(5 * std.time.ns_per_s);
            s.doorbell.reset();
            c.unpark();
        }
    }
    if (c.release()) s.space.set();
    thread.join();
}

test "ring: seeded fuzz of record sizes, batch sizes and wrap points keeps every byte in order" {
    const seed: u64 = 0x5a1667;
    var prng = std.Random.DefaultPrng.init(seed);
    const random = prng.random();
    const capacity = 4096;
    var ctl: abi.RingControl = .{ .tail = 0, .producer_waiting = 0, .head = 0, .consumer_parked = 0 };
    // Start 1 KiB before the u32 positions wrap (positions are always multiples of 16).
    ctl.tail = std.math.maxInt(u32) - 1023;
    ctl.head = ctl.tail;
    var data: [capacity]u8 align(abi.record_align) = undefined;
    var p = Producer.init(&ctl, &data);
    var c = Consumer.init(&ctl, &data);
    var next_sent: u32 = 0;
    var next_received: u32 = 0;
    var payload: [capacity / 2]u8 = undefined;
    for (0..20_000) |_| {
        // Produce a random burst, publish; consume a random burst, release.
        const burst = random.uintLessThan(u32, 8);
        for (0..burst) |_| {
            const len = random.uintLessThan(u32, p.maxPayload() + 1);
            for (payload[0..len], 0..) |*b, i| b.* = @truncate(next_sent *% 31 +% @as(u32, @intCast(i)));
            if (!p.push(.receive, 0, 0, next_sent, len, payload[0..len])) break;
            next_sent += 1;
        }
        _ = p.publish();
        const take = random.uintLessThan(u32, 8);
        for (0..take) |_| {
            const record = c.peek() orelse break;
            try testing.expectEqual(next_received, record.header.session_id);
            try testing.expectEqual(record.header.aux, @as(u32, @intCast(record.payload.len)));
            for (record.payload, 0..) |b, i| {
                try testing.expectEqual(@as(u8, @truncate(next_received *% 31 +% @as(u32, @intCast(i)))), b);
            }
            c.advance(record);
            next_received += 1;
        }
        _ = c.release();
    }
    try testing.expect(next_received > 10_000);
}
