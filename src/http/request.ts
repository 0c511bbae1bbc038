/**
 * Swoole's `Http\Request`: one request, as the core parsed it (src/http/http_layer.ts hands
 * it over). The head's strings are made when read: `header`, `get`, `cookie`, `post` and
 * `server` are plain objects built on first access.
 * @module
 */

import {
  HttpFlag,
  httpHeader,
  httpHeaderSize,
  httpRequest,
  httpRequestSize,
} from "../_ffi/layout.ts";
import { boundaryOf, parseMultipart } from "./multipart.ts";

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();

/** Swoole's `$request->server`, in camelCase. */
export interface HttpRequestServer {
  /** The method (`GET`, …). */
  requestMethod: string;
  /** The path, without the query. */
  requestUri: string;
  /** The path (as `requestUri`). */
  pathInfo: string;
  /** The query, without `?` ("" when none). */
  queryString: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  serverProtocol: string;
  /** The client's IP address. */
  remoteAddr: string;
  /** The client's port. */
  remotePort: number;
  /** The port the request came in on. */
  serverPort: number;
  /** Seconds since the epoch, when the request reached the worker. */
  requestTime: number;
  /** `requestTime` with its fraction. */
  requestTimeFloat: number;
  /** Seconds since the epoch when the reactor read the request. */
  masterTime: number;
}

/** An uploaded file of a multipart request (Swoole's `$request->files[...]`). */
export interface UploadedFile {
  /** The file name the client gave. */
  name: string;
  /** Its Content-Type. */
  type: string;
  /** Its size in bytes. */
  size: number;
  /** Where it was written (in `uploadTmpDir`; removed once the response ends). */
  tmpName: string;
  /** PHP's upload error code: 0 when it was written whole. */
  error: number;
}

/** Where uploads go (`uploadTmpDir`, `uploadMaxFilesize`), and who removes them. */
export interface UploadOptions {
  tmpDir: string;
  maxFileSize: number;
  /** The files this request wrote: removed once its response ends. */
  written(paths: string[]): void;
}

/** Where the request came from, for `server` (the session's client info). */
export interface RequestPeer {
  remoteAddr: string;
  remotePort: number;
  serverPort: number;
}

/**
 * An HTTP request as Swoole's `Http\Request`: `header`, `server`, `get`, `post`, `cookie`,
 * `files`, `rawContent()`.
 */
export class HttpRequest {
  /** The session (Swoole's `fd`). */
  readonly fd: number;
  #bytes: Uint8Array;
  /** Where the raw head starts in `#bytes`. */
  #raw: number;
  #peer: () => RequestPeer;
  #time: number;
  #header: Record<string, string | string[]> | undefined;
  #get: Record<string, string> | undefined;
  #cookie: Record<string, string> | undefined;
  #post: Record<string, string> | undefined;
  #files: Record<string, UploadedFile> | undefined;
  #uploads: UploadOptions | undefined;
  #server: HttpRequestServer | undefined;

  /** @internal `bytes`: the core's request message (abi.HttpRequest, the table, head, body). */
  constructor(fd: number, bytes: Uint8Array, peer: () => RequestPeer, uploads?: UploadOptions) {
    this.fd = fd;
    this.#uploads = uploads;
    this.#bytes = bytes;
    this.#raw = httpRequestSize + this.#u16(httpRequest.headerCount) * httpHeaderSize;
    this.#peer = peer;
    this.#time = Date.now() / 1000;
  }

  #u16(offset: number): number {
    const b = this.#bytes;
    return b[offset] | (b[offset + 1] << 8);
  }

  #u32(offset: number): number {
    const b = this.#bytes;
    return (b[offset] | (b[offset + 1] << 8) | (b[offset + 2] << 16) | (b[offset + 3] << 24)) >>> 0;
  }

  /** Head bytes as a string (latin1: the head is bytes, not UTF-8); short ones by hand. */
  #text(offset: number, length: number): string {
    const start = this.#raw + offset;
    if (length > 32) return latin1.decode(this.#bytes.subarray(start, start + length));
    const b = this.#bytes;
    let out = "";
    for (let i = start; i < start + length; i++) out += String.fromCharCode(b[i]);
    return out;
  }

  /** @internal Whether the method is `HEAD` (compared as bytes). */
  get isHead(): boolean {
    if (this.#u16(httpRequest.methodLen) !== 4) return false;
    const at = this.#raw + this.#u16(httpRequest.methodOff);
    const b = this.#bytes;
    return b[at] === 72 && b[at + 1] === 69 && b[at + 2] === 65 && b[at + 3] === 68;
  }

  /** The method, as sent (`GET`, `POST` …). */
  getMethod(): string {
    return this.#text(this.#u16(httpRequest.methodOff), this.#u16(httpRequest.methodLen));
  }

  /** The request target, as sent (`/path?query`). */
  get url(): string {
    return this.#text(this.#u16(httpRequest.targetOff), this.#u16(httpRequest.targetLen));
  }

  /** `HTTP/1.1` or `HTTP/1.0`. */
  get protocol(): string {
    return this.#bytes[httpRequest.minorVersion] === 1 ? "HTTP/1.1" : "HTTP/1.0";
  }

  /** @internal Whether the connection stays open after this request. */
  get keepAlive(): boolean {
    return (this.#bytes[httpRequest.flags] & HttpFlag.keepAlive) !== 0;
  }

  /** @internal The value of the first header field named `name` (lower-case), or "". */
  field(name: string): string {
    const count = this.#u16(httpRequest.headerCount);
    for (let i = 0; i < count; i++) {
      const at = httpRequestSize + i * httpHeaderSize;
      if (this.#u16(at + httpHeader.nameLen) !== name.length) continue;
      if (this.#text(this.#u16(at + httpHeader.nameOff), name.length).toLowerCase() !== name) {
        continue;
      }
      return this.#text(this.#u16(at + httpHeader.valueOff), this.#u16(at + httpHeader.valueLen));
    }
    return "";
  }

  /**
   * The header fields as sent, in order: [name, value] pairs (names as the client wrote them,
   * or in lower case with `lower`).
   */
  fields(lower = false): [string, string][] {
    const out: [string, string][] = [];
    const count = this.#u16(httpRequest.headerCount);
    for (let i = 0; i < count; i++) {
      const at = httpRequestSize + i * httpHeaderSize;
      const name = this.#text(
        this.#u16(at + httpHeader.nameOff),
        this.#u16(at + httpHeader.nameLen),
      );
      out.push([
        lower ? name.toLowerCase() : name,
        this.#text(this.#u16(at + httpHeader.valueOff), this.#u16(at + httpHeader.valueLen)),
      ]);
    }
    return out;
  }

  /**
   * The header fields: lower-case names; a repeated field's values joined with ", " (`cookie`
   * with "; "), except `set-cookie`, an array.
   */
  get header(): Record<string, string | string[]> {
    if (this.#header) return this.#header;
    const out: Record<string, string | string[]> = {};
    const count = this.#u16(httpRequest.headerCount);
    for (let i = 0; i < count; i++) {
      const at = httpRequestSize + i * httpHeaderSize;
      const name = this.#text(
        this.#u16(at + httpHeader.nameOff),
        this.#u16(at + httpHeader.nameLen),
      )
        .toLowerCase();
      const value = this.#text(
        this.#u16(at + httpHeader.valueOff),
        this.#u16(at + httpHeader.valueLen),
      );
      const before = out[name];
      if (name === "set-cookie") {
        out[name] = [...((before as string[] | undefined) ?? []), value];
      } else if (before === undefined) {
        out[name] = value;
      } else {
        out[name] = `${before}${name === "cookie" ? "; " : ", "}${value}`;
      }
    }
    return this.#header = out;
  }

  /** The query string's parameters. */
  get get(): Record<string, string> {
    if (this.#get) return this.#get;
    const url = this.url;
    const q = url.indexOf("?");
    return this.#get = q < 0 ? {} : Object.fromEntries(new URLSearchParams(url.slice(q + 1)));
  }

  /** The cookies the request carries. */
  get cookie(): Record<string, string> {
    if (this.#cookie) return this.#cookie;
    const out: Record<string, string> = {};
    const header = this.header.cookie;
    if (typeof header === "string") {
      for (const pair of header.split(";")) {
        const eq = pair.indexOf("=");
        if (eq < 0) continue;
        const name = pair.slice(0, eq).trim();
        if (name === "" || name in out) continue;
        let value = pair.slice(eq + 1).trim();
        if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
          value = value.slice(1, -1);
        }
        try {
          out[name] = decodeURIComponent(value);
        } catch {
          out[name] = value;
        }
      }
    }
    return this.#cookie = out;
  }

  /** The fields of an `application/x-www-form-urlencoded` or `multipart/form-data` body. */
  get post(): Record<string, string> {
    if (this.#post) return this.#post;
    const type = String(this.header["content-type"] ?? "");
    if (/^application\/x-www-form-urlencoded/i.test(type)) {
      return this.#post = Object.fromEntries(new URLSearchParams(utf8.decode(this.getContent())));
    }
    this.#parseMultipart(type);
    return this.#post ??= {};
  }

  /** The files of a `multipart/form-data` body (each written to `uploadTmpDir`). */
  get files(): Record<string, UploadedFile> {
    if (this.#files) return this.#files;
    this.#parseMultipart(String(this.header["content-type"] ?? ""));
    return this.#files ??= {};
  }

  #parseMultipart(type: string) {
    const boundary = boundaryOf(type);
    if (!boundary || this.#files) return;
    const uploads = this.#uploads;
    const parsed = parseMultipart(
      this.getContent(),
      boundary,
      uploads?.tmpDir ?? "/tmp",
      uploads?.maxFileSize ?? 0,
    );
    this.#post = parsed.fields;
    this.#files = parsed.files;
    if (parsed.written.length > 0) uploads?.written(parsed.written);
  }

  /** Swoole's `$request->server`. */
  get server(): HttpRequestServer {
    if (this.#server) return this.#server;
    const url = this.url;
    const q = url.indexOf("?");
    const peer = this.#peer();
    const time = this.#time;
    return this.#server = {
      requestMethod: this.getMethod(),
      requestUri: q < 0 ? url : url.slice(0, q),
      pathInfo: q < 0 ? url : url.slice(0, q),
      queryString: q < 0 ? "" : url.slice(q + 1),
      serverProtocol: this.protocol,
      remoteAddr: peer.remoteAddr,
      remotePort: peer.remotePort,
      serverPort: peer.serverPort,
      requestTime: Math.floor(time),
      requestTimeFloat: time,
      masterTime: Math.floor(time),
    };
  }

  /** The body, decoded (chunked bodies are whole); empty when there is none. */
  getContent(): Uint8Array {
    const headLen = this.#u32(httpRequest.headLen);
    const bodyLen = this.#u32(httpRequest.bodyLen);
    const start = this.#raw + headLen;
    return this.#bytes.subarray(start, start + bodyLen);
  }

  /** The body as text (UTF-8). */
  rawContent(): string {
    return utf8.decode(this.getContent());
  }
}
