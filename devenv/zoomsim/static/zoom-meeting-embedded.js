/*
 * A fake of @zoom/meetingsdk's Component View (window.ZoomMtgEmbedded), for tests only.
 * It exposes the functions and events the bot page uses, with the same names and shapes as
 * the real package, and is backed by the Zoom simulator that serves this file:
 *   ZoomMtgEmbedded.createClient() / destroyClient()
 *   client.init({zoomAppRoot, ...}) -> Promise
 *   client.join({signature, meetingNumber, password, userName, zak | obfToken}) -> Promise
 *     rejects with {type: 'JOIN_MEETING_FAILED', reason, errorCode}
 *   client.leaveMeeting() -> Promise
 *   client.getCurrentUser(), client.getAttendeeslist()
 *   client.on/off('connection-change' | 'user-added' | 'user-removed' | 'user-updated'
 *     | 'active-speaker' | 'caption-message' | 'chat-on-message'
 *     | 'media-capture-permission-change', fn)
 *   client.mediaCapturePermission('request'), client.sendChat(message)
 * and, once the simulator scripts it, the meeting's audio on one of the SDK's audio paths.
 * The simulator's address comes from this script's own URL. Like the real client, a client
 * exposes only those members: its helpers (emit, connect, handle, render) are private here.
 * Client-side refusals follow the 6.2.0 bundle: CLIENT_DUPLICATED_JOIN (5012) for a second
 * join, CLIENT_INVALID_JOIN_PARAMETER (5013) for zak with obfToken or an empty userName.
 */
(function () {
  'use strict';
  var base = new URL('.', document.currentScript.src).href;

  function Client() {
    this.listeners = {};
    this.root = null;
    this.session = null;
    this.socket = null;
    this.currentUser = null;
    this.attendees = {};
    this.joining = false;
    this.media = null;
  }

  Client.prototype.on = function (event, fn) {
    (this.listeners[event] = this.listeners[event] || []).push(fn);
  };
  Client.prototype.off = function (event, fn) {
    this.listeners[event] = (this.listeners[event] || []).filter(function (f) { return f !== fn; });
  };
  function emit(client, event, payload) {
    (client.listeners[event] || []).slice().forEach(function (fn) {
      try { fn(payload); } catch (e) { console.error('listener failed', event, e); }
    });
  }

  Client.prototype.init = function (options) {
    if (!options || !options.zoomAppRoot) {
      return Promise.reject({ type: 'INVALID_PARAMETERS', reason: 'zoomAppRoot is required' });
    }
    this.root = options.zoomAppRoot;
    render(this);
    return Promise.resolve();
  };

  Client.prototype.join = function (params) {
    var self = this;
    if (self.session || self.joining) {
      return Promise.reject({ type: 'JOIN_MEETING_FAILED', reason: 'Duplicated join', errorCode: 5012 });
    }
    if ((params.zak && params.obfToken) || !params.userName) {
      return Promise.reject({ type: 'INVALID_PARAMETERS', reason: 'Invalid join parameter', errorCode: 5013 });
    }
    self.joining = true;
    return fetch(base + 'join', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        signature: params.signature,
        meetingNumber: String(params.meetingNumber),
        password: params.password || '',
        userName: params.userName,
        userEmail: params.userEmail || '',
        zak: params.zak || '',
        obfToken: params.obfToken || ''
      })
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) { throw body; }
        return body;
      });
    }).then(function (body) {
      self.session = body.session;
      self.currentUser = body.currentUser;
      body.attendees.forEach(function (a) { self.attendees[a.userId] = a; });
      self.attendees[self.currentUser.userId] = self.currentUser;
      return connect(self).then(function () {
        self.joining = false;
        render(self);
        emit(self, 'connection-change', { state: 'Connected' });
        if (body.script) { play(self, body.script); }
      });
    }, function (error) {
      self.joining = false;
      var failure = error && error.errorCode ? error
        : { type: 'JOIN_MEETING_FAILED', reason: String(error), errorCode: 200 };
      emit(self, 'connection-change', { state: 'Fail', reason: failure.reason, errorCode: failure.errorCode });
      throw failure;
    });
  };

  function connect(self) {
    return new Promise(function (resolve, reject) {
      var url = base.replace(/^http/, 'ws') + 'events?session=' + encodeURIComponent(self.session);
      var socket = new WebSocket(url);
      self.socket = socket;
      socket.onopen = function () { resolve(); };
      socket.onerror = function () { reject({ type: 'JOIN_MEETING_FAILED', reason: 'connection failed', errorCode: 200 }); };
      socket.onmessage = function (message) { handle(self, JSON.parse(message.data)); };
      socket.onclose = function () {
        stopMedia(self);
        if (self.session) {
          self.session = null;
          emit(self, 'connection-change', { state: 'Closed', reason: 'connection lost' });
        }
      };
    });
  }

  function handle(self, message) {
    if (message.event === 'sim-media-script') { play(self, message.payload); return; }
    if (message.event === 'connection-change') {
      if (message.payload.state === 'Closed') { self.session = null; self.socket.close(); }
    } else if (/^user-/.test(message.event)) {
      message.payload.forEach(function (user) {
        if (message.event === 'user-removed') { delete self.attendees[user.userId]; }
        else { self.attendees[user.userId] = user; }
        if (self.currentUser && user.userId === self.currentUser.userId) { self.currentUser = user; }
      });
      render(self);
    }
    emit(self, message.event, message.payload);
  }

  Client.prototype.mediaCapturePermission = function (operation) {
    if (operation !== 'request') { return Promise.resolve('unsupported by the simulator'); }
    if (!this.session) { return Promise.reject({ type: 'INVALID_OPERATION', reason: 'not in a meeting' }); }
    return post(this, 'permission', {}).then(function () { return ''; });
  };

  Client.prototype.sendChat = function (message) {
    if (!this.session) { return Promise.reject(new Error('not in a meeting')); }
    return post(this, 'chat', { message: String(message) });
  };

  function post(self, path, body) {
    body.session = self.session;
    return fetch(base + path, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body)
    }).then(function (response) { return response.json(); });
  }

  /*
   * Scripted media: each speaker is a tone of its own frequency, played on the meeting's
   * audio path, the way the real SDK plays remote audio (docs/capture.md):
   *   wasm          an AudioContext, through an AudioWorkletNode, to its speakers
   *   wasm-element  an AudioContext into a MediaStreamDestination, played by new Audio()
   *   webrtc        a remote track of a peer connection, played by an <audio> element
   * and the events a real meeting gives: active-speaker, caption-message (partial, then done;
   * only when the host's account allows captions) and chat-on-message.
   */
  var WORKLET = 'registerProcessor("zoomsim-decoder", class extends AudioWorkletProcessor {' +
    'process(inputs, outputs) { const i = inputs[0], o = outputs[0];' +
    'for (let c = 0; c < o.length; c++) { if (i[c]) { o[c].set(i[c]); } } return true; } });';

  function play(self, script) {
    if (self.media) { return; }
    var context = new AudioContext();
    self.media = { context: context, timers: [], keep: [] };
    outputFor(self, script.audioPath).then(function (output) {
      var now = Date.now();
      script.speech.forEach(function (line) {
        var begin = (script.startsAtMs + line.from * 1000 - now) / 1000;
        var end = (script.startsAtMs + line.to * 1000 - now) / 1000;
        if (end <= 0) { return; }
        var tone = context.createOscillator();
        var gain = context.createGain();
        tone.frequency.value = line.toneHz;
        gain.gain.value = 0.25;
        tone.connect(gain);
        gain.connect(output);
        tone.start(context.currentTime + Math.max(0, begin));
        tone.stop(context.currentTime + end);
      });
      schedule(self, script, now);
    });
  }

  function outputFor(self, path) {
    var context = self.media.context;
    if (path === 'wasm') {
      var url = URL.createObjectURL(new Blob([WORKLET], { type: 'application/javascript' }));
      return context.audioWorklet.addModule(url).then(function () {
        var decoder = new AudioWorkletNode(context, 'zoomsim-decoder', { outputChannelCount: [1] });
        decoder.connect(context.destination);
        return decoder;
      });
    }
    var stream = context.createMediaStreamDestination();
    if (path === 'wasm-element') {
      var element = new Audio();
      element.srcObject = stream.stream;
      element.play().catch(function () {});
      self.media.keep.push(element);
      return Promise.resolve(stream);
    }
    // webrtc: the meeting's audio reaches the page as a remote track (a loopback connection).
    var sender = new RTCPeerConnection();
    var receiver = new RTCPeerConnection();
    self.media.keep.push(sender, receiver);
    sender.onicecandidate = function (e) { if (e.candidate) { receiver.addIceCandidate(e.candidate); } };
    receiver.onicecandidate = function (e) { if (e.candidate) { sender.addIceCandidate(e.candidate); } };
    receiver.ontrack = function (event) {
      var player = document.createElement('audio');  // the SDK's pool of <audio> players
      player.autoplay = true;
      player.srcObject = event.streams[0] || new MediaStream([event.track]);
      player.play().catch(function () {});
      self.media.keep.push(player);
    };
    stream.stream.getAudioTracks().forEach(function (track) { sender.addTrack(track, stream.stream); });
    return sender.createOffer().then(function (offer) {
      return sender.setLocalDescription(offer);
    }).then(function () {
      return receiver.setRemoteDescription(sender.localDescription);
    }).then(function () {
      return receiver.createAnswer();
    }).then(function (answer) {
      return receiver.setLocalDescription(answer);
    }).then(function () {
      return sender.setRemoteDescription(receiver.localDescription);
    }).then(function () { return stream; });
  }

  function schedule(self, script, now) {
    function at(seconds, fn) {
      var delay = script.startsAtMs + seconds * 1000 - now;
      if (delay >= 0) { self.media.timers.push(setTimeout(function () { if (self.session) { fn(); } }, delay)); }
    }
    var changes = {};
    script.speech.forEach(function (line) { changes[line.from] = true; changes[line.to] = true; });
    Object.keys(changes).map(Number).sort(function (a, b) { return a - b; }).forEach(function (t) {
      var speaking = script.speech.filter(function (l) { return l.from <= t && t < l.to; })
        .map(function (l) { return { userId: l.userId, displayName: l.displayName }; });
      at(t, function () { emit(self, 'active-speaker', speaking); });
    });
    if (script.captions) {
      script.speech.forEach(function (line, i) {
        if (!line.text) { return; }
        var id = 'sim-caption-' + i;
        var words = line.text.split(' ');
        function caption(text, done) {
          var payload = { msgId: id, userId: line.userId, displayName: line.displayName, text: text,
            source: 4, language: 0, timestamp: Date.now() };
          if (done) { payload.done = true; }
          emit(self, 'caption-message', payload);
        }
        at((line.from + line.to) / 2, function () { caption(words.slice(0, Math.ceil(words.length / 2)).join(' '), false); });
        at(line.to, function () { caption(line.text, true); });
      });
    }
    script.chat.forEach(function (line, i) {
      at(line.at, function () {
        emit(self, 'chat-on-message', { id: 'sim-chat-' + i, message: line.message,
          sender: { name: line.displayName, userId: line.userId },
          receiver: { name: 'Everyone', userId: 0 }, timestamp: Date.now() });
      });
    });
  }

  function stopMedia(self) {
    if (!self.media) { return; }
    self.media.timers.forEach(clearTimeout);
    self.media.keep.forEach(function (k) { if (k.close) { k.close(); } else if (k.pause) { k.pause(); } });
    self.media.context.close();
    self.media = null;
  }

  Client.prototype.leaveMeeting = function () {
    var self = this;
    if (!self.session) { return Promise.resolve(); }
    var session = self.session;
    self.session = null;
    stopMedia(self);
    return fetch(base + 'leave', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ session: session })
    }).then(function () {
      if (self.socket) { self.socket.close(); }
      emit(self, 'connection-change', { state: 'Closed', reason: 'leave meeting' });
    });
  };

  // As in the real bundle: roster events carry raw user objects (bHold); these two getters
  // return copies with an isHold alias.
  function withAlias(user) {
    if (!user) { return user; }
    var copy = Object.assign({}, user);
    copy.isHold = Boolean(user.bHold);
    return copy;
  }
  Client.prototype.getCurrentUser = function () { return withAlias(this.currentUser); };
  Client.prototype.getAttendeeslist = function () {
    var self = this;
    return Object.keys(self.attendees).map(function (k) { return self.attendees[k]; })
      .filter(function (a) { return !a.bHold || (self.currentUser && a.userId === self.currentUser.userId); })
      .map(withAlias);
  };

  // A minimal participant list, written with textContent so names are shown literally.
  function render(self) {
    if (!self.root) { return; }
    var list = self.root.querySelector('ul.zoomsim-participants');
    if (!list) {
      list = document.createElement('ul');
      list.className = 'zoomsim-participants';
      self.root.appendChild(list);
    }
    list.textContent = '';
    self.getAttendeeslist().forEach(function (a) {
      var item = document.createElement('li');
      item.textContent = a.displayName;
      item.setAttribute('data-user-id', String(a.userId));
      list.appendChild(item);
    });
  }

  var client = null;
  window.ZoomMtgEmbedded = {
    createClient: function () { client = client || new Client(); return client; },
    destroyClient: function () { client = null; }
  };
})();
