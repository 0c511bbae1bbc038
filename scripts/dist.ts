/**
 * The libraries a published module loads: libziggurat for each supported target (Linux only:
 * the core is epoll's), built stripped for a baseline CPU and glibc 2.34, into
 * dist/<target>/libziggurat.so, with dist/checksums.json holding each one's SHA-256 (the
 * loader refuses a library that does not match, src/_ffi/remote_library.ts). Run before
 * `deno publish`: `deno task dist`.
 * @module
 */

import { targets } from "../src/_ffi/targets.ts";

const root = new URL("../", import.meta.url).pathname;
const zig = `${root}scripts/zig`;
const checksums: Record<string, string> = {};
for (const [name, triple] of Object.entries(targets)) {
  const prefix = `${root}dist/${name}`;
  const build = await new Deno.Command(zig, {
    args: [
      ...["build", "--build-file", `${root}core/build.zig`, "-Doptimize=ReleaseFast"],
      ...["-Dstrip=true", `-Dtarget=${triple}`, "--prefix", prefix, "--prefix-lib-dir", "."],
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!build.success) throw new Error(`building the core for ${name} failed`);
  const bytes = await Deno.readFile(`${prefix}/libziggurat.so`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  checksums[name] = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  console.log(`dist/${name}/libziggurat.so  ${bytes.length} bytes  sha256 ${checksums[name]}`);
}
await Deno.writeTextFile(`${root}dist/checksums.json`, JSON.stringify(checksums, null, 2) + "\n");
