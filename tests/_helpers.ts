/**
 * Test helpers: start the fixture server as a child process, wait for its readiness line,
 * read its event lines, and talk to it over real sockets.
 */
import { TextLineStream } from "./_lines.ts";

export interface Fixture extends AsyncDisposable {
  port: number;
  pid: number;
  child: Deno.ChildProcess;
  /** Waits (bounded) for the next event line matching `predicate`; earlier lines are kept. */
  waitFor(
    predicate: (event: Record<string, unknown>) => boolean,
    what: string,
  ): Promise<Record<string, unknown>>;
  /** Every event line seen so far. */
  events: Record<string, unknown>[];
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
  /** Waits (bounded) until stderr matches. */
  waitForStderr(pattern: RegExp): Promise<string>;
  /** Waits for the process to exit; returns its status. */
  exited(): Promise<Deno.CommandStatus>;
}

const fixturePath = new URL("./fixtures/server.ts", import.meta.url).pathname;
/** Generous: the suite must pass on a loaded 2-core machine. */
export const waitMs = 20_000;

export async function startFixture(
  options: Record<string, unknown> = {},
  { script = fixturePath, fdLimit, extra }: {
    script?: string;
    fdLimit?: number;
    /** Fixture settings that are not server options (its second argument). */
    extra?: Record<string, unknown>;
  } = {},
): Promise<Fixture> {
  const deno = [
    Deno.execPath(),
    "run",
    "--allow-all",
    script,
    JSON.stringify(options),
    ...(extra ? [JSON.stringify(extra)] : []),
  ];
  // With fdLimit, a shell lowers RLIMIT_NOFILE and then becomes the server.
  const argv = fdLimit === undefined
    ? deno
    : ["bash", "-c", `ulimit -n ${fdLimit} && exec "$@"`, "fixture", ...deno];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const events: Record<string, unknown>[] = [];
  const waiters: {
    predicate: (e: Record<string, unknown>) => boolean;
    resolve: (e: Record<string, unknown>) => void;
    from: number;
  }[] = [];
  let stderrText = "";
  const stderrDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderrText += chunk;
    }
  })();
  const stdoutDone = (async () => {
    for await (
      const line of child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
        new TextLineStream(),
      )
    ) {
      if (!line.startsWith("{")) continue;
      const event = JSON.parse(line);
      events.push(event);
      for (const w of [...waiters]) {
        if (w.predicate(event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    }
  })();
  const waitFor = (predicate: (e: Record<string, unknown>) => boolean, what: string) => {
    const seen = events.find(predicate);
    if (seen) return Promise.resolve(seen);
    return withTimeout(
      new Promise<Record<string, unknown>>((resolve) =>
        waiters.push({ predicate, resolve, from: events.length })
      ),
      `server event: ${what}\nstderr:\n${stderrText}`,
    );
  };
  let status: Deno.CommandStatus | undefined;
  const statusPromise = child.status.then((s) => (status = s));
  const start = await Promise.race([
    waitFor((e) => e.event === "start", "start"),
    statusPromise.then((s) => {
      throw new Error(`fixture exited (${s.code}) before it listened:\n${stderrText}`);
    }),
  ]);
  return {
    port: start.port as number,
    pid: start.pid as number,
    child,
    events,
    waitFor,
    stderr: () => stderrText,
    waitForStderr: async (pattern: RegExp) => {
      const deadline = Date.now() + waitMs;
      while (!pattern.test(stderrText)) {
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for stderr to match ${pattern}:\n${stderrText}`);
        }
        // Polls a buffer this process fills as the child writes; not a stand-in for readiness.
        await new Promise((r) => setTimeout(r, 20));
      }
      return stderrText;
    },
    exited: async () => {
      const s = await withTimeout(child.status, "the fixture to exit");
      await Promise.all([stdoutDone, stderrDone]);
      return s;
    },
    async [Symbol.asyncDispose]() {
      if (!status) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      await child.status;
      // A child of the fixture still holding its output (a worker that outlived its manager)
      // fails the test here rather than hanging it.
      await withTimeout(
        Promise.all([stdoutDone, stderrDone]).catch(() => {}),
        "the fixture's processes to let go of its output",
      );
    },
  };
}

export async function withTimeout<T>(promise: Promise<T>, what: string, ms = waitMs): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Writes all of `data` (`Conn.write` may take only part of it). */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}

/** Reads exactly `n` bytes (or until EOF); returns what arrived. */
export async function readBytes(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(out.subarray(got));
    if (r === null) return out.subarray(0, got);
    got += r;
  }
  return out;
}

/** Reads until EOF; returns everything. */
export async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(256 * 1024);
  while (true) {
    const r = await conn.read(buffer);
    if (r === null) break;
    chunks.push(buffer.slice(0, r));
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Reads one "\n"-terminated line. */
export async function readLine(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  const byte = new Uint8Array(4096);
  while (!text.includes("\n")) {
    const r = await conn.read(byte);
    if (r === null) break;
    text += decoder.decode(byte.subarray(0, r));
  }
  return text.trim();
}

/** Reads one "\n"-terminated line and not a byte more (what follows stays unread). */
export async function readLineOnly(conn: Deno.Conn): Promise<string> {
  const bytes: number[] = [];
  const byte = new Uint8Array(1);
  while (bytes.at(-1) !== 10) {
    if (await conn.read(byte) === null) break;
    bytes.push(byte[0]);
  }
  return new TextDecoder().decode(new Uint8Array(bytes)).trim();
}

/** Sends one fixture command and parses its one-line JSON reply. */
export async function command(conn: Deno.Conn, line: string): Promise<Record<string, unknown>> {
  await conn.write(new TextEncoder().encode(line.endsWith("\n") ? line : line + "\n"));
  return JSON.parse(await withTimeout(readLine(conn), `the reply to ${line.trim()}`));
}

export function connect(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port });
}

/** Both reactor drive modes, named: every behaviour test runs in each. */
export const reactorModes = [
  ["inline", { inlineReactor: true }],
  ["thread", { inlineReactor: false }],
] as const;

/** Waits for the `workerStart` of workers 0 to n-1; returns their events in id order. */
export function workersStarted(server: Fixture, n: number): Promise<Record<string, unknown>[]> {
  return Promise.all(
    Array.from(
      { length: n },
      (_, id) =>
        server.waitFor((e) => e.event === "workerStart" && e.workerId === id, `worker ${id}`),
    ),
  );
}

/** The three ways a tree can run, named: tests of a feature every one of them must have. */
export const treeModes = [
  ["one worker", {}],
  ["two BASE workers", { workerNum: 2 }],
  ["PROCESS mode", { mode: "process", workerNum: 2, reactorNum: 1 }],
] as const;

/**
 * Polls until `check` holds, bounded by `waitMs`: for state that has no event (another
 * connection's, the log's), not a stand-in for readiness.
 */
export async function until(what: string, check: () => boolean | Promise<boolean>) {
  const deadline = Date.now() + waitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGTERM to a spawned child with piped output; its exit status (bounded), pipes closed. */
export async function stopChild(child: Deno.ChildProcess): Promise<Deno.CommandStatus> {
  child.kill("SIGTERM");
  const status = await withTimeout(child.status, "the child's exit", waitMs);
  await child.stdout.cancel().catch(() => {});
  await child.stderr.cancel().catch(() => {});
  return status;
}
