/**
 * `ziggurat drain [--undo]`: a running server taken out of a load balancer's rotation (its
 * admin listener's `/health` fails) while it goes on serving, or put back, by a signal to its
 * master (SIGRTMIN+1, SIGRTMIN+2).
 * @module
 */

import { Signal } from "../operations/signals.ts";
import { Failure, flags, serverFlags, serverFlagsHelp, serverPid } from "./args.ts";
import { library, unwrap } from "../_ffi/library.ts";

export const drainUsage = `Usage: ziggurat drain [--undo] [--pid-file F | --pid P]

Takes the server out of a load balancer's rotation without stopping it: its admin listener's
GET /health (adminServer) answers 503 {"status":"draining"} from now on, while it accepts and
serves as before. --undo puts it back (200 again). Stop it later with "ziggurat stop".

Options:
  --undo        Back in rotation
${serverFlagsHelp}
  -h, --help    Show this help`;

export function drain(args: string[]): number {
  const { values } = flags(args, {
    ...serverFlags,
    undo: { type: "boolean", default: false },
  }, drainUsage);
  if (values.help) {
    console.log(drainUsage);
    return 0;
  }
  const pid = serverPid(values);
  // (Real-time signals go through the core: Deno's kill takes named ones only.)
  try {
    unwrap(library().zg_kill(pid, values.undo ? Signal.undrain : Signal.drain), "signal");
  } catch (error) {
    throw new Failure(`cannot signal pid ${pid}: ${(error as Error).message}`, 1);
  }
  console.log(
    values.undo
      ? `back in rotation: pid ${pid}'s health check passes again`
      : `drained: pid ${pid}'s health check fails from now on; it serves on (undo: ziggurat drain --undo)`,
  );
  return 0;
}
