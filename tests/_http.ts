/**
 * A raw HTTP/1.1 response reader over a TCP connection, for the tests that must see the wire
 * (pipelining, refusals, 100 Continue, interim and final responses). Clients nobody here wrote
 * (curl, fetch) check the rest.
 */

const decoder = new TextDecoder();

export interface RawResponse {
  status: number;
  version: string;
  headers: Map<string, string>;
  body: Uint8Array;
  text: string;
}

export class ResponseReader {
  #conn: Deno.Conn;
  #buffer: Uint8Array = new Uint8Array(0);
  #eof = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.#conn.read(chunk);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const next = new Uint8Array(this.#buffer.length + n);
    next.set(this.#buffer);
    next.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = next;
    return true;
  }

  async #line(): Promise<string> {
    while (true) {
      const at = this.#buffer.indexOf(10);
      if (at >= 0) {
        const line = decoder.decode(this.#buffer.subarray(0, at)).replace(/\r$/, "");
        this.#buffer = this.#buffer.subarray(at + 1);
        return line;
      }
      if (!await this.#fill()) throw new Error("EOF inside a response head");
    }
  }

  async #bytes(n: number): Promise<Uint8Array> {
    while (this.#buffer.length < n) {
      if (!await this.#fill()) {
        throw new Error(`EOF inside a body (${this.#buffer.length} of ${n})`);
      }
    }
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  /** The next response; `head`: the request was HEAD (no body whatever the headers say). */
  async next(head = false): Promise<RawResponse> {
    const statusLine = await this.#line();
    const match = /^(HTTP\/1\.[01]) (\d{3}) ?(.*)$/.exec(statusLine);
    if (!match) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`);
    const headers = new Map<string, string>();
    while (true) {
      const line = await this.#line();
      if (line === "") break;
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    const status = Number(match[2]);
    let body: Uint8Array = new Uint8Array(0);
    if (!head && status >= 200 && status !== 204 && status !== 304) {
      if (headers.get("transfer-encoding") === "chunked") {
        const parts: Uint8Array[] = [];
        while (true) {
          const size = parseInt(await this.#line(), 16);
          if (size === 0) {
            while ((await this.#line()) !== "");
            break;
          }
          parts.push(await this.#bytes(size));
          await this.#line();
        }
        body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let at = 0;
        for (const p of parts) {
          body.set(p, at);
          at += p.length;
        }
      } else if (headers.has("content-length")) {
        body = await this.#bytes(Number(headers.get("content-length")));
      } else {
        while (await this.#fill());
        body = this.#buffer;
        this.#buffer = new Uint8Array(0);
      }
    }
    return { status, version: match[1], headers, body, text: decoder.decode(body) };
  }

  /** Whether the server closed the connection (nothing more comes). */
  async closed(): Promise<boolean> {
    if (this.#buffer.length > 0) return false;
    return !await this.#fill();
  }
}

/** Writes `text` (or bytes) to the connection. */
export async function writeAll(conn: Deno.Conn, data: string | Uint8Array) {
  let bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}
