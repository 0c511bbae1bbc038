/**
 * The TypeScript mirror of the core's shared structs matches the library it loads.
 */
import assert from "node:assert/strict";
import { layout, portsMax, portStatsFields, statsFields } from "../src/_ffi/layout.ts";
import { library, nativeLayout } from "../src/_ffi/library.ts";

Deno.test("every struct offset and size in layout.ts equals the core's", () => {
  const native = nativeLayout(library());
  const names = Object.keys(layout);
  assert.equal(native.length, names.length, "zg_layout reports as many numbers as layout.ts has");
  names.forEach((name, i) => {
    assert.equal(native[i], (layout as Record<string, number>)[name], `layout.${name}`);
  });
  assert.equal(
    layout.statsPorts,
    statsFields.length * 8,
    "statsFields names every u64 of abi.Stats before its ports",
  );
  assert.equal(layout.portStatsSize, portStatsFields.length * 8, "portStatsFields: every u64");
  assert.equal(layout.statsSize, layout.statsPorts + portsMax * layout.portStatsSize);
});

Deno.test("the loader names the path and how to build when the library is missing", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { library } from "${new URL("../src/_ffi/library.ts", import.meta.url)}"; library();`,
    ],
    env: { ZIGGURAT_LIB: "/nonexistent/libziggurat.so" },
    stderr: "piped",
    stdout: "null",
  });
  const { code, stderr } = await child.output();
  assert.notEqual(code, 0);
  const text = new TextDecoder().decode(stderr);
  assert.match(text, /Cannot load the Ziggurat core from "\/nonexistent\/libziggurat.so"/);
  assert.match(text, /deno task build/);
});
