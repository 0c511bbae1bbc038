/**
 * The module as a registry user gets it: the file set `deno publish` uploads, served by a
 * static HTTP server on 127.0.0.1, imported from there by a fresh Deno with a clean cache (no
 * checkout, no ZIGGURAT_LIB). The core published with it is fetched once, checked against its
 * checksum and cached; a library that does not match is refused; several workers re-run the
 * URL. Needs dist/ (`deno task dist`, a step of `deno task test`).
 */
import assert from "node:assert/strict";
import { stopChild, withTimeout } from "./_helpers.ts";
import { TextLineStream } from "./_lines.ts";
import { hostTarget } from "../src/_ffi/targets.ts";

const root = new URL("../", import.meta.url).pathname;

/** The files `deno publish` would upload, as it lists them. */
async function publishedFiles(): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const files = [...text.matchAll(/file:\/\/(\S+) \(/g)].map((m) => m[1]);
  assert.ok(files.length > 10, text);
  return files.map((path) => path.slice(root.length));
}

const types: Record<string, string> = {
  ts: "application/typescript",
  json: "application/json",
  so: "application/octet-stream",
};

/** A static server of `dir`; `tamper` flips a byte of every library it serves. */
function staticServer(dir: string) {
  const hits = new Map<string, number>();
  let tamper = false;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    hits.set(path, (hits.get(path) ?? 0) + 1);
    try {
      const bytes = await Deno.readFile(`${dir}${path}`);
      if (tamper && path.endsWith(".so")) bytes[bytes.length >> 1] ^= 0xff;
      const type = types[path.split(".").pop()!] ?? "text/plain";
      return new Response(bytes, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    hits,
    setTamper: (on: boolean) => tamper = on,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

const app = `import { Server } from "./mod.ts";
const server = new Server({
  host: "127.0.0.1",
  port: 0,
  workerNum: Number(Deno.args[0] ?? "1"),
  logLevel: "warning",
});
server.on("start", (s) => console.log("listening " + s.port));
server.on("receive", (s, id, _r, data) => s.send(id, data));
await server.start();
`;

/** Runs the served app in a fresh process whose cache is `denoDir`. */
function runApp(url: string, denoDir: string, workers = 1) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${url}/app.ts`, String(workers)],
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: denoDir, DENO_DIR: denoDir, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
}

async function echoes(child: Deno.ChildProcess): Promise<void> {
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TextLineStream(),
  ).getReader();
  const line = (await withTimeout(lines.read(), "the served app's listening line")).value ?? "";
  const match = /^listening (\d+)$/.exec(line);
  assert.ok(match, line);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(match[1]) });
  await conn.write(new TextEncoder().encode("over the registry"));
  const buffer = new Uint8Array(64);
  const n = await withTimeout(conn.read(buffer), "the echo");
  assert.equal(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), "over the registry");
  conn.close();
  lines.releaseLock();
}

Deno.test("registry: the published file set, imported over HTTP into a clean cache, fetches, checks and caches its core; workers re-run the URL; a tampered core is refused", async () => {
  const target = hostTarget();
  await Deno.stat(`${root}dist/${target}/libziggurat.so`).catch(() => {
    throw new Error("dist/ is missing: run `deno task dist` (a step of `deno task test`)");
  });
  const served = await Deno.makeTempDir({ prefix: "zg-registry-" });
  const caches: string[] = [];
  const freshCache = async () => {
    caches.push(await Deno.makeTempDir({ prefix: "zg-deno-dir-" }));
    return caches.at(-1)!;
  };
  try {
    for (const file of await publishedFiles()) {
      await Deno.mkdir(`${served}/${file.split("/").slice(0, -1).join("/")}`, { recursive: true });
      await Deno.copyFile(`${root}${file}`, `${served}/${file}`);
    }
    await Deno.writeTextFile(`${served}/app.ts`, app);
    await using web = staticServer(served);
    const library = `/dist/${target}/libziggurat.so`;

    // A clean cache, two workers: the core is fetched once for the whole tree.
    const cache = await freshCache();
    const first = runApp(web.url, cache, 2);
    await echoes(first);
    assert.equal((await stopChild(first)).code, 0);
    assert.equal(web.hits.get(library), 1, "fetched once");
    const version = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).version;
    const cachedDir = `${cache}/ziggurat/${version}/${target}`;
    const cached = [...Deno.readDirSync(cachedDir)].map((e) => e.name);
    assert.equal(cached.length, 1, cached.join(", "));
    assert.match(cached[0], /^libziggurat-[0-9a-f]{16}\.so$/);

    // The same cache: nothing fetched again.
    const second = runApp(web.url, cache);
    await echoes(second);
    assert.equal((await stopChild(second)).code, 0);
    assert.equal(web.hits.get(library), 1, "taken from the cache");

    // A cached copy that no longer matches is fetched again.
    const copy = `${cachedDir}/${cached[0]}`;
    const bytes = await Deno.readFile(copy);
    bytes[100] ^= 0xff;
    await Deno.writeFile(copy, bytes);
    const third = runApp(web.url, cache);
    await echoes(third);
    assert.equal((await stopChild(third)).code, 0);
    assert.equal(web.hits.get(library), 2, "a changed cached copy is replaced");

    // The CLI installed from the URL (as `deno install -g -A -n ziggurat jsr:@ziggurat/server/cli`):
    // its workers re-run the installed command.
    const bin = await freshCache();
    const install = await new Deno.Command(Deno.execPath(), {
      args: ["install", "-g", "-A", "-n", "ziggurat", "--root", bin, `${web.url}/cli.ts`],
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") ?? "", DENO_DIR: cache, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
    const cli = new Deno.Command(`${bin}/bin/ziggurat`, {
      args: ["start", "--port", "0", "--workers", "2"],
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") ?? "", HOME: cache, DENO_DIR: cache, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    const lines = cli.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream())
      .getReader();
    const banner = (await withTimeout(lines.read(), "the installed CLI's banner")).value ?? "";
    assert.match(banner, /listening on 127\.0\.0\.1:\d+ \(pid \d+, 2 worker\(s\)\)/);
    lines.releaseLock();
    assert.equal((await stopChild(cli)).code, 0);

    // A core that does not match its checksum is refused, never loaded.
    web.setTamper(true);
    const refused = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${web.url}/app.ts`],
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") ?? "", DENO_DIR: await freshCache(), NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    const err = new TextDecoder().decode(refused.stderr);
    assert.notEqual(refused.code, 0);
    assert.match(err, /does not match its checksum/, err);
  } finally {
    for (const dir of [served, ...caches]) await Deno.remove(dir, { recursive: true });
  }
});
