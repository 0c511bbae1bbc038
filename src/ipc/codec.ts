/**
 * How task payloads, results and pipe messages cross processes: structured-clone semantics,
 * with fast paths for the common cases. `node:v8` serialize + deserialize costs about 11 µs for a
 * small object here, JSON about 2.7 µs, so values that JSON carries exactly (plain objects and
 * arrays of strings, finite numbers, booleans and null) go as JSON, strings and byte arrays as
 * they are, and everything else (Map, Set, Date, BigInt, typed arrays inside objects, undefined
 * members, cycles, …) through `node:v8`.
 * @module
 */

import { deserialize, serialize } from "node:v8";

const Tag = { v8: 0, json: 1, bytes: 2, string: 3 } as const;

const encoder = new TextEncoder();
// (ignoreBOM: a string that starts with U+FEFF keeps it, as structured clone does.)
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** The bytes that `decode` turns back into a structured clone of `value`. */
export function encode(value: unknown): Uint8Array {
  if (value instanceof Uint8Array && value.constructor === Uint8Array) {
    const out = new Uint8Array(value.length + 1);
    out[0] = Tag.bytes;
    out.set(value, 1);
    return out;
  }
  // (UTF-8 cannot carry a lone surrogate; structured clone keeps it.)
  if (typeof value === "string" && value.isWellFormed()) return tagged(Tag.string, value);
  if (jsonExact(value, 0, new Set())) return tagged(Tag.json, JSON.stringify(value));
  const v8 = serialize(value);
  const out = new Uint8Array(v8.length + 1);
  out[0] = Tag.v8;
  out.set(v8, 1);
  return out;
}

export function decode(bytes: Uint8Array): unknown {
  const body = bytes.subarray(1);
  switch (bytes[0]) {
    case Tag.bytes:
      return body.slice();
    case Tag.string:
      return decoder.decode(body);
    case Tag.json:
      return JSON.parse(decoder.decode(body));
    case Tag.v8:
      // A copy: node:v8 lets typed arrays it decodes share the input's memory (shared memory
      // here, about to be overwritten).
      return deserialize(body.slice());
    default:
      throw new TypeError(`cannot decode a message with tag ${bytes[0]}`);
  }
}

function tagged(tag: number, text: string): Uint8Array {
  // Room for the worst case of UTF-8 (3 bytes per UTF-16 unit), trimmed after.
  const out = new Uint8Array(text.length * 3 + 1);
  out[0] = tag;
  const { written } = encoder.encodeInto(text, out.subarray(1));
  return out.subarray(0, written + 1);
}

/**
 * Whether JSON round-trips `value` to what structured clone would give: no object reached twice
 * (structured clone keeps shared references), no array with holes or extra properties.
 */
function jsonExact(value: unknown, depth: number, seen: Set<object>): boolean {
  if (depth > 64) return false;
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0);
    case "object": {
      if (value === null) return true;
      if (seen.has(value)) return false;
      seen.add(value);
      if (Array.isArray(value)) {
        if (Object.getPrototypeOf(value) !== Array.prototype) return false;
        if (Object.keys(value).length !== value.length) return false;
        for (let i = 0; i < value.length; i++) {
          if (!jsonExact(value[i], depth + 1, seen)) return false;
        }
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      if ("toJSON" in value) return false;
      for (const key in value) {
        if (!jsonExact((value as Record<string, unknown>)[key], depth + 1, seen)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}
