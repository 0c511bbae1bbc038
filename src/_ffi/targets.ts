/**
 * The targets the published module carries a core for (scripts/dist.ts builds them): Linux
 * only, as the core is built on epoll. Named as `Deno.build` names them, each with its Zig
 * target (glibc 2.34: `posix_spawn_file_actions_addclosefrom_np`).
 * @module
 */

/** Target name (`<arch>-linux`) to Zig target triple. */
export const targets: Record<string, string> = {
  "x86_64-linux": "x86_64-linux-gnu.2.34",
  "aarch64-linux": "aarch64-linux-gnu.2.34",
};

/** This machine's target name. */
export function hostTarget(): string {
  return `${Deno.build.arch}-${Deno.build.os}`;
}
