// Browser side of the Matrix client harness: matrix-js-sdk placing or answering a 1:1 voice call
// the way Element does, reporting every step as a JSON event through window.gatewayReport
// (a Playwright binding installed by driver.mjs). Bundled by build.mjs into dist/client.js.
import { createClient, createNewMatrixCall, CallEvent, ClientEvent, RoomMemberEvent } from "matrix-js-sdk";

const PSTN_PROTOCOLS = ["m.protocol.pstn", "im.vector.protocol.pstn"];

function report(event, fields = {}) {
	const ev = { event, t: Date.now() / 1000, ...fields };
	if (window.gatewayReport) window.gatewayReport(JSON.stringify(ev));
	else console.log(JSON.stringify(ev));
}

function errText(e) {
	if (!e) return "";
	if (e.errcode || e.httpStatus) return `${e.httpStatus || ""} ${e.errcode || ""} ${e.data?.error || e.message || ""}`.trim();
	return e.message || String(e);
}

function withTimeout(promise, ms, what) {
	let timer;
	return Promise.race([
		promise.finally(() => clearTimeout(timer)),
		new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms); }),
	]);
}

// Goertzel: fraction of the block's power at freq (1 for a pure tone, ~0 otherwise).
function toneRatio(buf, rate, freq) {
	const w = (2 * Math.PI * freq) / rate;
	const coeff = 2 * Math.cos(w);
	let s1 = 0, s2 = 0, energy = 0;
	for (let i = 0; i < buf.length; i++) {
		const x = buf[i];
		energy += x * x;
		const s0 = x + coeff * s1 - s2;
		s2 = s1;
		s1 = s0;
	}
	if (energy === 0) return 0;
	const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
	return (2 * power) / (buf.length * energy);
}

// Reports the remote stream's level, dominant frequency and tone ratios once a second.
class AudioMeter {
	constructor(stream, freqs, label) {
		// Chromium delivers remote WebRTC audio to WebAudio only while a media element plays it.
		this.el = new Audio();
		this.el.muted = true;
		this.el.srcObject = stream;
		this.el.play().catch((e) => report("warning", { message: "audio element play: " + errText(e) }));
		this.ctx = new AudioContext();
		this.src = this.ctx.createMediaStreamSource(stream);
		this.an = this.ctx.createAnalyser();
		this.an.fftSize = 8192;
		this.an.smoothingTimeConstant = 0;
		this.src.connect(this.an);
		this.time = new Float32Array(this.an.fftSize);
		this.freq = new Float32Array(this.an.frequencyBinCount);
		this.freqs = freqs;
		this.label = label;
		this.timer = setInterval(() => this.tick(), 1000);
	}
	tick() {
		this.an.getFloatTimeDomainData(this.time);
		this.an.getFloatFrequencyData(this.freq);
		let sum = 0;
		for (const x of this.time) sum += x * x;
		const rms = Math.sqrt(sum / this.time.length);
		let best = 0;
		for (let i = 1; i < this.freq.length; i++) if (this.freq[i] > this.freq[best]) best = i;
		const tones = {};
		for (const f of this.freqs) tones[String(f)] = Number(toneRatio(this.time, this.ctx.sampleRate, f).toFixed(4));
		report("audio", {
			stream: this.label,
			rms: Number(rms.toFixed(5)),
			rms_dbfs: Number((20 * Math.log10(rms || 1e-10)).toFixed(1)),
			dominant_hz: Math.round((best * this.ctx.sampleRate) / this.an.fftSize),
			tones,
			context_state: this.ctx.state,
		});
	}
	stop() {
		clearInterval(this.timer);
		this.ctx.close().catch(() => {});
		this.el.srcObject = null;
	}
}

class Harness {
	constructor() {
		this.call = null;
		this.meters = new Map();
	}

	async run(opts) {
		this.opts = opts;
		const client = createClient({ baseUrl: opts.homeserver, accessToken: opts.accessToken, userId: opts.userId, deviceId: opts.deviceId, forceTURN: !!opts.forceTURN });
		this.client = client;
		try {
			const who = await client.whoami();
			client.deviceId = who.device_id || client.deviceId;
			if (!client.credentials.userId) client.credentials.userId = who.user_id;
			report("login", { user_id: who.user_id, device_id: who.device_id });
		} catch (e) {
			report("error", { stage: "login", message: errText(e) });
			return;
		}
		const synced = new Promise((resolve) => {
			client.on(ClientEvent.Sync, (state) => { if (state === "PREPARED" || state === "SYNCING") resolve(); });
		});
		client.on("Call.incoming", (call) => this.onIncoming(call));
		if (opts.mode === "answer") {
			// Like a user accepting the DM invite: join rooms we are invited to.
			client.on(RoomMemberEvent.Membership, (_ev, member) => {
				if (member.userId !== client.getUserId() || member.membership !== "invite") return;
				client.joinRoom(member.roomId).then(
					() => report("joined", { room_id: member.roomId, user_id: member.userId }),
					(e) => report("error", { stage: "autojoin", message: errText(e) }),
				);
			});
		}
		await client.startClient({ initialSyncLimit: 5 });
		try {
			await withTimeout(synced, 30000, "first sync");
		} catch (e) {
			report("error", { stage: "sync", message: errText(e) });
			return;
		}
		report("synced", { voip: client.supportsVoip() });
		if (opts.forceTURN) {
			// Relay-only ICE (iceTransportPolicy "relay") needs the homeserver's TURN servers first.
			try {
				await client.checkTurnServers();
			} catch (e) {
				report("warning", { message: "checkTurnServers: " + errText(e) });
			}
			const servers = client.getTurnServers() || [];
			report("turn", { uris: servers.flatMap((s) => s.urls || []), username: servers[0]?.username || "" });
			if (servers.length === 0) {
				report("error", { stage: "turn", message: "forceTURN set but the homeserver gave no TURN servers" });
				return;
			}
		}
		if (opts.mode === "answer") {
			report("waiting", {});
			return;
		}
		let invitee = opts.invitee;
		if (!invitee) {
			invitee = await this.lookup(opts.number);
			if (!invitee) return;
		}
		const roomId = opts.roomId || (await this.openDM(invitee));
		if (!roomId) return;
		await this.place(roomId, invitee);
	}

	// Element's dial pad: find a PSTN protocol, then look the number up as a third-party user.
	async lookup(number) {
		let protocols;
		try {
			protocols = await this.client.getThirdpartyProtocols();
		} catch (e) {
			report("error", { stage: "protocols", message: errText(e) });
			return null;
		}
		report("protocols", { protocols: Object.keys(protocols || {}) });
		const proto = PSTN_PROTOCOLS.find((p) => protocols && protocols[p]);
		if (!proto) {
			report("error", { stage: "protocols", message: "no PSTN protocol (m.protocol.pstn / im.vector.protocol.pstn) offered" });
			return null;
		}
		let users;
		try {
			users = await this.client.getThirdpartyUser(proto, { "m.id.phone": number });
		} catch (e) {
			report("error", { stage: "lookup", message: errText(e) });
			return null;
		}
		if (!users || users.length === 0 || !users[0].userid) {
			report("error", { stage: "lookup", message: `no user for ${number} via ${proto}` });
			return null;
		}
		report("lookup", { protocol: proto, number, user_id: users[0].userid, fields: users[0].fields || {} });
		return users[0].userid;
	}

	// Creates a DM with invitee (is_direct, trusted_private_chat) and waits until it joined.
	async openDM(invitee) {
		const client = this.client;
		let roomId;
		try {
			const res = await client.createRoom({ is_direct: true, invite: [invitee], preset: "trusted_private_chat", visibility: "private" });
			roomId = res.room_id;
		} catch (e) {
			report("error", { stage: "create_room", message: errText(e) });
			return null;
		}
		report("room", { room_id: roomId, invitee });
		try {
			const direct = client.getAccountData("m.direct")?.getContent() || {};
			direct[invitee] = [...(direct[invitee] || []), roomId];
			await client.setAccountData("m.direct", direct);
		} catch (e) {
			report("warning", { message: "m.direct: " + errText(e) });
		}
		const joined = () => client.getRoom(roomId)?.getMember(invitee)?.membership === "join";
		try {
			await withTimeout(new Promise((resolve) => {
				if (joined()) return resolve();
				const onMember = (_ev, member) => {
					if (member.roomId === roomId && member.userId === invitee && member.membership === "join") {
						client.off(RoomMemberEvent.Membership, onMember);
						resolve();
					}
				};
				client.on(RoomMemberEvent.Membership, onMember);
			}), this.opts.joinTimeoutMs || 20000, `${invitee} joining ${roomId}`);
		} catch (e) {
			report("error", { stage: "join", message: errText(e) });
			return null;
		}
		report("joined", { room_id: roomId, user_id: invitee });
		return roomId;
	}

	watch(call) {
		this.call = call;
		report("call", { call_id: call.callId, room_id: call.roomId, direction: call.direction });
		call.on(CallEvent.State, (state, old) => {
			report("state", { call_id: call.callId, state, old });
			if (state === "connected") this.reportICE(call);
			if (state === "connected" && this.opts.hangupAfterMs > 0) {
				setTimeout(() => this.hangup(), this.opts.hangupAfterMs);
			}
		});
		call.on(CallEvent.Error, (err) => report("error", { stage: "call", code: err.code, message: errText(err) }));
		call.on(CallEvent.FeedsChanged, (feeds) => {
			for (const feed of feeds) {
				if (feed.isLocal() || this.meters.has(feed.stream.id)) continue;
				if (feed.stream.getAudioTracks().length === 0) continue;
				report("remote_stream", { stream_id: feed.stream.id, purpose: feed.purpose });
				this.meters.set(feed.stream.id, new AudioMeter(feed.stream, this.opts.freqs || [], feed.purpose));
			}
		});
		call.on(CallEvent.Hangup, () => {
			report("hangup", { call_id: call.callId, reason: call.hangupReason, party: call.hangupParty });
			for (const m of this.meters.values()) m.stop();
			this.meters.clear();
			report("done", {});
		});
	}

	// Reports the selected ICE candidate pair's types ("ice" event): "relay" means media goes through TURN.
	async reportICE(call) {
		try {
			const stats = await call.peerConn.getStats();
			let pair;
			stats.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
			if (!pair) stats.forEach((s) => { if (!pair && s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
			if (!pair) return report("warning", { message: "no selected candidate pair" });
			const local = stats.get(pair.localCandidateId) || {};
			const remote = stats.get(pair.remoteCandidateId) || {};
			report("ice", { local_type: local.candidateType, local_address: `${local.address}:${local.port}`, local_relay_protocol: local.relayProtocol || "",
				remote_type: remote.candidateType, remote_address: `${remote.address}:${remote.port}`, ice_policy: call.peerConn.getConfiguration().iceTransportPolicy });
		} catch (e) {
			report("warning", { message: "getStats: " + errText(e) });
		}
	}

	async place(roomId, invitee) {
		const call = createNewMatrixCall(this.client, roomId, { invitee });
		if (!call) {
			report("error", { stage: "call", message: "createNewMatrixCall returned null (no WebRTC support?)" });
			return;
		}
		this.watch(call);
		try {
			await call.placeVoiceCall();
			report("placed", { call_id: call.callId });
		} catch (e) {
			report("error", { stage: "place", message: errText(e) });
		}
	}

	onIncoming(call) {
		report("incoming", { call_id: call.callId, room_id: call.roomId, from: call.getOpponentMember()?.userId || null });
		if (this.opts.mode !== "answer" || this.call) return;
		this.watch(call);
		setTimeout(() => {
			try {
				call.answer();
			} catch (e) {
				report("error", { stage: "answer", message: errText(e) });
			}
		}, this.opts.answerDelayMs || 0);
	}

	hangup() {
		if (this.call && this.call.state !== "ended") this.call.hangup("user_hangup", false);
	}

	stop() {
		this.hangup();
		this.client?.stopClient();
	}
}

window.harness = new Harness();
