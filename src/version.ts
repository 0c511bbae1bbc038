/** This module's version (deno.json's "version"; a test keeps the two equal). */
export const version = "0.1.0";
