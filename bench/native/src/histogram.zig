//! A fixed-size log-linear latency histogram (the HDR histogram idea, simplified).
//!
//! Values below 2^sub_bits are counted exactly; above that every power-of-two range is split
//! into 2^(sub_bits-1) equal buckets, so a bucket is at most 1/64 of its value wide and a
//! reported percentile (the bucket midpoint) is within about 0.8% of the true value. Recording
//! is a few integer instructions and never allocates, which matters on the load generator's
//! hot path.
const std = @import("std");

const sub_bits = 7;
const exact_limit: u64 = 1 << sub_bits; // 128: values below are their own bucket
const sub_count: u64 = 1 << (sub_bits - 1); // 64 buckets per power of two above that
pub const bucket_count = exact_limit + (64 - sub_bits) * sub_count;

pub const Histogram = struct {
    counts: [bucket_count]u64 = [_]u64{0} ** bucket_count,
    total: u64 = 0,

    pub fn record(h: *Histogram, value: u64) void {
        h.counts[bucketOf(value)] += 1;
        h.total += 1;
    }

    /// The value at quantile `q` (0..1], as the midpoint of its bucket; 0 when empty.
    pub fn percentile(h: *const Histogram, q: f64) u64 {
        if (h.total == 0) return 0;
        const wanted_f = @ceil(q * @as(f64, @floatFromInt(h.total)));
        const wanted: u64 = std.math.clamp(@as(u64, @intFromFloat(wanted_f)), 1, h.total);
        var seen: u64 = 0;
        for (h.counts, 0..) |count, index| {
            seen += count;
            if (seen >= wanted) return midpointOf(index);
        }
        unreachable;
    }
};

fn bucketOf(value: u64) usize {
    if (value < exact_limit) return @intCast(value);
    const msb: u64 = 63 - @clz(value); // >= sub_bits
    const shift: u6 = @intCast(msb - (sub_bits - 1));
    const top = value >> shift; // in [sub_count, 2 * sub_count)
    return @intCast(exact_limit + (msb - sub_bits) * sub_count + (top - sub_count));
}

fn midpointOf(index: usize) u64 {
    if (index < exact_limit) return index;
    const i = index - exact_limit;
    const shift: u6 = @intCast(i / sub_count + 1);
    const low = (sub_count + i % sub_count) << shift;
    return low + (@as(u64, 1) << shift) / 2;
}

test "small values are exact" {
    var h: Histogram = .{};
    for (1..101) |v| h.record(v);
    try std.testing.expectEqual(@as(u64, 50), h.percentile(0.5));
    try std.testing.expectEqual(@as(u64, 99), h.percentile(0.99));
    try std.testing.expectEqual(@as(u64, 100), h.percentile(1.0));
}

test "large values are within 1%" {
    var h: Histogram = .{};
    // 1..100_000 µs in ns: p50 = 50 ms, p99 = 99 ms.
    var v: u64 = 1000;
    while (v <= 100_000_000) : (v += 1000) h.record(v);
    const p50: f64 = @floatFromInt(h.percentile(0.5));
    const p99: f64 = @floatFromInt(h.percentile(0.99));
    try std.testing.expectApproxEqRel(@as(f64, 50_000_000), p50, 0.01);
    try std.testing.expectApproxEqRel(@as(f64, 99_000_000), p99, 0.01);
}

test "every bucket maps back into itself" {
    var index: usize = 0;
    while (index < bucket_count) : (index += 1) {
        try std.testing.expectEqual(index, bucketOf(midpointOf(index)));
    }
    try std.testing.expectEqual(@as(usize, bucket_count - 1), bucketOf(std.math.maxInt(u64)));
    var h: Histogram = .{};
    h.record(0);
    h.record(std.math.maxInt(u64));
    try std.testing.expectEqual(@as(u64, 0), h.percentile(0.5));
}
