//! Builds libziggurat (the shared library Deno opens) and runs the core's unit tests.
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    // The published libraries (scripts/dist.ts) go without debug information.
    const strip = b.option(bool, "strip", "Leave out debug information") orelse false;

    const module = b.createModule(.{
        .root_source_file = b.path("src/root.zig"),
        .target = target,
        .optimize = optimize,
        // Deno is a glibc program; std.Thread only uses pthreads (and glibc's TLS) with libc.
        .link_libc = true,
        .strip = strip,
    });
    // LLVM in every mode: Zig 0.15's self-hosted x86_64 backend (the Debug default) truncated a
    // pointer argument to 32 bits in `zg_server_create` and crashed Deno.
    const lib = b.addLibrary(.{ .name = "ziggurat", .linkage = .dynamic, .root_module = module, .use_llvm = true });
    b.installArtifact(lib);

    const test_module = b.createModule(.{
        .root_source_file = b.path("src/root.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    const tests = b.addTest(.{ .root_module = test_module, .use_llvm = true });
    const run_tests = b.addRunArtifact(tests);
    b.step("test", "Run the core's unit tests").dependOn(&run_tests.step);
}
