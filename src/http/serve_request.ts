/**
 * The `Request` a `serve()` handler gets. A standard `Request` built through its public
 * constructor costs about 4.5 µs (URL parsing, header validation, body extraction), more than
 * the rest of the request's way through the server; `Deno.serve` builds its own from an inner
 * request, lazily, with no public API for it.
 *
 * This file does the same where this Deno allows it: a `Request` made by the constructor's
 * branded, empty path, given an inner request (method, URL, header list, body) of its own, as
 * `Deno.serve`'s are; about 0.3 µs. The inner shapes are found on a probe at load time. When
 * this Deno's differ (a symbol missing), every request goes through the public constructor,
 * which works for all of them, only slower.
 * @module
 */

import { symbolNamed } from "./deno_symbols.ts";

/** The internals found on probes, or undefined when this Deno does not have them. */
const internals = (() => {
  try {
    const probe = new Request("http://probe/", { method: "POST", body: new Uint8Array(1) });
    const brandKey = symbolNamed(probe, "[[webidl.brand]]");
    const request = symbolNamed(probe, "request");
    const getHeaders = symbolNamed(probe, "get headers");
    const headerList = symbolNamed(new Headers(), "header list");
    if (!brandKey || !request || !getHeaders || !headerList) return undefined;
    const record = probe as unknown as Record<symbol, unknown>;
    const brand = record[brandKey];
    const body = (record[request] as { body?: { constructor?: unknown } } | undefined)?.body;
    const InnerBody = body?.constructor as
      | (new (source: { body: Uint8Array; consumed: boolean }) => Record<string, unknown>)
      | undefined;
    if (typeof brand !== "symbol" || typeof InnerBody !== "function") return undefined;
    return { brand, request, getHeaders, headerList, InnerBody };
  } catch {
    return undefined;
  }
})();

/**
 * What the inner request of this Deno holds (ext/fetch's `newInnerRequest`): the fields, and
 * `url()` / `currentUrl()` on the prototype rather than made per request.
 */
class InnerRequest {
  body: Record<string, unknown> | null = null;
  redirectMode = "follow";
  redirectCount = 0;
  urlList: (() => string)[];
  urlListProcessed: string[];
  clientRid = null;
  blobUrlEntry = null;

  constructor(
    public method: string,
    url: string,
    public headerList: [string, string][],
    body: Uint8Array | null,
  ) {
    this.urlList = [() => url];
    this.urlListProcessed = [url];
    if (body !== null) {
      // A copy of its own, as the public constructor makes (the message's bytes are the
      // server's, and a body is read through its whole buffer).
      const bytes = body.slice();
      const inner = new internals!.InnerBody({ body: bytes, consumed: false });
      inner.source = bytes;
      inner.length = bytes.length;
      this.body = inner;
    }
  }

  url(): string {
    return this.urlListProcessed[0] ??= this.urlList[0]();
  }

  currentUrl(): string {
    const last = this.urlList.length - 1;
    return this.urlListProcessed[last] ??= this.urlList[last]();
  }
}

/** A request's `Headers`, made from its inner header list when first read. */
function headersOf(inner: InnerRequest): Headers {
  const headers = new Headers();
  (headers as unknown as Record<symbol, unknown>)[internals!.headerList] = inner.headerList;
  return headers;
}

/** What watches the client for a request: it calls `clientGone` when the client goes. */
export interface ClientWatch {
  watchFor(request: ServeRequest): void;
}

/**
 * A standard `Request` (`instanceof Request`, every method and accessor) whose `signal` is made
 * only when read (an `AbortSignal` per request costs more than the request itself) and aborts
 * when the client goes.
 */
export class ServeRequest extends Request {
  #abort: AbortController | undefined;
  #watch: ClientWatch;

  /**
   * `fields`: the header fields, names in lower case; `body`: null for none;
   * `watch`: told when the signal is first read, so that the client's going is watched.
   */
  constructor(
    url: string,
    method: string,
    fields: [string, string][],
    body: Uint8Array | null,
    watch: ClientWatch,
  ) {
    if (!internals) {
      super(url, { method, headers: fields, body: body as Uint8Array<ArrayBuffer> | null });
      this.#watch = watch;
      return;
    }
    super(internals.brand as unknown as string);
    this.#watch = watch;
    const self = this as unknown as Record<symbol, unknown>;
    const inner = new InnerRequest(method, url, fields, body);
    self[internals.request] = inner;
    // (Called with no `this`.)
    self[internals.getHeaders] = () => headersOf(inner);
  }

  override get signal(): AbortSignal {
    if (!this.#abort) {
      this.#abort = new AbortController();
      this.#watch.watchFor(this);
    }
    return this.#abort.signal;
  }

  /** @internal The client went away. */
  clientGone() {
    (this.#abort ??= new AbortController()).abort(new Error("the client closed the connection"));
  }
}

/** Whether requests take the fast path (for tests). */
export const lazyRequests = internals !== undefined;
