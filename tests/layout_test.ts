/**
 * The TypeScript mirror of the core's shared structs matches the library it loads.
 */
import assert from "node:assert/strict";
import {
  clientInfo,
  framingConfig,
  httpHeader,
  httpHeaderSize,
  httpRequest,
  httpRequestSize,
  layout,
  portsMax,
  portStatsFields,
  published,
  RecordType,
  serverConfig,
  statsFields,
  workerSlot,
} from "../src/_ffi/layout.ts";
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

/** The core's own table of struct fields and enum values (`abi.describe`). */
function described(): Map<string, { size?: number; entries: Map<string, number> }> {
  const out = new Uint8Array(64 * 1024);
  const n = Number(library().zg_describe(out, BigInt(out.length)));
  assert.ok(n > 0, "zg_describe fits");
  const table = new Map<string, { size?: number; entries: Map<string, number> }>();
  let current: { size?: number; entries: Map<string, number> } | undefined;
  for (const line of new TextDecoder().decode(out.subarray(0, n)).trim().split("\n")) {
    const [kind, name, value] = line.split(" ");
    if (kind === "struct" || kind === "enum") {
      current = { size: value === undefined ? undefined : Number(value), entries: new Map() };
      table.set(name, current);
    } else {
      current!.entries.set(name, Number(value));
    }
  }
  return table;
}

const camel = (snake: string) => snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Every name on both sides, with the same offset or value. */
function sameEntries(core: Map<string, number>, mine: Record<string, number>, what: string) {
  const theirs = Object.fromEntries([...core].map(([name, v]) => [camel(name), v]));
  assert.deepEqual(mine, theirs, `${what}: every field or value by name`);
}

Deno.test("every field TypeScript writes or reads by name, and every record type, matches the core's table", () => {
  const table = described();
  sameEntries(table.get("ServerConfig")!.entries, serverConfig, "abi.ServerConfig");
  assert.equal(table.get("ServerConfig")!.size, layout.serverConfigSize);
  sameEntries(table.get("FramingConfig")!.entries, framingConfig, "abi.FramingConfig");
  assert.equal(table.get("FramingConfig")!.size, layout.framingConfigSize);
  sameEntries(table.get("ClientInfo")!.entries, clientInfo, "abi.ClientInfo");
  assert.equal(table.get("ClientInfo")!.size, layout.clientInfoSize);
  sameEntries(table.get("WorkerSlot")!.entries, workerSlot, "abi.WorkerSlot");
  assert.equal(table.get("WorkerSlot")!.size, layout.workerSlotSize);
  sameEntries(table.get("Published")!.entries, published, "abi.Published");
  // The counters are read by position: their names in order are the core's.
  const stats = Object.fromEntries(statsFields.map((name, i) => [name, i * 8]));
  sameEntries(table.get("Stats")!.entries, { ...stats, ports: layout.statsPorts }, "abi.Stats");
  const ports = Object.fromEntries(portStatsFields.map((name, i) => [name, i * 8]));
  sameEntries(table.get("PortStats")!.entries, ports, "abi.PortStats");
  sameEntries(table.get("RecordType")!.entries, { ...RecordType }, "abi.RecordType");
  sameEntries(table.get("HttpRequest")!.entries, httpRequest, "abi.HttpRequest");
  assert.equal(table.get("HttpRequest")!.size, httpRequestSize);
  sameEntries(table.get("HttpHeader")!.entries, httpHeader, "abi.HttpHeader");
  assert.equal(table.get("HttpHeader")!.size, httpHeaderSize);
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
