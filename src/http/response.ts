/**
 * Swoole's `Http\Response`: the answer to one request. The head goes out with the first
 * `write` (then the body is chunked) or with `end` (then it has a Content-Length); `end` marks
 * the response's last bytes, so the core knows the request is answered. Responses of pipelined
 * requests go out in the order of their requests (http_layer.ts holds a later one's bytes
 * until the ones before it have ended).
 * @module
 */

import { bodiless, httpDate, reasonOf } from "./status.ts";
import { contentType } from "./content_type.ts";
import { concatBytes } from "../bytes.ts";
import { contexts } from "../context.ts";
import { DetachedSink } from "./detached.ts";
import {
  compress,
  compressible,
  negotiate,
  negotiateStream,
  StreamCompressor,
} from "./compression.ts";
import type { Coding, CompressionSettings } from "./compression.ts";

const encoder = new TextEncoder();
const empty = new Uint8Array(0);

/** A part of a body that is a file's bytes (`sendfile`), written by the reactor. */
export interface FilePart {
  path: string;
  offset: number;
  length: number;
}

/** Where a response's bytes go (http_layer.ts): in order, the last ones marked. */
export interface ResponseSink {
  /**
   * Writes `bytes` of response `seq` of session `fd`; false when the client is gone. `last`:
   * the response ends with them (`close`: and so does the connection; `status`: its status).
   */
  write(
    fd: number,
    seq: number,
    bytes: Uint8Array | FilePart,
    last: boolean,
    close?: boolean,
    status?: number,
  ): boolean;
  /** Logs a warning (rate-limited) about session `fd`. */
  warning(fd: number, message: string): void;
  /** Response `seq` of session `fd` is detached (`detach()`); false where it cannot be. */
  detach?(fd: number, seq: number): boolean;
  /** Whether the session is still there. */
  open(fd: number): boolean;
  /** Runs `callback` when session `fd` ends (before its response did); returns the undo. */
  whenClosed(fd: number, callback: () => void): () => void;
  /** Resolves once what session `fd` owes its output buffer has gone. */
  room(fd: number): Promise<void>;
  /** Whether connections stay open after a response (false: the server is on its way out). */
  keepOpen(): boolean;
}

/** What the request says about how to answer it. */
export interface ResponseContext {
  minor: number;
  keepAlive: boolean;
  head: boolean;
  /** `httpCompression`'s settings, or undefined when it is off. */
  compression: CompressionSettings | undefined;
  /** Where the request's `Accept-Encoding` is read from (when a body may be compressed). */
  fields: { field(name: string): string } | undefined;
}

/**
 * Swoole's cookie arguments: name, value (default ""), expires (Unix seconds, 0: a session
 * cookie), path ("/"), domain, secure, httpOnly, sameSite, priority.
 */
export type CookieArgs = [
  name: string,
  value?: string,
  expires?: number,
  path?: string,
  domain?: string,
  secure?: boolean,
  httpOnly?: boolean,
  sameSite?: string,
  priority?: string,
];

/** Field names and values must not carry line breaks (no response splitting). */
function checkField(what: string, text: string) {
  if (/[\r\n\0]/.test(text)) throw new TypeError(`${what} must not contain CR, LF or NUL`);
}

/**
 * An HTTP response as Swoole's `Http\Response`: `status`, `header`, `cookie`, `write` (chunked),
 * `end`, `sendfile`, `redirect`, `trailer`, `detach`; from any process with `create`.
 */
export class HttpResponse {
  /** The session (Swoole's `fd`). */
  readonly fd: number;
  #sink: ResponseSink;
  #seq: number;
  #request: ResponseContext;
  #status = 200;
  #reason = "";
  /** Set headers by lower-case name: the name as given, and its value (made on first use). */
  #headers: Map<string, [string, string]> | undefined;
  #cookies: string[] | undefined;
  #trailers: Map<string, [string, string]> | undefined;
  #started = false;
  #ended = false;
  /** A body streamed with `write()`, compressed as it goes (`httpCompression`). */
  #stream: StreamCompressor | undefined;
  /** The head said `Connection: close`: the connection ends with this response. */
  #closing = false;

  /** @internal */
  constructor(fd: number, seq: number, sink: ResponseSink, request: ResponseContext) {
    this.fd = fd;
    this.#seq = seq;
    this.#sink = sink;
    this.#request = request;
  }

  /** The status (default 200) and, optionally, its reason phrase. Before the head is sent. */
  status(code: number, reason?: string): boolean {
    if (this.#started || !Number.isInteger(code) || code < 100 || code > 999) return false;
    if (reason !== undefined) checkField("A reason phrase", reason);
    this.#status = code;
    this.#reason = reason ?? "";
    return true;
  }

  /** Sets a header field, replacing one of the same name (case-insensitive). */
  header(name: string, value: string | number): boolean {
    if (this.#started) return false;
    const text = String(value);
    checkField("A header name", name);
    checkField("A header value", text);
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
      throw new TypeError(`"${name}" is not a valid header name`);
    }
    (this.#headers ??= new Map()).set(name.toLowerCase(), [name, text]);
    return true;
  }

  /** A trailer field, sent after a chunked body (`write` … `end`). */
  trailer(name: string, value: string): boolean {
    if (this.#ended) return false;
    checkField("A trailer name", name);
    checkField("A trailer value", value);
    (this.#trailers ??= new Map()).set(name.toLowerCase(), [name, value]);
    return true;
  }

  /** Swoole's `cookie()`: a `Set-Cookie` field, the value URL-encoded. */
  cookie(...args: CookieArgs): boolean {
    const [name, value = "", ...rest] = args;
    return this.#setCookie(name, encodeURIComponent(value), ...rest);
  }

  /** Swoole's `rawCookie()`: the same, the value as given. */
  rawCookie(...args: CookieArgs): boolean {
    const [name, value = "", ...rest] = args;
    return this.#setCookie(name, value, ...rest);
  }

  #setCookie(
    name: string,
    value: string,
    expires = 0,
    path = "/",
    domain = "",
    secure = false,
    httpOnly = false,
    sameSite = "",
    priority = "",
  ): boolean {
    if (this.#started) return false;
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
      throw new TypeError(`"${name}" is not a valid cookie name`);
    }
    for (const part of [value, path, domain, sameSite, priority]) checkField("A cookie", part);
    for (const part of [path, domain, sameSite, priority]) {
      if (part.includes(";")) throw new TypeError("A cookie's attributes must not contain ;");
    }
    if (/[;,\s]/.test(value)) {
      throw new TypeError("A raw cookie value must not contain ; , or spaces");
    }
    let text = `${name}=${value === "" ? "deleted" : value}`;
    if (value === "") text += "; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0";
    else if (expires > 0) {
      text += `; expires=${new Date(expires * 1000).toUTCString()}`;
      text += `; Max-Age=${Math.max(0, Math.round(expires - Date.now() / 1000))}`;
    }
    if (path) text += `; path=${path}`;
    if (domain) text += `; domain=${domain}`;
    if (secure) text += "; secure";
    if (httpOnly) text += "; HttpOnly";
    if (sameSite) text += `; SameSite=${sameSite}`;
    if (priority) text += `; Priority=${priority}`;
    (this.#cookies ??= []).push(text);
    return true;
  }

  /**
   * Sends a part of the body (chunked transfer coding; the head goes first). False when the
   * response has ended or the client is gone.
   */
  write(chunk: Uint8Array | string): boolean {
    if (this.#ended) return false;
    let body = typeof chunk === "string" ? encoder.encode(chunk) : chunk;
    if (!this.#started) {
      const settings = this.#request.compression;
      if (settings && !this.#request.head && !bodiless(this.#status)) {
        const coding = this.#chooseCoding(settings, true);
        if (coding) {
          this.#stream = new StreamCompressor(coding as "gzip" | "deflate", settings.level);
        }
      }
    }
    // (Compressed before the response counts as begun: a failure here still gets a 500.)
    if (this.#stream && body.length > 0) body = this.#stream.chunk(body);
    const head = this.#started ? empty : this.#head(-1);
    this.#started = true;
    if (body.length === 0 && head.length === 0) return this.#sink.open(this.fd);
    if (this.#request.head || bodiless(this.#status)) {
      return head.length > 0 ? this.#send(head, false) : this.#sink.open(this.fd);
    }
    const chunked = this.#request.minor === 1;
    const framed = chunked && body.length > 0
      ? concatBytes([head, encoder.encode(`${body.length.toString(16)}\r\n`), body, crlf])
      : concatBytes([head, body]);
    return this.#send(framed, false);
  }

  /**
   * Ends the response, with `body` if given (a response not yet started gets a
   * Content-Length). False when it has ended already or the client is gone.
   */
  end(body?: Uint8Array | string): boolean {
    if (this.#ended) return false;
    const bytes = body === undefined
      ? empty
      : typeof body === "string"
      ? encoder.encode(body)
      : body;
    if (!this.#started) {
      const noBody = this.#request.head || bodiless(this.#status);
      const settings = this.#request.compression;
      // (Never for HEAD, as Swoole does not: a body no one receives is not worth compressing.)
      const body = settings && bytes.length >= settings.minLength && !noBody
        ? this.#compressed(bytes, settings)
        : bytes;
      this.#started = this.#ended = true;
      return this.#send(this.#whole(body, noBody), true);
    }
    if (bytes.length > 0 && !this.write(bytes)) return false;
    this.#ended = true;
    // A compressed stream's last bytes (its final block and checksum) go as its last chunk.
    const tail = this.#stream?.end();
    this.#stream = undefined;
    if (this.#request.minor === 1 && !this.#request.head && !bodiless(this.#status)) {
      let end = "0\r\n";
      if (tail) {
        if (
          !this.#send(
            concatBytes([encoder.encode(`${tail.length.toString(16)}\r\n`), tail, crlf]),
            false,
          )
        ) {
          return false;
        }
      }
      for (const [name, value] of this.#trailers?.values() ?? []) end += `${name}: ${value}\r\n`;
      return this.#send(encoder.encode(end + "\r\n"), true);
    }
    // No body to end (HEAD, 204, 304): the response is over, the connection goes on; HTTP/1.0
    // without a length: the end of the connection ends the body.
    const closeDelimited = this.#request.minor === 0 && !this.#request.head &&
      !bodiless(this.#status);
    if (tail && closeDelimited && !this.#send(tail, false)) return false;
    return this.#sink.write(
      this.fd,
      this.#seq,
      empty,
      true,
      closeDelimited || this.#closing,
      this.#status,
    );
  }

  /**
   * Swoole's `sendfile()`: the file at `path` as the whole body (from `offset`, `length`
   * bytes; 0: to its end), written by the reactor with sendfile(2), with a `Content-Type`
   * from its name unless one was set. It ends the response. False when the response had
   * begun, the file is not there (logged), or the client is gone.
   */
  sendfile(path: string, offset = 0, length = 0): boolean {
    if (this.#started) return false;
    if (
      !Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0
    ) {
      throw new RangeError(
        `sendfile() takes a non-negative offset and length, got ${offset}, ${length}`,
      );
    }
    let absolute: string;
    let size: number;
    try {
      absolute = Deno.realPathSync(path);
      const stat = Deno.statSync(absolute);
      if (!stat.isFile) throw new Error("not a regular file");
      size = stat.size;
    } catch (error) {
      this.#sink.warning(this.fd, `sendfile: cannot send ${path}: ${(error as Error).message}`);
      return false;
    }
    if (offset > size) {
      this.#sink.warning(
        this.fd,
        `sendfile: offset ${offset} is past the end of ${path} (${size} bytes)`,
      );
      return false;
    }
    const bytes = length === 0 ? size - offset : Math.min(length, size - offset);
    if (!this.#headers?.has("content-type")) this.header("Content-Type", contentType(absolute));
    this.#started = this.#ended = true;
    const head = this.#head(bytes);
    if (this.#request.head || bodiless(this.#status) || bytes === 0) return this.#send(head, true);
    if (!this.#send(head, false)) return false;
    const file: FilePart = { path: absolute, offset, length: bytes };
    return this.#sink.write(this.fd, this.#seq, file, true, this.#closing, this.#status);
  }

  /**
   * Swoole's `detach()`: this response is left unanswered here, for one made with
   * `HttpResponse.create(server, fd)` in any process of the tree (a task worker, say) to
   * write; the connection's later responses wait for it. This object writes nothing more.
   * False when the response had begun. See src/http/detached.ts for where its parts go.
   */
  detach(): boolean {
    if (this.#started || !this.#sink.detach) return false;
    // A created response knows nothing of its request: it could not answer these right.
    if (this.#request.head || this.#request.minor === 0) {
      this.#sink.warning(this.fd, "detach() refused for a HEAD or HTTP/1.0 request");
      return false;
    }
    if (!this.#sink.detach(this.fd, this.#seq)) return false;
    this.#started = this.#ended = true;
    return true;
  }

  /** @internal The status set (200 unless changed). */
  get statusCode(): number {
    return this.#status;
  }

  /** @internal Whether a header of this name (lower-case) is set. */
  hasHeader(name: string): boolean {
    return this.#headers?.has(name) ?? false;
  }

  /** @internal Whether the response has ended (or was detached). */
  get finished(): boolean {
    return this.#ended;
  }

  /**
   * Swoole's `Response::create($server, $fd)`: a response for session `fd` whose request's
   * response was detached, from any process of `server`'s tree. It answers as HTTP/1.1, kept
   * alive, uncompressed. `sendfile` is not available on it.
   */
  static create(server: object, fd: number): HttpResponse {
    const ctx = contexts.get(server);
    if (!ctx) throw new TypeError("HttpResponse.create() takes a server and a session id");
    return new HttpResponse(fd, 0, new DetachedSink(ctx), {
      minor: 1,
      keepAlive: true,
      head: false,
      compression: undefined,
      fields: undefined,
    });
  }

  /** Swoole's `redirect()`: a `Location` and the status (302 by default), then the end. */
  redirect(location: string, code = 302): boolean {
    if (this.#started) return false;
    this.status(code);
    this.header("Location", location);
    return this.end();
  }

  /** @internal A `Set-Cookie` line as given (`serve()`: a `Response`'s cookies). */
  addSetCookie(line: string): boolean {
    if (this.#started) return false;
    checkField("A cookie", line);
    (this.#cookies ??= []).push(line);
    return true;
  }

  /**
   * Runs `callback` if the client goes away before the response is done (`serve()` aborts the
   * request's `signal`); returns a function that cancels it.
   */
  onClose(callback: () => void): () => void {
    return this.#sink.whenClosed(this.fd, callback);
  }

  /**
   * Resolves once the connection's output buffer took what was written so far: a producer that
   * awaits it between writes goes at the client's pace (`serve()` does, for streamed bodies).
   */
  drained(): Promise<void> {
    return this.#sink.room(this.fd);
  }

  /** Whether the response can still be written: not ended, and the client is there. */
  isWritable(): boolean {
    return !this.#ended && this.#sink.open(this.fd);
  }

  #send(bytes: Uint8Array, last: boolean): boolean {
    // (The connection ends with the response when its head said so.)
    return this.#sink.write(this.fd, this.#seq, bytes, last, last && this.#closing, this.#status);
  }

  /** `body` compressed in the coding the client prefers, when its type compresses (see compression.ts). */
  #compressed(body: Uint8Array, settings: CompressionSettings): Uint8Array {
    const coding = this.#chooseCoding(settings, false);
    return coding ? compress(body, coding, settings.level) : body;
  }

  /**
   * The coding the body goes in (undefined: as it is), its headers set: `Vary`, and with a
   * coding `Content-Encoding` and a weakened `ETag`. `stream`: gzip or deflate only.
   */
  #chooseCoding(settings: CompressionSettings, stream: boolean): Coding | undefined {
    const headers = this.#headers;
    const type = headers?.get("content-type");
    if (!type || headers!.has("content-encoding") || headers!.has("content-range")) return;
    if (!compressible(type[1], settings)) return;
    // The response depends on Accept-Encoding whichever way it goes.
    const vary = headers!.get("vary");
    if (!vary) this.header("Vary", "Accept-Encoding");
    else if (!/(^|,)\s*(accept-encoding|\*)\s*(,|$)/i.test(vary[1])) {
      this.header(vary[0], `${vary[1]}, Accept-Encoding`);
    }
    const accept = this.#request.fields?.field("accept-encoding") ?? "";
    const coding = stream ? negotiateStream(accept) : negotiate(accept);
    if (!coding) return;
    this.header("Content-Encoding", coding);
    // Another representation: a strong validator of the body as given holds only weakly.
    const etag = headers!.get("etag");
    if (etag && !etag[1].startsWith("W/")) this.header(etag[0], `W/${etag[1]}`);
    return coding;
  }

  /**
   * The head and the body of a response sent at once, in a scratch buffer reused by every
   * response (the send copies it into the ring before it returns).
   */
  #whole(body: Uint8Array, noBody: boolean): Uint8Array {
    const text = this.#headText(body.length);
    const need = text.length * 3 + (noBody ? 0 : body.length);
    // (A large response gets a buffer of its own; the scratch one stays small.)
    const out = need <= scratch.length ? scratch : new Uint8Array(need);
    const { written } = encoder.encodeInto(text, out);
    if (noBody) return out.subarray(0, written);
    out.set(body, written);
    return out.subarray(0, written + body.length);
  }

  /** The status line and the fields: with a Content-Length (`length` ≥ 0) or chunked. */
  #head(length: number): Uint8Array {
    return encoder.encode(this.#headText(length));
  }

  #headText(length: number): string {
    const { minor, keepAlive } = this.#request;
    const reason = this.#reason || reasonOf(this.#status);
    let text = `HTTP/1.${minor} ${this.#status} ${reason}\r\n`;
    const headers = this.#headers;
    // 101: the connection is the protocol's now; its `Connection: Upgrade` is the handler's.
    const upgrade = this.#status === 101;
    if (headers) {
      for (const [key, [name, value]] of headers) {
        if (
          key === "content-length" || key === "transfer-encoding" ||
          (key === "connection" && !upgrade)
        ) {
          continue;
        }
        text += `${name}: ${value}\r\n`;
      }
    }
    if (this.#cookies) { for (const cookie of this.#cookies) text += `Set-Cookie: ${cookie}\r\n`; }
    if (!headers?.has("date")) text += `Date: ${httpDate()}\r\n`;
    if (!bodiless(this.#status)) {
      if (length >= 0) text += `Content-Length: ${length}\r\n`;
      else if (minor === 1) text += "Transfer-Encoding: chunked\r\n";
    }
    if (upgrade) return text + "\r\n";
    // HTTP/1.0 has no chunked coding: a body of unknown length ends with the connection. A
    // server on its way out (shutdown, reload, a recycled worker) ends each connection after
    // the response in hand, and says so.
    const closeAfter = !keepAlive || !this.#sink.keepOpen() ||
      (length < 0 && minor === 0 && !this.#request.head && !bodiless(this.#status));
    this.#closing = closeAfter;
    if (closeAfter) text += "Connection: close\r\n";
    else if (minor === 0) text += "Connection: keep-alive\r\n";
    return text + "\r\n";
  }
}

const crlf = encoder.encode("\r\n");
/** See `#whole`. */
const scratch = new Uint8Array(64 * 1024);
