//! Builds the benchmark's native tools: `echo_load` (the load generator), `echo_native` (the
//! plain epoll baseline server) and `ws_load` (the WebSocket load generator).
//!
//!   scripts/zig build --build-file bench/native/build.zig -Doptimize=ReleaseFast
//!   scripts/zig build --build-file bench/native/build.zig test
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});

    for ([_][]const u8{ "echo_load", "echo_native", "ws_load" }) |name| {
        const exe = b.addExecutable(.{
            .name = name,
            .root_module = b.createModule(.{
                .root_source_file = b.path(b.fmt("src/{s}.zig", .{name})),
                .target = target,
                .optimize = optimize,
                .link_libc = true,
            }),
        });
        b.installArtifact(exe);
    }

    const tests = b.addTest(.{
        .root_module = b.createModule(.{
            .root_source_file = b.path("src/histogram.zig"),
            .target = target,
            .optimize = optimize,
        }),
    });
    b.step("test", "Run the benchmark tools' unit tests").dependOn(&b.addRunArtifact(tests).step);
}
