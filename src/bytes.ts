/**
 * Byte helpers shared by the modules that put messages back together or build them (HTTP
 * responses, compressed streams).
 * @module
 */

/** One array holding `parts` back to back. */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
