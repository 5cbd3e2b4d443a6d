// blindrelay web client: voice notes. Where the page may record (MediaRecorder, and a
// Permissions-Policy that allows the microphone), a "Record" button beside Attach: press it
// to record, press again to send what was recorded, as an audio file in encrypted chunks
// like any file (files.js), which the others' pages play in their audio player; Discard
// drops it. Holding the button down records while it is held and sends on release.
//
// The server sends `Permissions-Policy: microphone=(self)` (src/http.rs); where a proxy
// sends one that forbids the microphone, the button stays hidden.

import { $ } from './dom.js';
import { CodedError } from './errors.js';

/** Containers tried in order (Chromium and Firefox record WebM/Opus, Safari MP4/AAC). */
const TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'];
/** A note stops (and is sent) after this long. */
const MAX_MS = 5 * 60_000;
/** A press held longer than this is "hold to record": the release sends. */
const HOLD_MS = 500;

/** Whether this page may record: the browser can, and the page's policy lets it. */
export function recordingAllowed() {
  if (!globalThis.MediaRecorder || !navigator.mediaDevices?.getUserMedia) return false;
  const policy = document.permissionsPolicy ?? document.featurePolicy;
  if (policy?.allowsFeature && !policy.allowsFeature('microphone')) return false;
  return true;
}

export class VoiceNotes {
  /**
   * @param {object} hooks
   * @param {() => boolean} hooks.accepting  whether the room takes files now
   * @param {(file: File) => void} hooks.send
   * @param {(err: Error) => void} hooks.error
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.rec = null;
    this.timer = null;
  }

  bind() {
    const button = $('record');
    button.hidden = !recordingAllowed();
    if (button.hidden) return;
    // A pointer works on its press (the button changes under it as recording starts, so a
    // click, which needs the press and release on the same element, is not relied on): a
    // press starts, the next press stops and sends; a press held longer than HOLD_MS sends
    // on its release, wherever the pointer is then.
    button.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      if (this.rec) {
        this.stop(true);
        return;
      }
      const pressedAt = Date.now();
      this.start();
      window.addEventListener('pointerup', () => {
        if (this.rec && Date.now() - pressedAt > HOLD_MS) this.stop(true);
      }, { once: true });
    });
    // A keyboard's Enter or Space (a click without a pointer): start, or stop and send.
    button.addEventListener('click', (e) => {
      if (e.detail !== 0) return;
      if (this.rec) this.stop(true);
      else this.start();
    });
    $('record-discard').addEventListener('click', () => this.stop(false));
  }

  async start() {
    if (this.rec || !this.hooks.accepting()) return;
    const rec = { startedAt: Date.now(), parts: [], fromClick: false };
    this.rec = rec;
    try {
      rec.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      this.rec = null;
      this.hooks.error(new CodedError('MICROPHONE', { detail: `The microphone could not be used (${err?.name ?? 'refused'}): allow it for this page to record a voice note.` }));
      return;
    }
    if (this.rec !== rec) {
      rec.stream.getTracks().forEach((t) => t.stop());
      return;
    }
    const mimeType = TYPES.find((t) => MediaRecorder.isTypeSupported(t));
    rec.recorder = new MediaRecorder(rec.stream, mimeType ? { mimeType } : {});
    rec.recorder.addEventListener('dataavailable', (e) => { if (e.data.size) rec.parts.push(e.data); });
    rec.recorder.start(1000);
    rec.limit = setTimeout(() => this.stop(true), MAX_MS);
    this.render();
    this.timer = setInterval(() => this.render(), 500);
  }

  /** Stops recording; `send` sends the note, else it is dropped. */
  stop(send) {
    const rec = this.rec;
    if (!rec) return;
    this.rec = null;
    clearTimeout(rec.limit);
    clearInterval(this.timer);
    this.render();
    if (!rec.recorder) return; // still asking for the microphone: start() stops it
    rec.recorder.addEventListener('stop', () => {
      rec.stream.getTracks().forEach((t) => t.stop());
      if (!send || !rec.parts.length) return;
      const type = (rec.recorder.mimeType || rec.parts[0].type || 'audio/webm');
      const ext = type.includes('mp4') ? 'm4a' : type.includes('ogg') ? 'ogg' : 'webm';
      const stamp = new Date(rec.startedAt).toISOString().slice(0, 19).replace(/[:T]/g, '-');
      this.hooks.send(new File(rec.parts, `voice-note-${stamp}.${ext}`, { type }));
    }, { once: true });
    rec.recorder.stop();
  }

  render() {
    const on = Boolean(this.rec);
    const button = $('record');
    button.setAttribute('aria-pressed', String(on));
    button.textContent = on ? 'Stop and send' : 'Record';
    $('record-discard').hidden = !on;
    const status = $('record-status');
    status.hidden = !on;
    if (on) {
      const s = Math.floor((Date.now() - this.rec.startedAt) / 1000);
      status.textContent = `Recording a voice note… ${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
    }
  }
}
