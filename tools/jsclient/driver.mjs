// Runs the Matrix client harness (dist/client.js) in headless Chromium and prints one JSON object
// per line on stdout for every event: login, synced, protocols, lookup, room, joined, call, state,
// remote_stream, audio, hangup, done, error, warning, timeout.
//
// Usage: node driver.mjs '<options JSON>'   (or: node driver.mjs @options.json)
// Options: homeserver, accessToken, userId, deviceId, mode ("call" | "answer"), number (looked up
// via third-party protocols), invitee (skip the lookup), roomId (skip creating a DM),
// hangupAfterSeconds (after connected; 0 = never), timeoutSeconds (default 60), audioWAV (fake
// microphone; 16-bit WAV), freqs (Hz to report tone ratios for), chromium (default /usr/bin/chromium),
// chromiumArgs (extra flags), answerDelayMs, joinTimeoutMs.
// Commands on stdin, one per line: "hangup", "quit".
// Exit status: 0 after the call ended ("done"), 1 after a fatal error, 2 on timeout.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const arg = process.argv[2] || "{}";
const opts = JSON.parse(arg.startsWith("@") ? readFileSync(arg.slice(1), "utf8") : arg);
const timeoutMs = (opts.timeoutSeconds || 60) * 1000;

function emit(ev) {
	process.stdout.write(JSON.stringify(ev) + "\n");
}

const bundle = readFileSync(join(here, "dist", "client.js"));
const server = createServer((req, res) => {
	if (req.url === "/client.js") {
		res.writeHead(200, { "Content-Type": "text/javascript" });
		res.end(bundle);
		return;
	}
	res.writeHead(200, { "Content-Type": "text/html" });
	res.end('<!doctype html><html><head><meta charset="utf-8"><title>gateway jsclient</title><script src="/client.js"></script></head><body></body></html>');
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const pageURL = `http://127.0.0.1:${server.address().port}/`;

const args = [
	"--no-sandbox",
	"--headless",
	"--disable-gpu",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--no-first-run",
	"--disable-quic",
	"--use-fake-ui-for-media-stream",
	"--use-fake-device-for-media-stream",
	"--allow-loopback-in-peer-connection",
	"--autoplay-policy=no-user-gesture-required",
	...(opts.audioWAV ? [`--use-file-for-fake-audio-capture=${opts.audioWAV}`] : []),
	...(opts.chromiumArgs || []),
];

let browser;
let exitCode = null;
async function finish(code) {
	if (exitCode !== null) return;
	exitCode = code;
	try {
		await browser?.close();
	} catch {}
	server.close();
	process.exit(code);
}

const fatalStages = new Set(["login", "sync", "protocols", "lookup", "create_room", "join", "place"]);
const timer = setTimeout(() => {
	emit({ event: "timeout", t: Date.now() / 1000, after_seconds: timeoutMs / 1000 });
	finish(2);
}, timeoutMs);

try {
	browser = await chromium.launch({ executablePath: opts.chromium || "/usr/bin/chromium", headless: true, args });
	const context = await browser.newContext({ permissions: ["microphone"] });
	const page = await context.newPage();
	page.on("console", (msg) => process.stderr.write(`console.${msg.type()}: ${msg.text()}\n`));
	page.on("pageerror", (err) => emit({ event: "error", stage: "page", message: String(err) }));
	await page.exposeFunction("gatewayReport", (line) => {
		let ev;
		try {
			ev = JSON.parse(line);
		} catch {
			return;
		}
		emit(ev);
		if (ev.event === "done") setTimeout(() => finish(0), 300);
		if (ev.event === "error" && fatalStages.has(ev.stage)) setTimeout(() => finish(1), 100);
	});
	await page.goto(pageURL);
	emit({ event: "browser", t: Date.now() / 1000, version: browser.version() });

	createInterface({ input: process.stdin }).on("line", async (line) => {
		const cmd = line.trim();
		try {
			if (cmd === "hangup") await page.evaluate(() => window.harness.hangup());
			if (cmd === "quit") {
				await page.evaluate(() => window.harness.stop());
				clearTimeout(timer);
				finish(0);
			}
		} catch (e) {
			emit({ event: "error", stage: "command", message: String(e) });
		}
	});

	await page.evaluate((o) => {
		window.harness.run(o).catch((e) => window.gatewayReport(JSON.stringify({ event: "error", stage: "run", message: String(e) })));
	}, {
		homeserver: opts.homeserver,
		accessToken: opts.accessToken,
		userId: opts.userId,
		deviceId: opts.deviceId,
		mode: opts.mode || "call",
		number: opts.number,
		invitee: opts.invitee,
		roomId: opts.roomId,
		hangupAfterMs: (opts.hangupAfterSeconds || 0) * 1000,
		freqs: opts.freqs || [],
		answerDelayMs: opts.answerDelayMs || 0,
		joinTimeoutMs: opts.joinTimeoutMs || 20000,
		forceTURN: !!opts.forceTURN,
	});
} catch (e) {
	emit({ event: "error", stage: "browser", message: String(e) });
	finish(1);
}
