// Checks without a browser: the page's crypto module (run under Node's WebCrypto), an error
// sentence for every error code of docs/protocol.md, and the vendored files being the pinned npm
// packages' files byte for byte.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO, STATIC_DIR } from './harness.js';

const C = await import(path.join(STATIC_DIR, 'js/crypto.js'));
const { ERROR_TEXT } = await import(path.join(STATIC_DIR, 'js/errors.js'));
const { lookAlikes } = await import(path.join(STATIC_DIR, 'js/names.js'));
const NODE_MODULES = new URL('./node_modules/', import.meta.url).pathname;

async function member() {
  return C.generateIdentity();
}

const ctx = (over = {}) => ({ sessionId: 'room1', from: 'a', to: 'b', id: 'm-1', type: 'text', gen: 0, ...over });

test('ids and keys are random base64url of the documented alphabet', () => {
  const id = C.randomId(16);
  assert.match(id, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(C.randomId(16), id);
  assert.match(C.randomId(32), /^[A-Za-z0-9_-]{43}$/);
  const bytes = C.randomBytes(40);
  assert.deepEqual(C.fromBase64Url(C.toBase64Url(bytes)), bytes);
});

test('two members derive the same pair key; a message round-trips and is bound to its metadata', async () => {
  const a = await member();
  const b = await member();
  const roomSecret = C.randomBytes(32);
  const key = async (me, peer) => C.derivePairKey({
    privateKey: me.privateKey, myPublicKey: me.publicKey, peerPublicKey: peer.publicKey,
    peerKey: await C.importPublicKey(peer.publicKey), roomSecret, sessionId: 'room1', purpose: 'msg',
  });
  const kab = await key(a, b);
  const kba = await key(b, a);
  const content = C.encodeContent({ kind: 'text', text: 'héllo' });
  const enc = await C.encryptMessage(kab, content, ctx());
  assert.ok(C.isEnvelope(enc));
  assert.equal(enc.iv.length, 16, '96-bit IV');
  const plain = await C.decryptMessage(kba, enc, ctx());
  assert.equal(C.decodeContent(plain).meta.text, 'héllo');
  // Relabelled sender, id or recipient: refused.
  await assert.rejects(C.decryptMessage(kba, enc, ctx({ from: 'x' })));
  await assert.rejects(C.decryptMessage(kba, enc, ctx({ id: 'm-2' })));
  // Another room secret (a server without the link): another key.
  const other = await C.derivePairKey({
    privateKey: b.privateKey, myPublicKey: b.publicKey, peerPublicKey: a.publicKey,
    peerKey: await C.importPublicKey(a.publicKey), roomSecret: C.randomBytes(32), sessionId: 'room1', purpose: 'msg',
  });
  await assert.rejects(C.decryptMessage(other, enc, ctx()));
});

test('a wrapped room key opens only for its member', async () => {
  const creator = await member();
  const bob = await member();
  const roomSecret = C.randomBytes(32);
  const wrapKey = async (me, peer) => C.derivePairKey({
    privateKey: me.privateKey, myPublicKey: me.publicKey, peerPublicKey: peer.publicKey,
    peerKey: await C.importPublicKey(peer.publicKey), roomSecret, sessionId: 'room1', purpose: 'wrap',
  });
  const { raw } = await C.newRoomKey();
  const wrapped = await C.wrapRoomKey(await wrapKey(creator, bob), raw, { sessionId: 'room1', gen: 3, by: 'c', forUser: 'bob' });
  assert.ok(C.isWrappedKey(wrapped));
  const opened = await C.unwrapRoomKey(await wrapKey(bob, creator), wrapped, { sessionId: 'room1', forUser: 'bob' });
  assert.deepEqual(opened, raw);
  await assert.rejects(C.unwrapRoomKey(await wrapKey(bob, creator), wrapped, { sessionId: 'room1', forUser: 'carol' }));
});

test('a password gives the same digest and secret for the same room only', async () => {
  const one = await C.derivePassword('open sesame', 'roomA');
  const again = await C.derivePassword('open sesame', 'roomA');
  const otherRoom = await C.derivePassword('open sesame', 'roomB');
  assert.match(one.digest, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(one.digest, again.digest);
  assert.deepEqual(one.secret, again.secret);
  assert.notEqual(one.digest, otherRoom.digest);
  assert.notEqual(C.toBase64Url(one.secret), one.digest, 'the secret is not the digest');
});

test('safety numbers are symmetric: six groups of five digits', async () => {
  const a = await member();
  const b = await member();
  const ab = await C.safetyNumber(a.publicKey, b.publicKey);
  assert.match(ab, /^\d{5}( \d{5}){5}$/);
  assert.equal(await C.safetyNumber(b.publicKey, a.publicKey), ab);
});

test('every error code of the protocol reference has a human sentence', () => {
  const protocol = fs.readFileSync(path.join(REPO, 'docs', 'protocol.md'), 'utf8');
  const section = protocol.split('\n## Error codes\n')[1].split('\n## ')[0];
  const codes = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
  const http = [...protocol.matchAll(/code: "([A-Z_]+)"/g)].map((m) => m[1]);
  assert.ok(codes.length >= 12, `codes found: ${codes}`);
  for (const code of new Set([...codes, ...http])) {
    assert.equal(typeof ERROR_TEXT[code], 'string', `no sentence for ${code}`);
    assert.ok(ERROR_TEXT[code].length > 20);
  }
});

test('the vendored libraries are the pinned npm files, byte for byte', () => {
  const pkg = JSON.parse(fs.readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
  const vendorReadme = fs.readFileSync(path.join(STATIC_DIR, 'vendor/README.md'), 'utf8');
  const pairs = [
    ['socket.io-client', 'dist/socket.io.esm.min.js', 'socket.io.esm.min.js'],
    ['qrcode-generator', 'dist/qrcode.mjs', 'qrcode.mjs'],
  ];
  for (const [name, file, vendored] of pairs) {
    const version = pkg.devDependencies[name];
    assert.match(version, /^\d+\.\d+\.\d+$/, `${name} is pinned exactly`);
    const pkgDir = path.join(NODE_MODULES, name);
    const installed = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
    assert.equal(installed, version);
    assert.ok(fs.readFileSync(path.join(pkgDir, file)).equals(fs.readFileSync(path.join(STATIC_DIR, 'vendor', vendored))),
      `static/vendor/${vendored} differs from ${name}@${version}/${file}`);
    assert.ok(vendorReadme.includes(`| \`${vendored}\` | [\`${name}\`]`) && vendorReadme.includes(`| ${version} |`),
      `static/vendor/README.md names ${name} ${version}`);
  }
  assert.match(pkg.devDependencies['socket.io-client'], /^4\.8\.\d+$/);
  assert.match(fs.readFileSync(path.join(STATIC_DIR, 'vendor/socket.io.esm.min.js'), 'utf8').slice(0, 200), /Released under the MIT License/);
});

test('a file ciphertext travels as at most 8 binary chunks and decrypts from ArrayBuffers', async () => {
  const key = (await C.newRoomKey()).key;
  const file = new Uint8Array(randomBytes(3_000_000));
  const content = C.encodeContent({ kind: 'file', name: 'f.bin', mime: 'application/octet-stream', size: file.length }, file);
  const enc = await C.encryptMessage(key, content, ctx({ gen: 1, type: 'file' }), { chunked: true });
  assert.ok(Array.isArray(enc.ct) && enc.ct.length === C.MAX_CHUNKS, `${enc.ct.length} chunks`);
  assert.equal(enc.ct.reduce((n, c) => n + c.byteLength, 0), content.length + 16, 'raw bytes, no base64');
  // As socket.io-client hands them over: one ArrayBuffer per attachment.
  const received = { ...enc, ct: enc.ct.map((c) => c.slice().buffer) };
  assert.ok(C.isEnvelope(received));
  const plain = await C.decryptMessage(key, received, ctx({ gen: 1, type: 'file' }));
  assert.deepEqual(C.decodeContent(plain).body, file);
  // Out of order or short, it does not decrypt.
  await assert.rejects(C.decryptMessage(key, { ...received, ct: [...received.ct].reverse() }, ctx({ gen: 1, type: 'file' })));
  await assert.rejects(C.decryptMessage(key, { ...received, ct: received.ct.slice(1) }, ctx({ gen: 1, type: 'file' })));
  assert.ok(!C.isEnvelope({ ...received, ct: [] }));
  assert.ok(!C.isEnvelope({ ...received, ct: ['text'] }));
  // A small file is one chunk; texts stay base64url text.
  const small = await C.encryptMessage(key, C.encodeContent({ kind: 'file' }, new Uint8Array(10)), ctx({ gen: 1 }), { chunked: true });
  assert.equal(small.ct.length, 1);
  assert.equal(typeof (await C.encryptMessage(key, C.encodeContent({ kind: 'text', text: 'hi' }), ctx({ gen: 1 }))).ct, 'string');
});

test('names that look alike are found: case, width, Cyrillic and Greek letters, 0/O, I/l, rn/m', () => {
  const alike = (a, b) => lookAlikes([{ id: 1, name: a }, { id: 2, name: b }]).size === 2;
  for (const [a, b] of [
    ['Alice', 'Alice'], ['Alice', 'alice'], ['Alice', '\u0410lice'], ['Alice', '\uFF21lice'],
    ['Alice', 'AIice'], ['Ana', '\u0391n\u03B1'], ['Bob', 'B0b'], ['Modern', 'Modem'],
    ['Ian', 'lan'], ['Ian', 'ian'], ['Paul', '\u0420aul'], ['Ana Lee', ' Ana  Lee'],
    ['Eve', 'E\u200Bve'],
  ]) assert.ok(alike(a, b), `${a} / ${b}`);
  for (const [a, b] of [['Alice', 'Bob'], ['ian', 'lan'], ['Zoë', 'Zoe'], ['Martin', 'Marlin']]) {
    assert.ok(!alike(a, b), `${a} / ${b}`);
  }
  // Three people, two alike; nameless people are never marked.
  assert.deepEqual(lookAlikes([{ id: 'a', name: 'Alice' }, { id: 'b', name: 'Bob' }, { id: 'c', name: 'ALICE' },
    { id: 'd', name: '' }, { id: 'e', name: '' }]), new Set(['a', 'c']));
});
