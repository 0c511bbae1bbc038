/** The benchmark's load generators (bench/native), for tests that need load: built on first use. */
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url).pathname;
/** echo_load: TCP echo load, every byte checked (bench/native/src/echo_load.zig). */
export const echoLoad = `${root}bench/native/zig-out/bin/echo_load`;

let built: Promise<void> | undefined;

/** Builds bench/native once per test process (Zig's cache makes an unchanged build quick). */
export function buildLoadGenerators(): Promise<void> {
  built ??= (async () => {
    const out = await new Deno.Command(`${root}scripts/zig`, {
      args: ["build", "--build-file", `${root}bench/native/build.zig`, "-Doptimize=ReleaseFast"],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    assert.ok(out.success, "building bench/native");
  })();
  return built;
}
