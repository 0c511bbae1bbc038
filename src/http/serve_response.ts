/**
 * A `serve()` handler's `Response` on the wire. Read through its public API, a response costs
 * more than the rest of a small request's way: `headers` is a sorted, combined view made on
 * first read (and reading it turns a kept body into a stream), and a body read through its
 * stream costs a reader and a promise per chunk.
 *
 * `Deno.serve` reads its responses' inner state instead; so does this, where this Deno has it
 * (found on a probe at load time): the status, the header list, and a body kept as a string or
 * bytes, or a fast response's own fields (`new Response(body)` with no init). Otherwise, and
 * for streams and blobs, the public API.
 * @module
 */

import type { HttpResponse } from "./response.ts";
import { symbolNamed } from "./deno_symbols.ts";

interface InnerResponse {
  /** The body was decoded on its way in (`fetch`): its `Content-Encoding` no longer holds. */
  bodyDecoded?: boolean;
  status: number;
  statusMessage: string;
  headerList: [string, string][];
  body: { streamOrStatic: unknown } | null;
}

/** A body kept as it was given (not a stream). */
interface StaticBody {
  body: unknown;
  consumed: boolean;
}

const probe = (() => {
  const response = new Response("");
  const find = (description: string) => symbolNamed(response, description);
  const found = {
    inner: find("response"),
    fastStatus: find("serve fast status"),
    fastBody: find("serve fast body"),
    fastKind: find("serve fast header kind"),
    fastType: find("serve fast content type"),
    fastConsumed: find("serve fast consumed"),
  };
  const record = response as unknown as Record<symbol, unknown>;
  const inner = found.inner && record[found.inner] as Partial<InnerResponse> | undefined;
  if (!inner || !Array.isArray(inner.headerList) || typeof inner.status !== "number") {
    return undefined;
  }
  return found;
})();

/** The body to write at once (a string or bytes), null for none, undefined: read the stream. */
type Fixed = string | Uint8Array | null | undefined;

/** The status, the header fields and a kept body, from the response's inner state; false when it has none to read. */
function fromInner(response: Response, res: HttpResponse): Fixed | false {
  if (!probe || response.bodyUsed) return false;
  const record = response as unknown as Record<symbol, unknown>;
  // A fast response (no init): its status, its body and its one content type.
  if (
    probe.fastStatus && probe.fastBody && record[probe.fastStatus] !== 0 &&
    record[probe.fastConsumed!] === false
  ) {
    const body = record[probe.fastBody];
    if (typeof body === "string" || body instanceof Uint8Array) {
      res.status(record[probe.fastStatus] as number);
      const kind = record[probe.fastKind!];
      if (kind === 1) res.header("content-type", "text/plain;charset=UTF-8");
      else if (kind === 2) res.header("content-type", String(record[probe.fastType!]));
      else if (kind !== 0) return false;
      return body;
    }
  }
  const inner = record[probe.inner!] as InnerResponse;
  res.status(inner.status, inner.statusMessage || undefined);
  // Repeated fields are joined as `headers` joins them; each Set-Cookie goes on its own.
  let seen: Set<string> | undefined;
  for (const [name, value] of inner.headerList) {
    const key = name.toLowerCase();
    if (key === "set-cookie") {
      res.addSetCookie(value);
      continue;
    }
    // A fetched response passed on: its body is decoded already (as Deno.serve does).
    if (inner.bodyDecoded && key === "content-encoding") continue;
    if ((seen ??= new Set()).has(key)) {
      const all = inner.headerList.filter(([n]) => n.toLowerCase() === key).map(([, v]) => v);
      res.header(name, all.join(", "));
      continue;
    }
    seen.add(key);
    res.header(name, value);
  }
  if (inner.body === null) return null;
  const kept = inner.body.streamOrStatic as StaticBody | ReadableStream;
  if (kept instanceof ReadableStream) return undefined;
  if (kept.consumed) return false;
  if (typeof kept.body === "string" || kept.body instanceof Uint8Array) {
    kept.consumed = true;
    return kept.body;
  }
  return undefined;
}

/**
 * Writes `response` to `res`: a body that is one chunk gets a Content-Length, a longer one is
 * chunked. Undefined when it is written already, else the promise of the stream's writing.
 */
export function write(response: Response, res: HttpResponse): Promise<void> | undefined {
  let fixed = fromInner(response, res);
  if (fixed === false) {
    res.status(response.status, response.statusText || undefined);
    for (const [name, value] of response.headers) {
      if (name !== "set-cookie") res.header(name, value);
    }
    for (const cookie of response.headers.getSetCookie()) res.addSetCookie(cookie);
    fixed = response.body === null ? null : undefined;
  }
  if (fixed === null) {
    res.end();
    return;
  }
  if (fixed !== undefined) {
    res.end(fixed);
    return;
  }
  return writeStream(response.body!, res);
}

/** A body read through its stream: one chunk goes with a Content-Length, more go chunked, each as it comes. */
async function writeStream(stream: ReadableStream<Uint8Array>, res: HttpResponse) {
  const reader = stream.getReader();
  let done = false;
  try {
    const first = await reader.read();
    if (first.done) {
      done = true;
      res.end();
      return;
    }
    let next = await reader.read();
    if (next.done) {
      done = true;
      res.end(first.value);
      return;
    }
    // A stream: chunked, each part as it comes, at the client's pace.
    if (!res.write(first.value)) return;
    while (!next.done) {
      if (!res.write(next.value)) return;
      await res.drained();
      next = await reader.read();
    }
    done = true;
    res.end();
  } finally {
    // A stream the client left early is told so.
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
