/**
 * Headless Chromium (Debian's package, installed by scripts/test-tools.sh): the flags every
 * browser test runs it with, a profile of its own in `profile`.
 */
export function chromiumArgs(profile: string): string[] {
  return [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    `--user-data-dir=${profile}`,
  ];
}
