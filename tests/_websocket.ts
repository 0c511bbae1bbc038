/**
 * WebSocket test clients: Deno's own `WebSocket` with an inbox, client frames built by hand
 * (masked or not), and a raw upgraded connection that reads the server's frames.
 */
import assert from "node:assert/strict";
import { withTimeout } from "./_helpers.ts";
import { writeAll } from "./_http.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A client of Deno's: opens, and collects what it receives. */
export async function client(port: number, path = "/", protocols?: string[]) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols);
  ws.binaryType = "arraybuffer";
  const inbox: (string | Uint8Array)[] = [];
  const waiters: (() => void)[] = [];
  ws.onmessage = (e) => {
    inbox.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
    waiters.splice(0).forEach((w) => w());
  };
  const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("the WebSocket failed to open"));
    }),
    "open",
  );
  const next = async () => {
    while (inbox.length === 0) {
      await withTimeout(new Promise<void>((r) => waiters.push(r)), "a message");
    }
    return inbox.shift()!;
  };
  return { ws, next, closed };
}

/** A client frame, masked (or not, to test the refusal). */
export function frame(
  opcode: number,
  payload: Uint8Array | string,
  fin = true,
  masked = true,
  rsv = 0,
) {
  const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
  const n = bytes.length;
  const head = n < 126 ? 2 : n <= 0xffff ? 4 : 10;
  const out = new Uint8Array(head + (masked ? 4 : 0) + n);
  out[0] = (fin ? 0x80 : 0) | rsv | opcode;
  const maskBit = masked ? 0x80 : 0;
  if (head === 2) out[1] = maskBit | n;
  else if (head === 4) {
    out[1] = maskBit | 126;
    new DataView(out.buffer).setUint16(2, n);
  } else {
    out[1] = maskBit | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
  }
  const mask = [0x12, 0x34, 0x56, 0x78];
  if (masked) out.set(mask, head);
  const at = head + (masked ? 4 : 0);
  for (let i = 0; i < n; i++) out[at + i] = masked ? bytes[i] ^ mask[i % 4] : bytes[i];
  return out;
}

export const upgradeRequest = (extra = "", path = "/") =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

/** A raw connection, upgraded; `read` gives the server's frames. */
export async function rawClient(port: number, path = "/", headers = "") {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  await writeAll(conn, upgradeRequest(headers, path));
  let buffer = new Uint8Array(0);
  const fill = async () => {
    const chunk = new Uint8Array(65536);
    const n = await withTimeout(conn.read(chunk), "server bytes");
    if (n === null) return false;
    const next = new Uint8Array(buffer.length + n);
    next.set(buffer);
    next.set(chunk.subarray(0, n), buffer.length);
    buffer = next;
    return true;
  };
  // The 101.
  while (decoder.decode(buffer).indexOf("\r\n\r\n") < 0) assert.ok(await fill(), "EOF before 101");
  const end = decoder.decode(buffer).indexOf("\r\n\r\n") + 4;
  const head = decoder.decode(buffer.subarray(0, end));
  assert.match(head, /^HTTP\/1\.1 101 /);
  buffer = buffer.subarray(end);
  /** The server's next frame (`rsv1`: compressed), or null at EOF. */
  const read = async (): Promise<
    { opcode: number; fin: boolean; rsv1: boolean; payload: Uint8Array } | null
  > => {
    while (true) {
      if (buffer.length >= 2) {
        let n = buffer[1] & 0x7f;
        let at = 2;
        if (n === 126 && buffer.length >= 4) {
          n = new DataView(buffer.buffer, buffer.byteOffset).getUint16(2);
          at = 4;
        } else if (n === 127 && buffer.length >= 10) {
          n = Number(new DataView(buffer.buffer, buffer.byteOffset).getBigUint64(2));
          at = 10;
        }
        if ((buffer[1] & 0x7f) < 126 || at > 2) {
          if (buffer.length >= at + n) {
            const out = {
              opcode: buffer[0] & 0x0f,
              fin: (buffer[0] & 0x80) !== 0,
              rsv1: (buffer[0] & 0x40) !== 0,
              payload: buffer.slice(at, at + n),
            };
            buffer = buffer.subarray(at + n);
            return out;
          }
        }
      }
      if (!await fill()) return null;
    }
  };
  /** The Close the server sent (its code), then EOF. */
  const closeCode = async () => {
    while (true) {
      const f = await read();
      assert.ok(f, "EOF without a Close frame");
      if (f.opcode !== 8) continue;
      assert.equal(await read(), null, "the connection ends after the Close");
      return f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
    }
  };
  return { conn, read, closeCode, head };
}
