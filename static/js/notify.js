// blindrelay web client: telling the person about new messages while they look elsewhere.
// An unread count in the tab's title (always), a short tone (opt-in) and a browser
// notification (opt-in, never asked for without a click). Notifications never carry a
// message's text or a file name: the operating system may show, log or sync them.

/** sessionStorage (this tab only): the person's choices, like everything else the page keeps. */
const PREFS_KEY = 'blindrelay.alerts.v1';
export const NOTIFICATION_TEXT = 'New message in your room';

export class Alerts {
  constructor() {
    this.unread = 0;
    this.baseTitle = document.title;
    this.attentive = document.visibilityState === 'visible' && document.hasFocus();
    this.audio = null;
    const prefs = readPrefs();
    this.sound = prefs.sound === true;
    this.notify = prefs.notify === true && notificationsGranted();
    // Browsers start audio only from a gesture: after a reload, the first one does it.
    if (this.sound) {
      const unlock = () => this.startAudio();
      window.addEventListener('pointerdown', unlock, { once: true });
      window.addEventListener('keydown', unlock, { once: true });
    }
    // Focus and visibility events, not polling: the count resets as soon as the person looks.
    window.addEventListener('focus', () => this.setAttentive(document.visibilityState === 'visible'));
    window.addEventListener('blur', () => this.setAttentive(false));
    document.addEventListener('visibilitychange', () => this.setAttentive(document.visibilityState === 'visible' && document.hasFocus()));
  }

  setTitle(title) {
    this.baseTitle = title;
    this.render();
  }

  setAttentive(on) {
    this.attentive = on;
    if (on) {
      this.unread = 0;
      this.render();
    }
  }

  /** A message from someone else arrived live. */
  incoming() {
    if (this.attentive) return;
    this.unread += 1;
    this.render();
    if (this.sound) this.beep();
    if (this.notify && notificationsGranted()) this.showNotification();
  }

  render() {
    document.title = this.unread ? `(${this.unread}) ${this.baseTitle}` : this.baseTitle;
  }

  /** Turns the tone on or off; called from a click, which browsers require to start audio. */
  toggleSound() {
    this.sound = !this.sound;
    if (this.sound) this.startAudio();
    this.save();
    return this.sound;
  }

  startAudio() {
    this.audio ??= new AudioContext();
    this.audio.resume().catch(() => {});
  }

  /** Asks the browser's permission only now, from the person's click. Resolves to the new state. */
  async toggleNotify() {
    if (this.notify) {
      this.notify = false;
    } else if (notificationsSupported()) {
      const answer = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
      this.notify = answer === 'granted';
    }
    this.save();
    return this.notify;
  }

  save() {
    sessionStorage.setItem(PREFS_KEY, JSON.stringify({ sound: this.sound, notify: this.notify }));
  }

  beep() {
    const ctx = this.audio;
    if (!ctx || ctx.state !== 'running') return;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    const t = ctx.currentTime;
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.15, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.18);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t);
    osc.stop(t + 0.2);
  }

  showNotification() {
    // One notification per room at a time (`tag`), replaced rather than stacked.
    const n = new Notification('blindrelay', { body: NOTIFICATION_TEXT, tag: 'blindrelay-message', silent: this.sound });
    n.addEventListener('click', () => {
      window.focus();
      n.close();
    });
  }
}

export function notificationsSupported() {
  return typeof Notification === 'function';
}

function notificationsGranted() {
  return notificationsSupported() && Notification.permission === 'granted';
}

function readPrefs() {
  try {
    return JSON.parse(sessionStorage.getItem(PREFS_KEY) ?? '{}') ?? {};
  } catch {
    return {};
  }
}
