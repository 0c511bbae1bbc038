/**
 * A real browser (headless Chromium, Debian's package) with the WebSocket server: a page that
 * connects, subscribes (by its path), exchanges messages, asks for a reload, and goes on after
 * it over the same connection: in PROCESS mode the reactor threads keep it (with
 * permessage-deflate, which Chromium offers); in BASE mode the leaving worker hands the socket
 * to its successor. The page posts what it saw.
 */
import assert from "node:assert/strict";
import { startFixture, workersStarted } from "./_helpers.ts";
import { chromiumArgs } from "./_browser.ts";

const script = new URL("./fixtures/ws_server.ts", import.meta.url).pathname;

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>ws</title></head><body><script>
const log = [];
let done = false;
function connect(first) {
  const ws = new WebSocket("ws://" + location.host + "/join/page");
  ws.onopen = () => {
    log.push("open");
    log.push("extensions " + ws.extensions);
    ws.send(first ? "hello" : "after reload");
  };
  ws.onmessage = (e) => {
    const m = e.data;
    if (m.startsWith("joined")) return;
    log.push(m);
    if (m === "hello") ws.send("reload");
    else if (m === "reload true") ws.send("after reload");
    else if (m === "after reload") ws.send("pub:page:to the page");
    else if (m === "to the page" && !done) {
      done = true;
      fetch("/result", { method: "POST", body: JSON.stringify(log) });
    }
  };
  ws.onclose = (e) => {
    log.push("close " + e.code);
    if (!done) setTimeout(() => connect(false), 50);
  };
}
connect(true);
</script></body></html>`;

for (
  const [mode, options] of [
    // (With permessage-deflate, which Chromium offers.)
    [
      "PROCESS mode",
      { mode: "process", workerNum: 2, reactorNum: 1, websocketCompression: true },
    ],
    ["BASE mode", { workerNum: 2 }],
  ] as const
) {
  Deno.test(`chromium websocket (${mode}): a page connects, exchanges messages and goes on after a reload`, async () => {
    const profile = await Deno.makeTempDir({ prefix: "zg-chromium-" });
    await using server = await startFixture(options, { script, extra: { page } });
    await workersStarted(server, 2);
    const browser = new Deno.Command("chromium", {
      args: [
        ...chromiumArgs(profile),
        `http://127.0.0.1:${server.port}/page`,
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      const result = await server.waitFor((e) => e.event === "result", "the page's result");
      const log = JSON.parse(result.body as string) as string[];
      assert.equal(log[0], "open");
      if (mode === "BASE mode") {
        assert.equal(log[1], "extensions ", "no compression without the option");
      }
      assert.ok(log.includes("hello"), log.join(" | "));
      assert.ok(log.includes("reload true"), log.join(" | "));
      assert.equal(log.at(-1), "to the page", log.join(" | "));
      const closes = log.filter((m) => m.startsWith("close"));
      assert.deepEqual(closes, [], "the connection outlived the reload");
      assert.equal(log.filter((m) => m === "open").length, 1);
      if (mode === "PROCESS mode") {
        assert.ok(
          log.includes(
            "extensions permessage-deflate; server_no_context_takeover; client_no_context_takeover",
          ),
          log.join(" | "),
        );
      }
    } finally {
      browser.kill("SIGKILL");
      await browser.status;
      await browser.stderr.cancel();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  });
}
