/**
 * Opens libziggurat once and turns its statuses into errors.
 *
 * The library is looked up in this order: the `ZIGGURAT_LIB` environment variable (a path to
 * libziggurat.so); for a module loaded from a registry or another non-`file:` URL, the core
 * published with it, fetched, checked and cached (remote_library.ts: before anything else
 * runs, as this module loads); in a checkout, core/zig-out/lib/libziggurat.so beside this
 * module (what `deno task build` produces).
 * @module
 */

import { symbols } from "./symbols.ts";
import { remoteLibrary } from "./remote_library.ts";
import { layout, Status } from "./layout.ts";
import { errnoName, ZigguratError } from "../errors.ts";

export type Library = Deno.DynamicLibrary<typeof symbols>["symbols"];

let opened: Deno.DynamicLibrary<typeof symbols> | undefined;

const remote = new URL(import.meta.url).protocol !== "file:" &&
  Deno.env.get("ZIGGURAT_LIB") === undefined;
const fetched = remote ? await remoteLibrary(import.meta.url) : undefined;

function defaultPath(): string {
  return fetched ?? new URL("../../core/zig-out/lib/libziggurat.so", import.meta.url).pathname;
}

/** The library's symbols, opening it on first use. */
export function library(): Library {
  if (opened) return opened.symbols;
  const path = Deno.env.get("ZIGGURAT_LIB") ?? defaultPath();
  try {
    opened = Deno.dlopen(path, symbols);
  } catch (error) {
    throw new ZigguratError(
      `Cannot load the Ziggurat core from "${path}": ${(error as Error).message}. ` +
        `Build it with "deno task build" (needs Zig 0.15.2; scripts/deno installs it), ` +
        `or point ZIGGURAT_LIB at a built libziggurat.so.`,
      "notLoaded",
      0,
      { cause: error },
    );
  }
  checkLayout(opened.symbols);
  return opened.symbols;
}

/** The layout numbers the library was built with, in `zg_layout` order. */
export function nativeLayout(lib: Library = library()): number[] {
  const out = new Uint32Array(Object.keys(layout).length);
  unwrap(lib.zg_layout(out), "read the core's layout");
  return Array.from(out);
}

/** The version of the C API this module speaks (core/src/root.zig `version`). */
const coreVersion = 5;

function checkLayout(lib: Library) {
  if (lib.zg_version() !== coreVersion) {
    throw new ZigguratError(
      `The Ziggurat core does not match this module: its C API is version ${lib.zg_version()}, ` +
        `this module's ${coreVersion}. Rebuild the core with "deno task build".`,
      "layoutMismatch",
    );
  }
  const native = nativeLayout(lib);
  const mine = Object.values(layout);
  const names = Object.keys(layout);
  for (let i = 0; i < mine.length; i++) {
    if (native[i] !== mine[i]) {
      throw new ZigguratError(
        `The Ziggurat core does not match this module: ${names[i]} is ${native[i]} in the ` +
          `library and ${mine[i]} here. Rebuild the core with "deno task build".`,
        "layoutMismatch",
      );
    }
  }
}

const statusNames = Object.fromEntries(Object.entries(Status).map(([k, v]) => [v, k]));

/**
 * Throws the error a status stands for; returns on `ok`. `what` completes the sentence
 * "Cannot …", e.g. `listen on "127.0.0.1:9501"`.
 */
export function unwrap(status: number, what: string): void {
  if (status === Status.ok) return;
  const errno = status === Status.osError || status === Status.addrInUse ||
      status === Status.addrNotAvailable || status === Status.permissionDenied
    ? library().zg_last_errno()
    : 0;
  throw toError(status, errno, what);
}

function toError(status: number, errno: number, what: string): Error {
  const name = statusNames[status] ?? `status ${status}`;
  switch (status) {
    case Status.addrInUse:
      return new Deno.errors.AddrInUse(`Cannot ${what}: address already in use`);
    case Status.addrNotAvailable:
      return new Deno.errors.AddrNotAvailable(`Cannot ${what}: address not available`);
    case Status.permissionDenied:
      return new Deno.errors.PermissionDenied(`Cannot ${what}: permission denied`);
    case Status.invalidArgument:
      return new TypeError(`Cannot ${what}: invalid argument`);
    case Status.notFound:
      return new Deno.errors.NotFound(`Cannot ${what}: not found`);
    case Status.badState:
      return new Deno.errors.BadResource(
        `Cannot ${what}: the server is not in a state that allows it`,
      );
    case Status.outOfMemory:
      return new ZigguratError(`Cannot ${what}: out of memory`, name);
    case Status.limitReached:
      return new ZigguratError(`Cannot ${what}: a configured limit was reached`, name);
    default:
      return new ZigguratError(`Cannot ${what}: ${errnoName(errno)}`, name, errno);
  }
}
