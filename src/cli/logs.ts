/**
 * `ziggurat logs`: the last lines of a server's log file (its `logFile`, found as its stderr),
 * and with `--follow` what it writes next, across a rotation, until the server exits.
 * @module
 */

import { Failure, flags, integer, pause, serverFlags, serverFlagsHelp, serverPid } from "./args.ts";
import { alive, logFileOf } from "./processes.ts";

export const logsUsage =
  `Usage: ziggurat logs [--lines N] [-f] [--pid-file F | --pid P | --log-file F]

Prints the last lines of the running server's log file (the server must log to a file: start it
with --log-file), or of the log file given. With --follow it goes on printing what is written,
following a rotation (SIGRTMIN reopens the file), until the server exits or Ctrl-C.

Options:
  --lines N     How many of the last lines (default 20; 0 for none)
  -f, --follow  Keep printing new lines
${serverFlagsHelp}
  --log-file F  This log file (no server needed)
  -h, --help    Show this help`;

const chunk = 64 * 1024;

export async function logs(args: string[]): Promise<number> {
  const { values } = flags(args, {
    lines: { type: "string", default: "20" },
    follow: { type: "boolean", short: "f", default: false },
    ...serverFlags,
    "log-file": { type: "string" },
  }, logsUsage);
  if (values.help) {
    console.log(logsUsage);
    return 0;
  }
  const lines = integer("lines", values.lines, 0, 1_000_000);
  const pid = values["log-file"] === undefined ? serverPid(values) : -1;
  const found = pid > 0 ? logFileOf(pid) : values["log-file"] as string;
  if (found === undefined) {
    throw new Failure(
      `pid ${pid} logs to its stderr, not to a file: start it with --log-file (or logFile)`,
      1,
    );
  }
  const path: string = found;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    throw new Failure(`cannot read ${path}: ${(error as Error).message}`, 1);
  }
  let at = await printTail(file, lines);
  if (!values.follow) {
    file.close();
    return 0;
  }
  // A log file has no "written" event to wait on across processes that also survives a
  // rename: poll, as tail -F does. The name is followed, not the file: once another file has
  // the name (the server reopened it after a rotation), the old one is read to its end and the
  // new one from its start; while nothing has the name yet, the old one is read on.
  let inode = (await file.stat()).ino;
  for (;;) {
    at = await printFrom(file, at);
    if (pid > 0 && !alive(pid)) break;
    let named: Deno.FileInfo | undefined;
    try {
      named = await Deno.stat(path);
    } catch {
      named = undefined;
    }
    if (named !== undefined && named.ino !== inode) {
      await printFrom(file, at);
      file.close();
      try {
        file = await Deno.open(path, { read: true });
      } catch {
        // (Renamed again meanwhile: the next turn finds what has the name then.)
        file = await Deno.open("/dev/null", { read: true });
      }
      inode = (await file.stat()).ino;
      at = 0;
      continue;
    }
    await pause(200);
  }
  await printFrom(file, at);
  file.close();
  return 0;
}

/** Prints the last `count` lines of `file`; returns where the file ends. */
async function printTail(file: Deno.FsFile, count: number): Promise<number> {
  const size = (await file.stat()).size;
  if (count === 0) return size;
  // Chunks read back from the end, last first, until they hold `count` line ends before the
  // file's last byte; each chunk's line ends are counted once.
  const chunks: Uint8Array[] = [];
  let start = size;
  let seen = 0;
  let begin = -1;
  while (start > 0 && begin < 0) {
    const from = Math.max(0, start - chunk);
    const piece = new Uint8Array(start - from);
    await file.seek(from, Deno.SeekMode.Start);
    await readFully(file, piece);
    chunks.unshift(piece);
    // (The file's last byte, a line's own end, does not count.)
    const last = start === size ? piece.length - 2 : piece.length - 1;
    for (let i = last; i >= 0; i--) {
      if (piece[i] === 0x0a && ++seen === count) {
        begin = i + 1;
        break;
      }
    }
    start = from;
  }
  if (begin > 0) chunks[0] = chunks[0].subarray(begin);
  for (const piece of chunks) await writeOut(piece);
  return size;
}

/** Prints what `file` holds from `at` on (all of it again when it was cut shorter). */
async function printFrom(file: Deno.FsFile, at: number): Promise<number> {
  const size = (await file.stat()).size;
  if (size < at) at = 0;
  const piece = new Uint8Array(chunk);
  await file.seek(at, Deno.SeekMode.Start);
  while (at < size) {
    const n = await file.read(piece.subarray(0, Math.min(chunk, size - at)));
    if (n === null) break;
    await writeOut(piece.subarray(0, n));
    at += n;
  }
  return at;
}

async function readFully(file: Deno.FsFile, into: Uint8Array) {
  let got = 0;
  while (got < into.length) {
    const n = await file.read(into.subarray(got));
    if (n === null) break;
    got += n;
  }
}

async function writeOut(bytes: Uint8Array) {
  let done = 0;
  while (done < bytes.length) done += await Deno.stdout.write(bytes.subarray(done));
}
