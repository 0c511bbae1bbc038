/**
 * The content type of a file by its name's extension: the core's table (core/src/mime.zig),
 * the one its static handler uses, so that `sendfile` and static files agree.
 * @module
 */

import { library } from "../_ffi/library.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const out = new Uint8Array(128);

/** E.g. `text/css; charset=utf-8` for `a.css`; `application/octet-stream` when not known. */
export function contentType(name: string): string {
  const bytes = encoder.encode(name.slice(name.lastIndexOf("/") + 1));
  const n = library().zg_content_type(bytes, bytes.length, out, out.length);
  return decoder.decode(out.subarray(0, n));
}
