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
 *   client.on/off('connection-change' | 'user-added' | 'user-removed' | 'user-updated', fn)
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
        if (self.session) {
          self.session = null;
          emit(self, 'connection-change', { state: 'Closed', reason: 'connection lost' });
        }
      };
    });
  }

  function handle(self, message) {
    if (message.event === 'connection-change') {
      if (message.payload.state === 'Closed') { self.session = null; self.socket.close(); }
    } else {
      message.payload.forEach(function (user) {
        if (message.event === 'user-removed') { delete self.attendees[user.userId]; }
        else { self.attendees[user.userId] = user; }
        if (self.currentUser && user.userId === self.currentUser.userId) { self.currentUser = user; }
      });
      render(self);
    }
    emit(self, message.event, message.payload);
  }

  Client.prototype.leaveMeeting = function () {
    var self = this;
    if (!self.session) { return Promise.resolve(); }
    var session = self.session;
    self.session = null;
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
