/*
 * The bot's side of the page: a thin wrapper around the Meeting SDK's Component View.
 * The Python bot calls window.meetingbot.join(params) / leave() and receives every SDK event
 * through window.meetingbotEvent(name, payload), a binding it exposes before loading the page.
 */
(function () {
  'use strict';
  // Every client function and event this page uses; a test checks the real SDK has them all.
  var CLIENT_FUNCTIONS = ['init', 'join', 'leaveMeeting', 'on', 'getCurrentUser', 'getAttendeeslist',
    'mediaCapturePermission', 'sendChat'];
  var EVENTS = ['connection-change', 'user-added', 'user-removed', 'user-updated',
    'active-speaker', 'caption-message', 'chat-on-message', 'media-capture-permission-change'];

  var client = ZoomMtgEmbedded.createClient();
  var root = document.getElementById('meetingbot-root');

  function INIT_OPTIONS() {
    return {
      zoomAppRoot: root,
      language: 'en-US',
      patchJsMedia: true,
      leaveOnPageUnload: true,
      // The SDK's audio/video assets come from the bot itself, not from Zoom's CDN.
      assetPath: window.location.origin + '/sdk/lib/av'
    };
  }

  function forward(name) {
    return function (payload) {
      if (typeof window.meetingbotEvent === 'function') {
        window.meetingbotEvent(name, JSON.parse(JSON.stringify(payload === undefined ? null : payload)));
      }
    };
  }

  function failure(error) {
    if (error && typeof error === 'object') {
      return { ok: false, errorCode: Number(error.errorCode || 0), reason: String(error.reason || error.type || 'join failed') };
    }
    return { ok: false, errorCode: 0, reason: String(error) };
  }

  window.meetingbot = {
    clientFunctions: CLIENT_FUNCTIONS,
    events: EVENTS,
    initOptions: INIT_OPTIONS,
    ready: true,

    join: function (params) {
      var join = {
        signature: params.signature,
        meetingNumber: params.meetingNumber,
        userName: params.userName,
        password: params.password || ''
      };
      // zak and obfToken are mutually exclusive; with neither, the join is anonymous.
      if (params.zak) { join.zak = params.zak; }
      if (params.obfToken) { join.obfToken = params.obfToken; }
      return client.init(INIT_OPTIONS()).then(function () {
        // Listeners only after init: the real SDK's client.on throws before it.
        EVENTS.forEach(function (name) { client.on(name, forward(name)); });
        return client.join(join);
      }).then(function () {
        return { ok: true, currentUser: client.getCurrentUser(), attendees: client.getAttendeeslist() };
      }, failure);
    },

    leave: function () {
      return Promise.resolve(client.leaveMeeting()).then(function () { return true; }, function () { return false; });
    },

    // Ask the host for recording permission; the answer is media-capture-permission-change.
    askPermission: function () {
      return Promise.resolve(client.mediaCapturePermission('request')).then(
        function () { return true; }, function () { return false; });
    },
    sendChat: function (text) {
      return Promise.resolve(client.sendChat(text)).then(function () { return true; }, function () { return false; });
    },
    attendees: function () { return client.getAttendeeslist() || []; },
    currentUser: function () { return client.getCurrentUser(); }
  };
})();
