/**
 * A real browser (headless Chromium, Debian's package): a page whose stylesheet, script and
 * image come from the reactor's static handler over kept-alive connections, then an upload
 * form the page submits with a file (the browser's own multipart encoding) to a worker.
 */
import assert from "node:assert/strict";
import { startFixture } from "./_helpers.ts";
import { chromiumArgs } from "./_browser.ts";

const script = new URL("./fixtures/http_server.ts", import.meta.url).pathname;

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>t</title>
<link rel="stylesheet" href="/static/site.css">
<script src="/static/site.js" defer></script>
</head><body>
<img id="logo" src="/static/logo.svg" alt="">
<p id="marker">styled</p>
<form id="upload" method="post" action="/upload" enctype="multipart/form-data">
<input type="hidden" name="checks" id="checks">
<input type="text" name="title" value="a täst">
<input type="file" name="doc" id="doc">
</form>
</body></html>`;

const css = "#marker { color: rgb(1, 2, 3); }";
// Once everything loaded: what the page saw goes with the form, and a file is attached to it.
const js = `addEventListener("load", () => {
  const img = document.getElementById("logo");
  const color = getComputedStyle(document.getElementById("marker")).color;
  document.getElementById("checks").value =
    "css=" + (color === "rgb(1, 2, 3)") + " img=" + (img.complete && img.naturalWidth === 4);
  const files = new DataTransfer();
  files.items.add(new File(["line one\\nline two\\n"], "notes.txt", { type: "text/plain" }));
  document.getElementById("doc").files = files.files;
  document.getElementById("upload").submit();
});`;
const svg =
  `<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>`;

Deno.test("chromium: a page's resources from the static handler over keep-alive, then an upload form", async () => {
  const root = await Deno.makeTempDir({ prefix: "zg-browser-" });
  const profile = await Deno.makeTempDir({ prefix: "zg-chromium-" });
  try {
    await Deno.mkdir(`${root}/static`);
    await Deno.writeTextFile(`${root}/index.html`, page);
    await Deno.writeTextFile(`${root}/static/site.css`, css);
    await Deno.writeTextFile(`${root}/static/site.js`, js);
    await Deno.writeTextFile(`${root}/static/logo.svg`, svg);
    await using server = await startFixture(
      {
        enableStaticHandler: true,
        documentRoot: root,
        staticHandlerLocations: ["/static", "/index.html"],
      },
      { script },
    );
    const out = await new Deno.Command("chromium", {
      args: [
        ...chromiumArgs(profile),
        "--virtual-time-budget=15000",
        "--timeout=60000",
        "--dump-dom",
        `http://127.0.0.1:${server.port}/index.html`,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
    const dom = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    // The upload's answer (JSON, which Chromium shows in a <pre>).
    const json = /<pre[^>]*>([\s\S]*?)<\/pre>/.exec(dom)?.[1];
    assert.ok(json, `the upload's answer is the page now: ${dom.slice(0, 500)}`);
    const result = JSON.parse(
      json.replaceAll("&amp;", "&").replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll(
        "&quot;",
        '"',
      ),
    );
    assert.equal(result.post.checks, "css=true img=true", "the stylesheet and the image loaded");
    assert.equal(result.post.title, "a täst");
    assert.equal(result.files.doc.name, "notes.txt");
    assert.equal(result.files.doc.type, "text/plain");
    assert.equal(result.files.doc.content, "line one\nline two\n");
    const statsResponse = await fetch(`http://127.0.0.1:${server.port}/stats`);
    const stats = await statsResponse.json();
    // The page, three resources and the upload (and a favicon), on fewer connections.
    assert.ok(stats.httpStaticCount >= 4, `static answers: ${stats.httpStaticCount}`);
    const browserRequests = stats.httpRequestCount - 1;
    const browserConnections = stats.acceptCount - 1;
    assert.ok(
      browserRequests > browserConnections,
      `${browserRequests} requests on ${browserConnections} connections: some kept alive`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
});
