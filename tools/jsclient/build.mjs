// Bundles src/client.js (matrix-js-sdk and all) into dist/client.js for the browser.
import { build } from "esbuild";

await build({
	entryPoints: ["src/client.js"],
	bundle: true,
	format: "iife",
	platform: "browser",
	target: "chrome120",
	outfile: "dist/client.js",
	logLevel: "warning",
	define: { "process.env.NODE_ENV": '"production"', global: "globalThis" },
});
