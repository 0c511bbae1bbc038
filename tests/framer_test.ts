/**
 * The worker-side framer of `packageLengthFunc`, in this process: the same messages come out
 * wherever the stream is cut, and the function is asked again only when a length is unknown.
 */
import assert from "node:assert/strict";
import { LengthFramer } from "../src/framer.ts";
import { concatBytes } from "../src/bytes.ts";

/** One length byte, then that many bytes. */
const oneByteLength = (data: Uint8Array) => data.length === 0 ? 0 : 1 + data[0];

function frames(): Uint8Array[] {
  return [1, 0x7f, 3, 0xff, 2].map((n, i) => {
    const out = new Uint8Array(1 + n).fill(i + 1);
    out[0] = n;
    return out;
  });
}

Deno.test("packageLengthFunc framer: every cut point of a stream gives the same messages", () => {
  const messages = frames();
  const stream = concatBytes(messages);
  for (let a = 0; a <= stream.length; a++) {
    for (const b of [a, Math.min(stream.length, a + 1), Math.min(stream.length, a + 130)]) {
      const framer = new LengthFramer(oneByteLength, 1024);
      const got: number[][] = [];
      for (const piece of [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]) {
        assert.equal(framer.feed(1, piece, (m) => got.push([...m])), undefined);
      }
      assert.deepEqual(got, messages.map((m) => [...m]), `cut at ${a} and ${b}`);
      assert.equal(framer.held, 0, "nothing is left over");
    }
  }
});

Deno.test("packageLengthFunc framer: a known length is not asked for again; sessions are apart", () => {
  let calls = 0;
  const framer = new LengthFramer((data) => {
    calls++;
    return oneByteLength(data);
  }, 1024);
  const got: [number, number][] = [];
  const big = frames()[3]; // 256 bytes
  for (let i = 0; i < big.length; i++) {
    framer.feed(7, big.subarray(i, i + 1), (m) => got.push([7, m.length]));
    if (i === 0) framer.feed(8, new Uint8Array([2, 9]), (m) => got.push([8, m.length]));
  }
  framer.feed(8, new Uint8Array([9]), (m) => got.push([8, m.length]));
  assert.deepEqual(got, [[7, 256], [8, 3]]);
  assert.equal(calls, 2, "once per session, to learn its length");
});

Deno.test("packageLengthFunc framer: malformed, oversize, never-ending and throwing answers are reasons", () => {
  const cases: [(d: Uint8Array) => number, Uint8Array, RegExp][] = [
    [() => -1, new Uint8Array(4), /malformed message \(it returned -1\)/],
    [() => 5000, new Uint8Array(4), /longer than packageMaxLength \(1024 bytes\)/],
    [() => 0, new Uint8Array(1024), /longer than packageMaxLength/],
    [() => 1.5, new Uint8Array(4), /returned 1\.5, not an integer/],
    [
      () => {
        throw new Error("boom");
      },
      new Uint8Array(4),
      /threw \(boom\)/,
    ],
  ];
  for (const [fn, bytes, reason] of cases) {
    const framer = new LengthFramer(fn, 1024);
    const why = framer.feed(1, bytes, () => assert.fail("no message"));
    assert.match(why ?? "", reason);
    assert.equal(framer.held, 0, "the session's buffer is dropped");
  }
});
