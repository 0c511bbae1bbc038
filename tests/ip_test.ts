/** IP address texts: IPv6 written as RFC 5952 says (its section 4 examples). */
import assert from "node:assert/strict";
import { ipv6, parseIp } from "../src/ip.ts";

Deno.test("ip: IPv6 text compresses the longest zero run, the first of equal ones, never one zero group", () => {
  for (
    const [given, written] of [
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
      ["0:0:1:0:0:0:0:1", "0:0:1::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["0:0:0:0:0:0:0:0", "::"],
      ["0:0:0:0:0:0:0:1", "::1"],
      ["fe80:0:0:0:0:0:0:0", "fe80::"],
      ["2001:DB8:0:0:0:0:0:5", "2001:db8::5"],
    ]
  ) {
    assert.equal(ipv6(parseIp(given)!), written, given);
  }
});
