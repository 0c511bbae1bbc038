/**
 * `multipart/form-data` bodies (RFC 7578): fields into `req.post`, files into `req.files`.
 * Each file part is written to `uploadTmpDir` (created exclusively, mode 0600: never through a
 * link or over another file) and removed when the response ends, unless the handler moved it;
 * a file over `uploadMaxFilesize` is not written and reports error 1 (PHP's
 * `UPLOAD_ERR_INI_SIZE`), a part without a file name error 4 (`UPLOAD_ERR_NO_FILE`).
 * @module
 */

import type { UploadedFile } from "./request.ts";

const utf8 = new TextDecoder();
const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();

export interface Multipart {
  fields: Record<string, string>;
  files: Record<string, UploadedFile>;
  /** The files written, to remove once the request is done. */
  written: string[];
}

/** The boundary of a `multipart/form-data` content type, or undefined. */
export function boundaryOf(contentType: string): string | undefined {
  if (!/^multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  return boundary && boundary.length <= 70 ? boundary : undefined;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  for (
    let i = haystack.indexOf(first, from);
    i >= 0 && i + needle.length <= haystack.length;
    i = haystack.indexOf(first, i + 1)
  ) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

/** One `name="value"` parameter of a Content-Disposition header, or undefined. */
function parameter(header: string, name: string): string | undefined {
  const m = new RegExp(`;\\s*${name}="((?:[^"\\\\]|\\\\.)*)"`, "i").exec(header) ??
    new RegExp(`;\\s*${name}=([^;\\s]+)`, "i").exec(header);
  return m?.[1].replace(/\\(.)/g, "$1");
}

/**
 * Splits `body` at `boundary`. Malformed parts are skipped; what parsed before them stays.
 * `tmpDir` and `maxFileSize` (0: no limit) are the upload options.
 */
export function parseMultipart(
  body: Uint8Array,
  boundary: string,
  tmpDir: string,
  maxFileSize: number,
): Multipart {
  const out: Multipart = { fields: {}, files: {}, written: [] };
  const delimiter = encoder.encode(`--${boundary}`);
  const next = encoder.encode(`\r\n--${boundary}`);
  let at = indexOf(body, delimiter, 0);
  if (at < 0) return out;
  at += delimiter.length;
  while (at + 2 <= body.length) {
    // After a delimiter: "--" ends the body, CRLF starts a part.
    if (body[at] === 45 && body[at + 1] === 45) break;
    if (body[at] !== 13 || body[at + 1] !== 10) break;
    const headStart = at + 2;
    const headEnd = indexOf(body, encoder.encode("\r\n\r\n"), headStart);
    if (headEnd < 0) break;
    const end = indexOf(body, next, headEnd + 4);
    if (end < 0) break;
    const headers = latin1.decode(body.subarray(headStart, headEnd)).split("\r\n");
    const content = body.subarray(headEnd + 4, end);
    at = end + next.length;
    let disposition = "";
    let type = "";
    for (const line of headers) {
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "content-disposition") disposition = value;
      else if (name === "content-type") type = value;
    }
    if (!/^form-data\s*(;|$)/i.test(disposition)) continue;
    const field = parameter(disposition, "name");
    if (field === undefined) continue;
    const filename = parameter(disposition, "filename");
    if (filename === undefined) {
      out.fields[utf8.decode(latin1Bytes(field))] = utf8.decode(content);
      continue;
    }
    const key = utf8.decode(latin1Bytes(field));
    const file: UploadedFile = {
      name: utf8.decode(latin1Bytes(filename)),
      type: type || "application/octet-stream",
      size: content.length,
      tmpName: "",
      error: 0,
    };
    if (filename === "") {
      file.error = 4;
    } else if (maxFileSize > 0 && content.length > maxFileSize) {
      file.error = 1;
    } else {
      const path = `${tmpDir}/ziggurat-upload-${crypto.randomUUID()}`;
      // createNew: O_EXCL, so neither a link nor an existing file is ever written through.
      Deno.writeFileSync(path, content, { createNew: true, mode: 0o600 });
      out.written.push(path);
      file.tmpName = path;
    }
    out.files[key] = file;
  }
  return out;
}

function latin1Bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** Removes the files a request's upload left, unless the handler took them away. */
export function removeUploads(paths: string[]) {
  for (const path of paths) {
    try {
      Deno.removeSync(path);
    } catch {
      // Moved or removed by the handler.
    }
  }
}
