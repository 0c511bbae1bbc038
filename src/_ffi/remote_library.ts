/**
 * The core of a module loaded from a registry (`jsr:@ziggurat/server`) or any other non-`file:`
 * URL: the published module carries a libziggurat for each supported target beside its code
 * (dist/<target>/libziggurat.so, built by scripts/dist.ts) and their SHA-256 in
 * dist/checksums.json, which is imported as a module of the package (so the registry's own
 * integrity checks cover it). The library is fetched once, checked against that checksum (a
 * mismatch is refused and never loaded), and cached per version in Deno's cache directory
 * (`DENO_DIR`, else `$XDG_CACHE_HOME/deno`, else `~/.cache/deno`), where every later load
 * checks it again.
 * @module
 */

import { ZigguratError } from "../errors.ts";
import { version } from "../version.ts";
import { hostTarget } from "./targets.ts";

/** The path of a checked copy of the core for this machine, fetched and cached if need be. */
export async function remoteLibrary(moduleUrl: string): Promise<string> {
  const target = hostTarget();
  const dist = new URL("../../dist/", moduleUrl);
  const checksumsUrl = new URL("checksums.json", dist).href;
  let checksums: Record<string, string>;
  try {
    checksums = (await import(checksumsUrl, { with: { type: "json" } })).default;
  } catch (error) {
    throw new ZigguratError(
      `Cannot read the Ziggurat core's checksums at ${checksumsUrl}: ${
        (error as Error).message
      }. ` +
        `A published module carries them (deno task dist); or point ZIGGURAT_LIB at a built libziggurat.so.`,
      "notLoaded",
      0,
      { cause: error },
    );
  }
  const expected = checksums[target];
  if (typeof expected !== "string") {
    throw new ZigguratError(
      `No Ziggurat core for ${target}: this module carries one for ${
        Object.keys(checksums).join(", ")
      } (the core is Linux only: it is built on epoll). Build one from a checkout with ` +
        `"deno task build" and point ZIGGURAT_LIB at it.`,
      "notLoaded",
    );
  }
  const dir = `${cacheDir()}/ziggurat/${version}/${target}`;
  const path = `${dir}/libziggurat-${expected.slice(0, 16)}.so`;
  const cached = await readIfPresent(path);
  if (cached && await sha256(cached) === expected) return path;
  const url = new URL(`${target}/libziggurat.so`, dist);
  let bytes: Uint8Array;
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    throw new ZigguratError(
      `Cannot fetch the Ziggurat core from ${url}: ${(error as Error).message}`,
      "notLoaded",
      0,
      { cause: error },
    );
  }
  const actual = await sha256(bytes);
  if (actual !== expected) {
    throw new ZigguratError(
      `The Ziggurat core fetched from ${url} does not match its checksum (sha256 ${actual}, ` +
        `expected ${expected}); it was not loaded`,
      "checksumMismatch",
    );
  }
  await store(dir, path, bytes);
  return path;
}

/** Deno's cache directory, as Deno finds it on Linux. */
function cacheDir(): string {
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) return denoDir;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/deno`;
  const home = Deno.env.get("HOME");
  if (!home) {
    throw new ZigguratError(
      "Cannot cache the Ziggurat core: neither DENO_DIR, XDG_CACHE_HOME nor HOME is set",
      "notLoaded",
    );
  }
  return `${home}/.cache/deno`;
}

async function readIfPresent(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Writes the library under a new name of its own (created, never opened through a symbolic
 * link left there), then renames it into place: a reader sees the whole file or none.
 */
async function store(dir: string, path: string, bytes: Uint8Array) {
  await Deno.mkdir(dir, { recursive: true });
  const temporary = `${dir}/.libziggurat-${crypto.randomUUID()}.tmp`;
  const file = await Deno.open(temporary, { write: true, createNew: true, mode: 0o755 });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
  } finally {
    file.close();
  }
  await Deno.rename(temporary, path);
}
