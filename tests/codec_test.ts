/**
 * The codec of task payloads and pipe messages gives what structured clone gives, whichever
 * path (JSON, string, bytes, node:v8) a value takes.
 */
import assert from "node:assert/strict";
import { decode, encode } from "../src/ipc/codec.ts";

class Point {
  constructor(public x: number, public y: number) {}
}

const values: [string, unknown][] = [
  ["a small object", { seq: 1, text: "hello", ok: true, none: null, list: [1, 2.5, "x"] }],
  ["a string", "héllo ✓"],
  ["a string with a lone surrogate", "a\ud800b"],
  ["an object holding a lone surrogate", { s: "\udc00" }],
  ["bytes", new Uint8Array([0, 1, 255])],
  ["numbers JSON cannot carry", [NaN, Infinity, -Infinity, -0]],
  ["an undefined member", { a: undefined, b: 1 }],
  ["an array with a hole", [1, , 3]],
  ["a Map, a Set, a Date, a BigInt", [new Map([["k", 1]]), new Set([2]), new Date(0), 10n ** 20n]],
  ["bytes inside an object", { data: new Uint8Array([9, 8, 7]) }],
  ["a null-prototype object", Object.assign(Object.create(null), { a: 1 })],
  ["a class instance", new Point(1, 2)],
  ["undefined", undefined],
  ["a deep nest", JSON.parse("[".repeat(100) + "]".repeat(100))],
  ["a string that starts with a byte order mark", "\ufeffhello"],
  ["an array with an extra property", Object.assign([1, 2], { foo: 1 })],
];

for (const [name, value] of values) {
  Deno.test(`codec: ${name} comes back as structured clone gives it`, () => {
    assert.deepStrictEqual(decode(encode(value)), structuredClone(value));
  });
}

Deno.test("codec: a cycle survives", () => {
  const a: Record<string, unknown> = { name: "a" };
  a.self = a;
  const back = decode(encode(a)) as Record<string, unknown>;
  assert.equal(back.self, back);
});

Deno.test("codec: an object reached twice stays one object", () => {
  const x = { a: 1 };
  const back = decode(encode([x, x])) as { a: number }[];
  assert.equal(back[0], back[1]);
});

Deno.test("codec: decoded bytes do not share the buffer they were decoded from", () => {
  const message = encode({ d: new Uint8Array([1, 2, 3]) });
  const back = decode(message) as { d: Uint8Array };
  message.fill(0);
  assert.deepEqual([...back.d], [1, 2, 3]);
});
