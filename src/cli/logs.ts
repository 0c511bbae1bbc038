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
  let path: string = found;
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
  // rename: poll its size, as tail -F does.
  for (;;) {
    at = await printFrom(file, at);
    const gone = pid > 0 && !alive(pid);
    const now: string | undefined = pid > 0 ? logFileOf(pid) : path;
    if (gone || now === undefined) break;
    if (now !== path) {
      // Rotated: what the old file got last, then the new one from its start.
      await printFrom(file, at);
      file.close();
      path = now;
      file = await Deno.open(path, { read: true });
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
  let start = size;
  let text = new Uint8Array(0);
  // Read back from the end until the text holds `count` line ends (the last one aside).
  while (start > 0) {
    const from = Math.max(0, start - chunk);
    const piece = new Uint8Array(start - from);
    await file.seek(from, Deno.SeekMode.Start);
    await readFully(file, piece);
    const joined = new Uint8Array(piece.length + text.length);
    joined.set(piece);
    joined.set(text, piece.length);
    text = joined;
    start = from;
    if (newlines(text.subarray(0, Math.max(0, text.length - 1))) >= count) break;
  }
  let begin = 0;
  let seen = 0;
  for (let i = text.length - 2; i >= 0; i--) {
    if (text[i] === 0x0a && ++seen === count) {
      begin = i + 1;
      break;
    }
  }
  await writeOut(text.subarray(begin));
  return size;
}

/** Prints what `file` holds from `at` on (all of it again when it was cut shorter). */
async function printFrom(file: Deno.FsFile, at: number): Promise<number> {
  const size = (await file.stat()).size;
  if (size < at) at = 0;
  if (size === at) return at;
  const bytes = new Uint8Array(size - at);
  await file.seek(at, Deno.SeekMode.Start);
  await readFully(file, bytes);
  await writeOut(bytes);
  return size;
}

async function readFully(file: Deno.FsFile, into: Uint8Array) {
  let got = 0;
  while (got < into.length) {
    const n = await file.read(into.subarray(got));
    if (n === null) break;
    got += n;
  }
}

function newlines(bytes: Uint8Array): number {
  let n = 0;
  for (const b of bytes) if (b === 0x0a) n++;
  return n;
}

async function writeOut(bytes: Uint8Array) {
  let done = 0;
  while (done < bytes.length) done += await Deno.stdout.write(bytes.subarray(done));
}
