/**
 * `ziggurat stats`: a running server's `stats()` and processes (src/cli/report.ts), as a table
 * or as JSON.
 * @module
 */

import { Failure, flags, serverFlags, serverFlagsHelp, serverPid } from "./args.ts";
import { serverReport } from "./report.ts";

export const statsUsage = `Usage: ziggurat stats [--json] [--pid-file F | --pid P]

Prints the running server's stats() and its processes (status, uptime), read from its shared
memory: a tree's, or a one-worker server's (its minFd and maxFd read 0 there).

Options:
  --json        Print JSON instead of a table
${serverFlagsHelp}
  -h, --help    Show this help`;

export function stats(args: string[]): number {
  const { values } = flags(
    args,
    { json: { type: "boolean", default: false }, ...serverFlags },
    statsUsage,
  );
  if (values.help) {
    console.log(statsUsage);
    return 0;
  }
  const pid = serverPid(values);
  const report = serverReport(pid);
  if (!report) throw new Failure(`pid ${pid} shares no memory to read (has it started yet?)`, 1);
  if (values.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  const fields = report.stats as unknown as Record<string, number>;
  const names = Object.keys(fields);
  const width = Math.max(...names.map((n) => n.length));
  console.log(`Ziggurat server, master pid ${pid}, up ${report.uptime}\n`);
  for (const name of names) console.log(`  ${name.padEnd(width)}  ${fields[name]}`);
  console.log(
    `\n  ${"id".padStart(4)}  ${"type".padEnd(7)}  ${"pid".padStart(8)}  ${
      "status".padEnd(11)
    }  uptime`,
  );
  for (const p of report.processes) {
    console.log(
      `  ${String(p.id).padStart(4)}  ${p.type.padEnd(7)}  ${String(p.pid).padStart(8)}  ${
        p.status.padEnd(11)
      }  ${p.uptime ?? "-"}`,
    );
  }
  return 0;
}
