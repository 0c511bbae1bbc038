/** Running the command line as a user does, for the CLI tests. */
import { withTimeout } from "./_helpers.ts";

/** cli.ts's path. */
export const cli = new URL("../cli.ts", import.meta.url).pathname;

/**
 * The environment of a CLI run: a relative `ZIGGURAT_LIB` (the test task sets one) made absolute,
 * since the command runs in another directory.
 */
export function cliEnv(): Record<string, string> {
  const lib = Deno.env.get("ZIGGURAT_LIB");
  if (lib === undefined || lib.startsWith("/")) return {};
  return { ZIGGURAT_LIB: `${Deno.cwd()}/${lib}` };
}

/** Runs `ziggurat ARGS` (in `cwd`, default this one) to its end: exit code and output. */
export async function runCli(
  args: string[],
  cwd?: string,
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const output = await withTimeout(
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, ...args],
      cwd,
      env: { ...cliEnv(), ...env },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output(),
    `ziggurat ${args.join(" ")}`,
  );
  const decoder = new TextDecoder();
  return {
    code: output.code,
    out: decoder.decode(output.stdout),
    err: decoder.decode(output.stderr),
  };
}

/** `pid` runs (not gone, not a zombie). */
export function alive(pid: number): boolean {
  try {
    return !Deno.readTextFileSync(`/proc/${pid}/stat`).includes(") Z ");
  } catch {
    return false;
  }
}
