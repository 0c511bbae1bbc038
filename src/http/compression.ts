/**
 * Response compression (`httpCompression`): a response ended with its whole body is
 * compressed when the client accepts a coding (`Accept-Encoding`: br, gzip or deflate, by
 * its q-values, then in that order), the body has a compressible content type and at least
 * `httpCompressionMinLength` bytes, and nothing rules it out: HEAD, a status without a body,
 * a `Content-Encoding` or `Content-Range` already set. Bodies streamed with `write()` go as
 * they are.
 * @module
 */

import { brotliCompressSync, constants, deflateSync, gzipSync } from "node:zlib";

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
export function negotiate(acceptEncoding: string): Coding | undefined {
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
  for (const coding of preference) {
    const weight = q.get(coding) ?? q.get("*") ?? 0;
    if (weight > bestQ) {
      best = coding;
      bestQ = weight;
    }
  }
  return best;
}

/** Text and the structured formats that compress well; not images, video, archives. */
function compressibleByDefault(type: string): boolean {
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
