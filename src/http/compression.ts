/**
 * Response compression (`httpCompression`): a response ended with its whole body is
 * compressed when the client accepts a coding (`Accept-Encoding`: br, gzip or deflate, by
 * its q-values, then in that order), the body has a compressible content type and at least
 * `httpCompressionMinLength` bytes, and nothing rules it out: HEAD, a status without a body,
 * a `Content-Encoding` or `Content-Range` already set. A body streamed with `write()` is
 * compressed chunk by chunk (gzip or deflate: `StreamCompressor`).
 * @module
 */

import { brotliCompressSync, constants, deflateRawSync, deflateSync, gzipSync } from "node:zlib";
import { concatBytes } from "../bytes.ts";

export type Coding = "br" | "gzip" | "deflate";

/** What the server settings say (resolved options). */
export interface CompressionSettings {
  level: number;
  minLength: number;
  /** Content types (without parameters) to compress; empty: `compressible`'s list. */
  types: readonly string[];
}

/** Ours, best first: what a tie between equal q-values goes to. */
const preference: readonly Coding[] = ["br", "gzip", "deflate"];

/**
 * The coding to use for an `Accept-Encoding` value, or undefined (none acceptable, or only
 * identity). `*` stands for every coding not named.
 */
export function negotiate(
  acceptEncoding: string,
  codings: readonly Coding[] = preference,
): Coding | undefined {
  if (acceptEncoding === "") return undefined;
  const q = new Map<string, number>();
  for (const item of acceptEncoding.split(",")) {
    const [name, ...params] = item.trim().toLowerCase().split(";");
    if (name === "") continue;
    let weight = 1;
    for (const param of params) {
      const [key, value] = param.trim().split("=");
      if (key === "q") weight = Number(value);
    }
    q.set(name === "x-gzip" ? "gzip" : name, Number.isFinite(weight) ? weight : 0);
  }
  let best: Coding | undefined;
  let bestQ = 0;
  for (const coding of codings) {
    const weight = q.get(coding) ?? q.get("*") ?? 0;
    if (weight > bestQ) {
      best = coding;
      bestQ = weight;
    }
  }
  return best;
}

/**
 * Text and the structured formats that compress well; not images, video, archives, nor event
 * streams (small events a client must see at once).
 */
function compressibleByDefault(type: string): boolean {
  if (type === "text/event-stream") return false;
  return type.startsWith("text/") || type === "application/json" ||
    type === "application/javascript" || type === "application/xml" ||
    type === "image/svg+xml" || type === "application/wasm" ||
    type === "application/manifest+json" || type.endsWith("+json") || type.endsWith("+xml");
}

/** Whether a body of `contentType` is compressed under `settings`. */
export function compressible(contentType: string, settings: CompressionSettings): boolean {
  const type = contentType.split(";")[0].trim().toLowerCase();
  if (type === "") return false;
  return settings.types.length > 0 ? settings.types.includes(type) : compressibleByDefault(type);
}

/** `body` in `coding`, at `level` (gzip's and deflate's 1–9; brotli's quality the same). */
export function compress(body: Uint8Array, coding: Coding, level: number): Uint8Array {
  switch (coding) {
    case "gzip":
      return gzipSync(body, { level });
    case "deflate":
      return deflateSync(body, { level });
    case "br":
      return brotliCompressSync(body, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: level,
          [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
        },
      });
  }
}

/** `negotiate` among the codings a stream can use (each chunk flushed as it goes). */
export function negotiateStream(acceptEncoding: string): "gzip" | "deflate" | undefined {
  return negotiate(acceptEncoding, streamable) as "gzip" | "deflate" | undefined;
}

const streamable: readonly Coding[] = ["gzip", "deflate"];

/** The empty last block that ends a deflate stream (BFINAL, fixed codes, end of block). */
const finalBlock = new Uint8Array([0x03, 0x00]);
const gzipHeader = new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
/** The zlib header of deflate at the fastest levels (CMF 0x78, FLG 0x01). */
const zlibHeader = new Uint8Array([0x78, 0x01]);

/**
 * A body compressed as it is written: each chunk becomes deflate blocks flushed to a byte
 * boundary (a client decodes what came so far), in a gzip or zlib (`deflate`) wrapper, with
 * the checksum the wrapper ends with. Chunks are compressed apart (no history across them).
 */
export class StreamCompressor {
  #coding: "gzip" | "deflate";
  #level: number;
  #started = false;
  #crc = 0;
  #adlerA = 1;
  #adlerB = 0;
  #length = 0;

  constructor(coding: "gzip" | "deflate", level: number) {
    this.#coding = coding;
    this.#level = level;
  }

  /** The compressed bytes of `chunk` (the wrapper's header before the first). */
  chunk(chunk: Uint8Array): Uint8Array {
    const blocks = deflateRawSync(chunk, {
      level: this.#level,
      finishFlush: constants.Z_SYNC_FLUSH,
    });
    this.#sum(chunk);
    if (this.#started) return blocks;
    this.#started = true;
    return concatBytes([this.#coding === "gzip" ? gzipHeader : zlibHeader, blocks]);
  }

  /** The last bytes: the final block and the wrapper's checksum (and length, for gzip). */
  end(): Uint8Array {
    const head = this.#started
      ? new Uint8Array(0)
      : this.#coding === "gzip"
      ? gzipHeader
      : zlibHeader;
    const tail = new Uint8Array(this.#coding === "gzip" ? 8 : 4);
    const view = new DataView(tail.buffer);
    if (this.#coding === "gzip") {
      view.setUint32(0, this.#crc >>> 0, true);
      view.setUint32(4, this.#length >>> 0, true);
    } else {
      view.setUint32(0, ((this.#adlerB << 16) | this.#adlerA) >>> 0, false);
    }
    return concatBytes([head, finalBlock, tail]);
  }

  #sum(chunk: Uint8Array) {
    this.#length += chunk.length;
    if (this.#coding === "gzip") {
      this.#crc = crc32(chunk, this.#crc);
      return;
    }
    let a = this.#adlerA;
    let b = this.#adlerB;
    for (let i = 0; i < chunk.length; i++) {
      a += chunk[i];
      b += a;
      // (Reduced every so often; a double holds the sums exactly meanwhile.)
      if ((i & 4095) === 4095) {
        a %= 65521;
        b %= 65521;
      }
    }
    this.#adlerA = a % 65521;
    this.#adlerB = b % 65521;
  }
}

/** CRC-32 (the gzip trailer's): the table, made once. Not `zlib.crc32`, which Deno versions disagree on. */
const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The CRC-32 of `bytes` continuing from `crc` (0 to start). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
